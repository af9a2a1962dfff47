"""Convert pytorch-fid's FID Inception weights (.pth) to .npz (`gigagan_jax.pretrained.convert_inception`
behind a command line).

    python -m gigagan_jax.tools.convert_inception pt_inception-2015-12-05-6726825d.pth fid_inception.npz
"""

from __future__ import annotations

import argparse

from gigagan_jax.pretrained.convert_inception import convert


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="pt_inception-2015-12-05-6726825d.pth")
    parser.add_argument("dst", help="output .npz")
    args = parser.parse_args(argv)
    n = convert(args.src, args.dst)
    print(f"wrote {n} arrays to {args.dst}")


if __name__ == "__main__":
    main()
