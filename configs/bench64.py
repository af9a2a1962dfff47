"""Side-by-side benchmark shape of DESIGN.md section 13 (equal work with the PyTorch reference).

64 px, batch 8, fp32. G: 64 channels at every level 4..64, 2 adaptive convs per level with N = 4
kernels, self- and cross-attention at 8 and 16 px (4 heads x 16), mapping 4 layers with
z = w = 64, text transformer 2 layers 64 wide over 512-wide CLIP-B token features.
D: 64 channels per stage, L2 self-attention at 8 and 16 px, multi-scale inputs at 32/16/8.

Run:  python benchmarks/step_speed.py --config configs/bench64.py
"""

from gigagan_jax.config import default_config


def get_config():
    config = default_config()
    m = config.model
    m.resolution = 64
    m.text_encoder_dim = 512
    g = m.g
    g.z_dim = 64
    g.w_dim = 64
    g.mapping_layers = 4
    g.text_dim = 64
    g.text_layers = 2
    g.text_heads = 4
    g.channel_base = 64 * 64
    g.channel_max = 64
    g.convs_per_level = 2
    g.num_kernels = 4
    g.self_attn_resolutions = (8, 16)
    g.cross_attn_resolutions = (8, 16)
    g.attn_heads = 4
    g.attn_head_dim = 16
    d = m.d
    d.channel_base = 64 * 64
    d.channel_max = 64
    d.self_attn_resolutions = (8, 16)
    d.input_resolutions = (32, 16, 8)
    d.text_dim = 64
    d.text_layers = 2
    d.text_heads = 4
    d.attn_heads = 4
    d.attn_head_dim = 16
    config.train.batch_size = 8
    config.mesh.shape = (1, 1)
    return config
