"""CPU demo: 32 px text-to-image on the procedural shapes data; learns on a 2-core machine.

Run:  python train.py --config configs/demo.py --workdir runs/demo
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
    g.mapping_layers = 4
    g.text_dim = 128
    g.text_layers = 2
    g.text_heads = 4
    g.channel_base = 2048  # 128 channels at 4-16 px, 64 at 32 px
    g.channel_max = 128
    g.num_kernels = 4
    g.self_attn_resolutions = (8, 16)
    g.cross_attn_resolutions = (8, 16)
    g.attn_heads = 4
    g.attn_head_dim = 32
    d = m.d
    d.channel_base = 2048
    d.channel_max = 128
    d.self_attn_resolutions = (8, 16)
    d.input_resolutions = (16, 8)
    d.text_dim = 128
    d.text_layers = 1
    d.text_heads = 4
    d.attn_heads = 4
    d.attn_head_dim = 32
    config.train.batch_size = 32
    config.train.num_steps = 20000
    config.train.checkpoint_every = 500
    return config
