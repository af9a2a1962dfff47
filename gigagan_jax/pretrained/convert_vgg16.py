"""Convert torchvision's VGG16 weights (.pth, a PyTorch state dict) to .npz, once, so evaluation
reads them with numpy and needs no torch.

    python -m gigagan_jax.tools.convert_vgg16 vgg16-397923af.pth vgg16.npz
"""

from __future__ import annotations

from gigagan_jax.pretrained.vgg16 import params_from_state_dict, read_state_dict
from gigagan_jax.pretrained.weights_file import convert_to_npz


def convert(src: str, dst: str) -> int:
    """.pth -> .npz after checking the layout; returns the number of arrays written."""
    return convert_to_npz(src, dst, read_state_dict, params_from_state_dict)
