"""Prepare a dataset as ArrayRecord ahead of training (training also does this on first use).

  python -m gigagan_jax.data.prepare --kind folder --src DIR --out OUT [--resolution 64]
  python -m gigagan_jax.data.prepare --kind shapes --out OUT [--num-examples 20000]
  python -m gigagan_jax.data.prepare --kind emoji  --out OUT [--emoji-sets google,twitter]
  python -m gigagan_jax.data.prepare --kind tfds   --name coco_captions --out DATA_DIR

Then train with `--config.data.kind=folder --config.data.path=OUT` (folder, shapes, emoji) or
`--config.data.kind=tfds --config.data.name=NAME --config.data.path=DATA_DIR`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import tensorflow_datasets as tfds

from gigagan_jax.data import builders, emoji


def _dir_size_mb(path: str) -> float:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs) / 2**20


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m gigagan_jax.data.prepare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", required=True, choices=("folder", "shapes", "emoji", "tfds"),
                   help="folder: images + captions.jsonl (or .txt sidecars) in --src; shapes: the "
                        "procedural set; emoji: fetch emoji-datasource-* with npm into --src "
                        "(default OUT/raw) and prepare it; tfds: a TFDS catalogue dataset --name")
    p.add_argument("--src", default="", help="source folder (folder: required; emoji: where the raw "
                                             "images and captions.jsonl go, default OUT/raw)")
    p.add_argument("--out", required=True, help="output data_dir; the dataset is written to "
                                                "OUT/<builder>/<version>/")
    p.add_argument("--resolution", type=int, default=64,
                   help="side of the stored square images (centre crop + resize); must equal "
                        "config.model.resolution (default 64; not used by --kind tfds)")
    p.add_argument("--num-examples", type=int, default=20000, help="shapes: number of examples")
    p.add_argument("--seed", type=int, default=0, help="shapes: dataset seed (default 0, as in training)")
    p.add_argument("--emoji-sets", default="google,twitter",
                   help=f"emoji: comma-separated sets among {','.join(emoji.PACKAGES)}")
    p.add_argument("--emoji-version", default=emoji.VERSION, help="emoji: npm package version")
    p.add_argument("--name", default="", help="tfds: catalogue name, e.g. coco_captions or imagenet2012")
    args = p.parse_args(argv)
    if args.kind == "folder" and not args.src:
        p.error("--kind folder needs --src")
    if args.kind == "tfds" and not args.name:
        p.error("--kind tfds needs --name")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = os.path.abspath(os.path.expanduser(args.out))
    if args.kind == "folder":
        builder = builders.GigaganCaptionFolder(src=args.src, resolution=args.resolution, data_dir=out)
    elif args.kind == "shapes":
        builder = builders.GigaganShapes(num_examples=args.num_examples, resolution=args.resolution,
                                         seed=args.seed, data_dir=out)
    elif args.kind == "emoji":
        raw = args.src or os.path.join(out, "raw")
        pairs = emoji.fetch(raw, tuple(args.emoji_sets.split(",")), args.emoji_version)
        print(f"fetched {pairs} emoji image-caption pairs into {raw}")
        builder = builders.GigaganCaptionFolder(src=raw, resolution=args.resolution, data_dir=out)
    else:
        builder = tfds.builder(args.name, data_dir=out)
        builder.download_and_prepare(file_format="array_record")
        print(f"{args.name}: {dict((k, v.num_examples) for k, v in builder.info.splits.items())} "
              f"examples in {builder.data_dir} ({_dir_size_mb(builder.data_dir):.1f} MB)")
        return 0
    dataset_dir = builders.prepare(builder)
    skipped = len(builders.read_skipped(dataset_dir))
    print(f"prepared {builder.info.splits['train'].num_examples} examples ({skipped} skipped) at "
          f"{args.resolution} px in {dataset_dir} ({_dir_size_mb(dataset_dir):.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
