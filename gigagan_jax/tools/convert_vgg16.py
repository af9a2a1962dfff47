"""Convert torchvision's VGG16 weights (.pth) to .npz (`gigagan_jax.pretrained.convert_vgg16`
behind a command line).

    python -m gigagan_jax.tools.convert_vgg16 vgg16-397923af.pth vgg16.npz
"""

from __future__ import annotations

import argparse

from gigagan_jax.pretrained.convert_vgg16 import convert


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="vgg16-397923af.pth")
    parser.add_argument("dst", help="output .npz")
    args = parser.parse_args(argv)
    n = convert(args.src, args.dst)
    print(f"wrote {n} arrays to {args.dst}")


if __name__ == "__main__":
    main()
