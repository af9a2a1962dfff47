"""The command line every weight converter shares: `python -m gigagan_jax.tools.convert_X SRC DST`."""

from __future__ import annotations

import argparse
from typing import Callable


def convert_main(doc: str, src_name: str, convert: Callable[[str, str], int], argv=None) -> None:
    """Parse SRC (named `src_name` in the help) and DST, run `convert(src, dst)`, say what it wrote."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("src", help=src_name)
    parser.add_argument("dst", help="output .npz")
    args = parser.parse_args(argv)
    n = convert(args.src, args.dst)
    print(f"wrote {n} arrays to {args.dst}")
