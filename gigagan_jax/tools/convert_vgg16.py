"""Convert torchvision's VGG16 weights (.pth) to .npz (`gigagan_jax.pretrained.convert_vgg16`
behind a command line).

    python -m gigagan_jax.tools.convert_vgg16 vgg16-397923af.pth vgg16.npz
"""

from __future__ import annotations

from gigagan_jax.pretrained.convert_vgg16 import convert
from gigagan_jax.tools.convert_cli import convert_main


def main(argv=None) -> None:
    convert_main(__doc__, "vgg16-397923af.pth", convert, argv)


if __name__ == "__main__":
    main()
