"""Class-conditional upsampler for ImageNet 64 -> 256 px (the paper's ImageNet upsampler setting):
as configs/upsampler_256.py with a learned class embedding instead of text (no CLIP, no
cross-attention). Chain it after a class-conditional 64 px base model.

Run:  python train.py --config configs/upsampler_imagenet256.py --workdir runs/up_in256 \
          --config.data.kind=tfds --config.data.name=imagenet2012 --config.loss.lpips_path=lpips_vgg.npz
"""

import os

from gigagan_jax.config import load_config


def get_config():
    config = load_config(os.path.join(os.path.dirname(os.path.abspath(__file__)), "upsampler_256.py:256"))
    config.model.conditioning = "class"
    config.model.num_classes = 1000
    config.model.g.cross_attn_resolutions = ()
    config.data.kind = "tfds"
    config.data.name = "imagenet2012"
    return config
