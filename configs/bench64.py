"""Side-by-side benchmark shape of DESIGN.md section 13 (equal work with the PyTorch reference).

64 px, batch 8, fp32. G: 64 channels at every level 4..64, 2 adaptive convs per level with N = 4
kernels, self- and cross-attention at 8 and 16 px (4 heads x 16), mapping 4 layers with
z = w = 64, text transformer 2 layers 64 wide over 512-wide CLIP-B token features.
D: 64 channels per stage, L2 self-attention at 8 and 16 px, multi-scale inputs at 32/16/8.

Run:  python -m benchmarks.step_speed --config configs/bench64.py
"""

from gigagan_jax.config import apply_size, default_config


def get_config():
    config = apply_size(default_config(), "bench64")
    m = config.model
    m.resolution = 64
    m.text_encoder_dim = 512
    m.d.input_resolutions = (32, 16, 8)
    config.train.batch_size = 8
    config.mesh.shape = (1, 1)
    return config
