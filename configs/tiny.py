"""Tiny config for tests: 16 px, a few thousand parameters per layer, seconds per step on CPU.

Run:  python train.py --config configs/tiny.py --workdir runs/tiny
"""

from gigagan_jax.config import default_config


def get_config():
    config = default_config()
    m = config.model
    m.resolution = 16
    m.text_encoder_dim = 32
    g = m.g
    g.z_dim = 32
    g.w_dim = 32
    g.mapping_layers = 2
    g.text_dim = 32
    g.text_layers = 1
    g.text_heads = 2
    g.channel_base = 512  # 32 channels at 4, 8, 16 px
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
    d.input_resolutions = (8, 4)
    d.text_dim = 32
    d.text_layers = 1
    d.text_heads = 2
    d.attn_heads = 2
    d.attn_head_dim = 16
    config.data.num_examples = 512
    config.train.batch_size = 8
    config.train.num_steps = 20
    config.train.checkpoint_every = 10
    return config
