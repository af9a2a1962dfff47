"""The paper's 64 px text-to-image base model (about 640 M generator parameters; paper: 652.5 M).

Too large for a CPU: tests only build it abstractly with `jax.eval_shape`. The paper does not
publish per-resolution channels, the filter-bank size N or the depth of T; the values here
(1024 channels at every level, N = 6, 2 adaptive convs per level, attention at 8-32 px, T with
4 layers over CLIP ViT-L/14 token features) are our choice, sized to the paper's count.

Run on every host of an accelerator pod (README "Running on a pod"), with CLIP ViT-L/14 and the
vision-aided D's CLIP ViT-B/32 in local folders on each host and a caption folder prepared with
`python -m gigagan_jax.data.prepare`:
  python train.py --config configs/t2i_64.py --workdir gs://BUCKET/runs/t2i_64 \
      --config.clip.path=/mnt/disks/clip-vit-large-patch14 \
      --config.loss.vision_aided_clip_path=/mnt/disks/clip-vit-base-patch32 \
      --config.data.kind=folder --config.data.path=/mnt/disks/data/laion_subset \
      --config.train.distributed=True
"""

from gigagan_jax.config import default_config

# Vision-aided D (Kumari et al., CVPR 2022; GigaGAN Table 1: FID 14.92 -> 13.67) on its own frozen
# CLIP ViT-B/32 image tower. When it starts: the GigaGAN paper gives no schedule; the vision-aided-gan
# reference (github.com/nupurkmr9/vision-aided-gan, stylegan2/README.md, training option `--warmup`,
# "~5e5 ... when training from scratch"; stylegan2/train.py: "train with standard adversarial loss
# for 500k images and then introduce vision-aided-loss") switches it on once 500k images are seen:
# ceil(500_000 / 512) = step 977 at the paper's batch 512.
VISION_AIDED_WARMUP_IMAGES = 500_000


def get_config():
    config = default_config()
    config.model.dtype = "bfloat16"  # params, optimiser state, softmax, demodulation and losses stay float32
    config.loss.vision_aided_start = -(-VISION_AIDED_WARMUP_IMAGES // config.train.batch_size)  # 977
    config.loss.vision_aided_clip_path = "/mnt/disks/clip-vit-base-patch32"
    return config
