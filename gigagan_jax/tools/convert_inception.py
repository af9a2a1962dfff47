"""Convert pytorch-fid's FID Inception weights (.pth, a PyTorch state dict) to .npz, once, so
evaluation reads them with numpy and needs no torch.

    python -m gigagan_jax.tools.convert_inception pt_inception-2015-12-05-6726825d.pth fid_inception.npz
"""

from __future__ import annotations

import argparse

import numpy as np

from gigagan_jax.models.inception import read_state_dict, variables_from_state_dict


def convert(src: str, dst: str) -> int:
    """Write the state dict's arrays under their PyTorch names; returns how many. The layout is
    checked first, so a wrong file fails here rather than at evaluation time."""
    state = read_state_dict(src)
    variables_from_state_dict(state, src)
    np.savez(dst, **state)
    return len(state)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="pt_inception-2015-12-05-6726825d.pth")
    parser.add_argument("dst", help="output .npz")
    args = parser.parse_args(argv)
    n = convert(args.src, args.dst)
    print(f"wrote {n} arrays to {args.dst}")


if __name__ == "__main__":
    main()
