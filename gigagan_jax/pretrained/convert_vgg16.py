"""Convert torchvision's VGG16 weights (.pth, a PyTorch state dict) to .npz, once, so evaluation
reads them with numpy and needs no torch.

    python -m gigagan_jax.tools.convert_vgg16 vgg16-397923af.pth vgg16.npz
"""

from __future__ import annotations

import numpy as np

from gigagan_jax.pretrained.vgg16 import params_from_state_dict, read_state_dict


def convert(src: str, dst: str) -> int:
    """Write the state dict's arrays under their PyTorch names; returns how many. The layout is
    checked first, so a wrong file fails here rather than at evaluation time."""
    state = read_state_dict(src)
    params_from_state_dict(state, src)
    np.savez(dst, **state)
    return len(state)
