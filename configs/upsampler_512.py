"""The paper's text-conditioned upsampler 64 -> 512 px: 3 down blocks (64 -> 8 px) and 6 up blocks
(16 -> 512 px), otherwise as configs/upsampler_256.py.

Run:  python train.py --config configs/upsampler_512.py --workdir runs/up512 \
          --config.clip.path=/path/to/clip-vit-large-patch14 --config.loss.lpips_path=lpips_vgg.npz ...
"""

import os

from gigagan_jax.config import load_config


def get_config():
    config = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "upsampler_256.py:512"))
    config.model.d.input_resolutions = (256, 128, 64)
    config.train.batch_size = 128
    return config
