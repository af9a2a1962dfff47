"""Convert LPIPS-VGG's PyTorch weights to one .npz (`gigagan_jax.pretrained.convert_lpips` behind
a command line).

    python -m gigagan_jax.tools.convert_lpips --vgg16 vgg16-397923af.pth --lin vgg.pth --out lpips_vgg.npz

`--lin` may be left out where the `lpips` package is installed: its shipped
lpips/weights/v0.1/vgg.pth is used.
"""

from __future__ import annotations

import argparse

from gigagan_jax.pretrained.convert_lpips import convert


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vgg16", required=True, help="torchvision's vgg16-397923af.pth")
    parser.add_argument("--lin", default=None,
                        help="lpips' weights/v0.1/vgg.pth (default: the installed lpips package's)")
    parser.add_argument("--out", required=True, help="output .npz")
    args = parser.parse_args(argv)
    n = convert(args.vgg16, args.lin, args.out)
    print(f"wrote {n} arrays to {args.out}")


if __name__ == "__main__":
    main()
