"""Convert pytorch-fid's FID Inception weights (.pth, a PyTorch state dict) to .npz, once, so
evaluation reads them with numpy and needs no torch.

    python -m gigagan_jax.tools.convert_inception pt_inception-2015-12-05-6726825d.pth fid_inception.npz
"""

from __future__ import annotations

from gigagan_jax.pretrained.inception import read_state_dict, variables_from_state_dict
from gigagan_jax.pretrained.weights_file import convert_to_npz


def convert(src: str, dst: str) -> int:
    """.pth -> .npz after checking the layout; returns the number of arrays written."""
    return convert_to_npz(src, dst, read_state_dict, variables_from_state_dict)
