"""The paper-scale text-conditioned upsampler: 64 -> 256 px, chained after configs/t2i_64.py.

Asymmetric U-Net (paper §3.4): 3 residual down blocks (64 -> 8 px), then 5 up blocks
(16 -> 256 px) with L2 self-attention and cross-attention at 16 and 32 px; N = 4 kernels per
adaptive conv; LPIPS (weight 10) against the real 256 px image, given a converted LPIPS file.
The paper does not publish per-level widths; these are our choice for an accelerator pod.

Run (CLIP ViT-L/14 and LPIPS weights in local files; data as for the base model):
  python train.py --config configs/upsampler_256.py --workdir runs/up256 \
      --config.clip.path=/path/to/clip-vit-large-patch14 --config.loss.lpips_path=lpips_vgg.npz \
      --config.data.kind=tfds --config.data.name=...
"""

from gigagan_jax.config import default_config


def get_config(output_resolution: str = "256"):
    config = default_config()
    config.task = "upsampler"
    m = config.model
    m.resolution = int(output_resolution)
    m.dtype = "bfloat16"  # params, optimiser state, softmax, demodulation and losses stay float32
    u = m.upsampler
    u.input_resolution = 64
    u.down_blocks = 3
    g = m.g
    g.channel_base = 2**17  # 1024 channels up to 128 px, 512 at 256 px, 256 at 512 px
    g.channel_max = 1024
    g.num_kernels = 4
    g.self_attn_resolutions = (16, 32)
    g.cross_attn_resolutions = (16, 32)
    d = m.d
    d.channel_base = 2**17
    d.channel_max = 1024
    d.self_attn_resolutions = (8, 16)
    d.input_resolutions = tuple(r for r in (128, 64) if r < m.resolution)
    config.loss.clip_weight = 0.0
    config.loss.perceptual_weight = 10.0
    config.train.batch_size = 256
    return config
