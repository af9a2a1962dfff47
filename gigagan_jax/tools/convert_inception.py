"""Convert pytorch-fid's FID Inception weights (.pth) to .npz (`gigagan_jax.pretrained.convert_inception`
behind a command line).

    python -m gigagan_jax.tools.convert_inception pt_inception-2015-12-05-6726825d.pth fid_inception.npz
"""

from __future__ import annotations

from gigagan_jax.pretrained.convert_inception import convert
from gigagan_jax.tools.convert_cli import convert_main


def main(argv=None) -> None:
    convert_main(__doc__, "pt_inception-2015-12-05-6726825d.pth", convert, argv)


if __name__ == "__main__":
    main()
