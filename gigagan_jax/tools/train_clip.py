"""Train a small CLIP on image+caption data and write it as a Hugging Face CLIP folder
(`gigagan_jax.train.small_clip` behind a command line).

    python -m gigagan_jax.tools.train_clip --data shapes --out runs/clip_small
    python -m gigagan_jax.tools.train_clip --data folder:/path/to/captions --out runs/clip_mine

Default sizes give 256-wide text tokens, matching `configs/demo.py`'s text_encoder_dim.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import gigagan_jax.cli  # noqa: F401  (first: like every command, start without PyTorch)
from gigagan_jax.config import default_config
from gigagan_jax.data.spec import SPEC_SYNTAX, apply_data_spec
from gigagan_jax.train.small_clip import SmallClipSpec, train_small_clip

_SPEC_HELP = {"holdout": "pairs kept out of training for retrieval"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m gigagan_jax.tools.train_clip", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="shapes",
                   help=f"{SPEC_SYNTAX} (as config.data)")
    p.add_argument("--out", required=True, help="output folder (HF layout: config.json + flax_model.msgpack)")
    p.add_argument("--num-examples", type=int, default=20000, help="size of the shapes set")
    p.add_argument("--shape-scale", type=float, default=1.0,
                   help="shapes only: size relative to the default (as config.data.shape_scale)")
    p.add_argument("--shape-positions", default="",
                   help="shapes only: comma-separated positions, empty = all (as config.data.shape_positions)")
    p.add_argument("--seconds", type=float, default=None,
                   help="end within about this many seconds: the steps are cut to what the measured pace allows")
    for field in dataclasses.fields(SmallClipSpec):  # one option per spec field, same default
        p.add_argument("--" + field.name.replace("_", "-"), type=type(field.default), default=field.default,
                       help=_SPEC_HELP.get(field.name))
    return p.parse_args(argv)


def data_config(args: argparse.Namespace):
    """`--data` spec and the shapes options -> the project config whose data section the CLIP reads."""
    config = default_config()
    apply_data_spec(config.data, args.data)
    config.data.num_examples = args.num_examples
    config.data.shape_scale = args.shape_scale
    config.data.shape_positions = tuple(p for p in args.shape_positions.split(",") if p)
    return config


def spec_from_args(args: argparse.Namespace) -> SmallClipSpec:
    return SmallClipSpec(**{f.name: getattr(args, f.name) for f in dataclasses.fields(SmallClipSpec)})


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    args = parse_args(given)
    try:
        metrics = train_small_clip(data_config(args), args.out, spec_from_args(args),
                                   command=" ".join(["python -m gigagan_jax.tools.train_clip"] + given),
                                   seconds=args.seconds)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
