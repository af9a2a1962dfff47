"""Tiny upsampler for tests: 16 -> 32 px, chained after configs/tiny.py (whose output is 16 px).

Run:  python train.py --config configs/upsampler_tiny.py --workdir runs/upsampler_tiny
"""

import os

from gigagan_jax.config import load_config


def get_config():
    # configs/tiny.py's size ("tiny"), text encoder and test-sized data and schedule.
    config = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny.py"))
    config.task = "upsampler"
    m = config.model
    m.resolution = 32  # G: 32 channels up to 16 px, 16 at 32 px
    m.upsampler.input_resolution = 16
    m.upsampler.down_blocks = 2  # 16 -> 4 px; decoder levels 8, 16, 32
    m.d.input_resolutions = (16,)
    config.loss.clip_weight = 0.0
    config.loss.perceptual = "fallback"  # tests have no LPIPS weights (one test converts random ones)
    return config
