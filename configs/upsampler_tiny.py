"""Tiny upsampler for tests: 16 -> 32 px, chained after configs/tiny.py (whose output is 16 px).

Run:  python train.py --config configs/upsampler_tiny.py --workdir runs/upsampler_tiny
"""

from gigagan_jax.config import default_config


def get_config():
    config = default_config()
    config.task = "upsampler"
    m = config.model
    m.resolution = 32
    m.text_encoder_dim = 32
    m.upsampler.input_resolution = 16
    m.upsampler.down_blocks = 2  # 16 -> 4 px; decoder levels 8, 16, 32
    g = m.g
    g.z_dim = 32
    g.w_dim = 32
    g.mapping_layers = 2
    g.text_dim = 32
    g.text_layers = 1
    g.text_heads = 2
    g.channel_base = 512  # 32 channels up to 16 px, 16 at 32 px
    g.channel_max = 32
    g.num_kernels = 2
    g.self_attn_resolutions = (8,)
    g.cross_attn_resolutions = (8,)
    g.attn_heads = 2
    g.attn_head_dim = 16
    d = m.d
    d.channel_base = 512
    d.channel_max = 32
    d.self_attn_resolutions = (8,)
    d.input_resolutions = (16,)
    d.text_dim = 32
    d.text_layers = 1
    d.text_heads = 2
    d.attn_heads = 2
    d.attn_head_dim = 16
    config.loss.clip_weight = 0.0
    config.data.num_examples = 512
    config.train.batch_size = 8
    config.train.num_steps = 20
    config.train.checkpoint_every = 10
    return config
