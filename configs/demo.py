"""CPU demo: 32 px text-to-image on the procedural shapes data, sized to learn on 2 CPU cores.

About 0.35-0.43 s per D+G iteration at batch 16 on a 2-core machine: 4000 iterations (64k
images) take 25-29 minutes, after ~6 minutes training the small CLIP (config.clip.path = "")
on shapes drawn like the GAN's. At step 4000 generated images take the prompt's colour 100 % of
the time and its shape 91 % (chance 17 %; BENCHMARKS.md). Shapes sit in the center only, at 2.2x
the default size.

Run:  python train.py --config configs/demo.py --workdir runs/demo
Then: python sample.py --workdir runs/demo --prompt "a red ring in the center on a black background" --n 8
      python benchmarks/demo_conditioning.py --workdir runs/demo
"""

from gigagan_jax.config import default_config


def get_config():
    config = default_config()
    m = config.model
    m.resolution = 32
    m.text_encoder_dim = 256  # width of the small CLIP the project trains for the offline demo
    g = m.g
    g.z_dim = 64
    g.w_dim = 128
    g.mapping_layers = 2
    g.text_dim = 128
    g.text_layers = 1
    g.text_heads = 4
    g.channel_base = 1024  # 64 channels at 4-16 px, 32 at 32 px
    g.channel_max = 64
    g.num_kernels = 2
    g.self_attn_resolutions = (8, 16)
    g.cross_attn_resolutions = (8, 16)
    g.attn_heads = 2
    g.attn_head_dim = 32
    d = m.d
    d.channel_base = 1024
    d.channel_max = 64
    d.self_attn_resolutions = (8,)
    d.input_resolutions = (16, 8)
    d.text_dim = 128
    d.text_layers = 1
    d.text_heads = 4
    d.attn_heads = 2
    d.attn_head_dim = 32
    # One position, shapes 2.2x the default size (18-25 px wide at 32 px). With five positions and
    # 1.5x, 4000 steps learn colour and position (100 % each) but not shape (30 %; BENCHMARKS.md).
    config.data.shape_positions = ("center",)
    config.data.shape_scale = 2.2
    # 4x the default lr (the paper's, for large batches); every run at 1e-2 here trained stably.
    config.optim.g_lr = 0.01
    config.optim.d_lr = 0.01
    config.optim.ema_half_life_images = 2000
    config.train.batch_size = 16
    config.train.num_steps = 4000
    config.train.checkpoint_every = 500
    config.train.sample_every = 500
    config.train.log_every = 50
    return config
