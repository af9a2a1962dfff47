"""Convert pytorch-fid's FID Inception weights (.pth, a PyTorch state dict) to .npz, once, so
evaluation reads them with numpy and needs no torch.

    python -m gigagan_jax.tools.convert_inception pt_inception-2015-12-05-6726825d.pth fid_inception.npz
"""

from __future__ import annotations


import numpy as np

from gigagan_jax.pretrained.inception import read_state_dict, variables_from_state_dict


def convert(src: str, dst: str) -> int:
    """Write the state dict's arrays under their PyTorch names; returns how many. The layout is
    checked first, so a wrong file fails here rather than at evaluation time."""
    state = read_state_dict(src)
    variables_from_state_dict(state, src)
    np.savez(dst, **state)
    return len(state)
