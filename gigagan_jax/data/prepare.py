"""Prepare a dataset as ArrayRecord ahead of training (training also does this on first use).

  python -m gigagan_jax.data.prepare --kind folder --src DIR --out OUT [--resolution 64]
  python -m gigagan_jax.data.prepare --kind shapes --out OUT [--num-examples 20000]
  python -m gigagan_jax.data.prepare --kind emoji  --out OUT [--emoji-sets google,twitter]
  python -m gigagan_jax.data.prepare --kind shapes-folder --out OUT [--num-examples 20000] [--shape-positions ...]
  python -m gigagan_jax.data.prepare --kind coco   --images train2017/ --annotations captions_train2017.json --out OUT
  python -m gigagan_jax.data.prepare --kind webdataset --src 'shards/{00000..00999}.tar' --out OUT [--workers 8]
  python -m gigagan_jax.data.prepare --kind tfds   --name NAME --out DATA_DIR

`coco` reads MS-COCO as downloaded (2014 or 2017: an image folder and its captions JSON), every
caption of every image, with no TensorFlow (TFDS's own `coco_captions` builder needs it).
`webdataset` reads img2dataset's output as it is (tar shards of .jpg + .txt / .json).
Every kind that reads image files (all but shapes and tfds) decodes them in --workers processes.
Images are stored as `--image-format` says (gigagan_jax.data.codec): by default ("auto") a file
already of the stored size is kept as its own JPEG / PNG / WebP bytes, any other is re-encoded at
that size (JPEG q95 if it was a JPEG, else lossless PNG); "raw" keeps uint8 pixels (fastest to
read, 3 R^2 bytes each). Every caption's CLIP tokens are stored with it.
`shapes-folder` writes the shapes set as a caption folder (PNGs + captions.jsonl in OUT/raw, several
caption templates, every position) and prepares it like any folder: a user's folder with known
attributes. Then train with `--config.data.kind=folder --config.data.path=OUT` (folder, coco, shapes,
emoji, shapes-folder) or
`--config.data.kind=tfds --config.data.name=NAME --config.data.path=DATA_DIR`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import tensorflow_datasets as tfds

from gigagan_jax.config import MAX_SEED
from gigagan_jax.data import builders, codec, emoji, shapes, webdataset
from gigagan_jax.workdir import folder_problem

# The GigaGAN upsampler's largest output (a raw image is 48 MiB at this size).
MAX_RESOLUTION = 4096


def _dir_size_mb(path: str) -> float:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs) / 2**20


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m gigagan_jax.data.prepare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", required=True,
                   choices=("folder", "coco", "webdataset", "shapes", "emoji", "tfds", "shapes-folder"),
                   help="folder: images + captions.jsonl (or .txt sidecars) in --src; coco: --images and "
                        "--annotations as MS-COCO is downloaded; webdataset: tar shards --src (a brace "
                        "range, one .tar, or a folder of them); shapes: the "
                        "procedural set; shapes-folder: it, written as a caption folder into --src (default "
                        "OUT/raw) and prepared; emoji: fetch emoji-datasource-* with npm into --src "
                        "(default OUT/raw) and prepare it; tfds: a TFDS catalogue dataset --name")
    p.add_argument("--src", default="", help="source folder (folder: required; emoji: where the raw "
                                             "images and captions.jsonl go, default OUT/raw)")
    p.add_argument("--out", required=True, help="output data_dir; the dataset is written to "
                                                "OUT/<builder>/<version>/")
    p.add_argument("--resolution", type=int, default=64,
                   help="side of the stored square images (centre crop + resize); at least "
                        "config.model.resolution, best equal to it (smaller is refused, larger is "
                        "downscaled on every read; default 64; not used by --kind tfds)")
    p.add_argument("--image-format", default="auto", choices=codec.IMAGE_FORMATS,
                   help="how images are stored: auto (a file of the stored size as given, others re-encoded), "
                        "png / webp (lossless), jpeg (quality 95), raw (uint8; no decode on read)")
    p.add_argument("--num-examples", type=int, default=20000, help="shapes: number of examples")
    p.add_argument("--seed", type=int, default=0, help="shapes: dataset seed (default 0, as in training)")
    p.add_argument("--shape-positions", default="",
                   help="shapes-folder: comma-separated positions, empty = all (as config.data.shape_positions)")
    p.add_argument("--shape-scale", type=float, default=1.0,
                   help="shapes-folder: size relative to the default (as config.data.shape_scale)")
    p.add_argument("--emoji-sets", default="google,twitter",
                   help=f"emoji: comma-separated sets among {','.join(emoji.PACKAGES)}")
    p.add_argument("--emoji-version", default=emoji.VERSION, help="emoji: npm package version")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes decoding and encoding images: webdataset, folder, coco, emoji, shapes-folder "
                        "(default: one per core)")
    p.add_argument("--images", default="", help="coco: the image folder (train2017/, val2014/, ...)")
    p.add_argument("--annotations", default="", help="coco: its captions JSON (captions_train2017.json, ...)")
    p.add_argument("--name", default="", help="tfds: catalogue name, e.g. coco_captions or imagenet2012")
    args = p.parse_args(argv)
    check_args(p, args)
    return args


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse, as one usage error, what would otherwise fail deep inside TFDS or write a dataset
    no config can train on."""
    r = args.resolution
    if not (4 <= r <= MAX_RESOLUTION and r & (r - 1) == 0):
        p.error(f"--resolution must be a power of two in [4, {MAX_RESOLUTION}] (as config.model.resolution), got {r}")
    if args.num_examples < 1:
        p.error(f"--num-examples must be >= 1, got {args.num_examples}")
    if not 0 <= args.seed < MAX_SEED:
        p.error(f"--seed must be in [0, 2**32), got {args.seed}")
    if args.kind == "folder" and not args.src:
        p.error("--kind folder needs --src")
    if args.kind == "folder" and not os.path.isdir(args.src):
        p.error(f"--src {args.src} {'is a file, not a folder' if os.path.exists(args.src) else 'does not exist'}")
    if args.kind == "coco":
        for flag, path, is_there in (("--images", args.images, os.path.isdir),
                                     ("--annotations", args.annotations, os.path.isfile)):
            if not path:
                p.error(f"--kind coco needs {flag}")
            if not is_there(path):
                p.error(f"{flag} {path} does not exist" if not os.path.exists(path) else
                        f"{flag} {path} is a {'file' if os.path.isfile(path) else 'folder'}")
    if args.workers < 1:
        p.error(f"--workers must be >= 1, got {args.workers}")
    if args.kind == "webdataset":
        if not args.src:
            p.error("--kind webdataset needs --src (e.g. 'shards/{00000..00999}.tar')")
        try:
            shards = webdataset.expand(args.src)
        except ValueError as e:
            p.error(f"--src: {e}")
        missing = [path for path in shards if not os.path.isfile(path)]
        if missing or not shards:
            p.error(f"--src {args.src}: {len(missing)} shard(s) do not exist, first {missing[0]}" if missing
                    else f"--src {args.src} holds no .tar shards")
    if args.kind == "tfds" and not args.name:
        p.error("--kind tfds needs --name")
    unknown = [s for s in args.emoji_sets.split(",") if s not in emoji.PACKAGES]
    if args.kind == "emoji" and unknown:
        p.error(f"--emoji-sets: unknown set(s) {','.join(unknown)}; choose among {','.join(emoji.PACKAGES)}")
    for flag, path in (("--out", args.out), ("--src", args.src if args.kind in ("emoji", "shapes-folder") else "")):
        problem = folder_problem(os.path.expanduser(path)) if path else None
        if problem:
            p.error(f"{flag} {path} {problem}")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = os.path.abspath(os.path.expanduser(args.out))
    if args.kind == "tfds":
        try:
            builder = tfds.builder(args.name, data_dir=out)
        except tfds.core.DatasetNotFoundError:
            return _fail(f"--name {args.name} is not a TFDS catalogue dataset (tfds.list_builders() names them)")
        try:
            builder.download_and_prepare(file_format="array_record")
        except OSError as e:  # no network, a full disk
            return _fail(f"preparing {args.name} failed: {str(e).splitlines()[0]}")
        print(f"{args.name}: {dict((k, v.num_examples) for k, v in builder.info.splits.items())} "
              f"examples in {builder.data_dir} ({_dir_size_mb(builder.data_dir):.1f} MB)")
        return 0
    if args.kind == "shapes":
        builder = builders.GigaganShapes(num_examples=args.num_examples, resolution=args.resolution,
                                         seed=args.seed, image_format=args.image_format, data_dir=out)
    elif args.kind == "webdataset":
        builder = builders.GigaganWebDataset(shards=tuple(webdataset.expand(args.src)), resolution=args.resolution,
                                             image_format=args.image_format, workers=args.workers, data_dir=out)
    elif args.kind == "coco":
        builder = builders.GigaganCaptionFolder(src=args.images, annotations=args.annotations,
                                                resolution=args.resolution, image_format=args.image_format,
                                                workers=args.workers, data_dir=out)
    else:
        src = args.src
        if args.kind == "shapes-folder":
            src = args.src or os.path.join(out, "raw")
            positions = tuple(p for p in args.shape_positions.split(",") if p)
            try:
                source = shapes.ShapesSource(args.num_examples, args.resolution, args.seed, args.shape_scale, positions)
                written = shapes.write_caption_folder(source, src)
            except ValueError as e:  # unknown positions, a scale that does not fit, a folder written before
                return _fail(str(e))
            print(f"wrote {written} shape images with captions into {src}")
        if args.kind == "emoji":
            src = args.src or os.path.join(out, "raw")
            try:
                pairs = emoji.fetch(src, tuple(args.emoji_sets.split(",")), args.emoji_version)
            except (FileNotFoundError, RuntimeError, ValueError) as e:  # no npm, npm failed, a bad package
                return _fail(str(e))
            print(f"fetched {pairs} emoji image-caption pairs into {src}")
        builder = builders.GigaganCaptionFolder(src=src, resolution=args.resolution, image_format=args.image_format,
                                                workers=args.workers, data_dir=out)
    try:
        dataset_dir = builders.prepare(builder)
    except (FileNotFoundError, ValueError) as e:  # a caption folder's bad line, no readable image
        return _fail(str(e))
    skipped = len(builders.read_skipped(dataset_dir))
    count = builder.info.splits['train'].num_examples
    size = _dir_size_mb(dataset_dir)
    print(f"prepared {count} examples ({skipped} skipped) at {args.resolution} px in {dataset_dir} "
          f"({size:.1f} MB, {size * 2**20 / max(count, 1) / 1024:.1f} KiB per example, images {args.image_format})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
