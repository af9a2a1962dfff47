"""Preparing WebDataset shards (`prepare --kind webdataset`): samples/s with 1 and with W decode workers.

  python -m benchmarks.webdataset_prepare [--shards 8] [--per-shard 250] [--source-px 256] \
      [--resolution 64] [--workers 2]

Writes synthetic img2dataset-style shards (random-noise JPEGs at --source-px, quality 90, with .txt
captions) to a temporary folder, then times the whole preparation (decode, resize, ArrayRecord
writing) once per worker count, each into a fresh output folder.
"""

from __future__ import annotations

import argparse
import io
import os
import tarfile
import tempfile
import time

import numpy as np
from PIL import Image

from gigagan_jax.data import builders


def write_shards(folder: str, shards: int, per_shard: int, px: int) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for s in range(shards):
        path = os.path.join(folder, f"{s:05d}.tar")
        with tarfile.open(path, "w") as tar:
            for i in range(per_shard):
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (px, px, 3), np.uint8)).save(buf, format="JPEG", quality=90)
                for name, data in ((f"{s:05d}{i:04d}.jpg", buf.getvalue()), (f"{s:05d}{i:04d}.txt", b"a caption")):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        paths.append(path)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--per-shard", type=int, default=250)
    p.add_argument("--source-px", type=int, default=256)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        shards = write_shards(tmp, args.shards, args.per_shard, args.source_px)
        n = args.shards * args.per_shard
        rates = {}
        for workers in sorted({1, args.workers}):
            builder = builders.GigaganWebDataset(shards=tuple(shards), resolution=args.resolution, workers=workers,
                                                 data_dir=os.path.join(tmp, f"out{workers}"))
            began = time.perf_counter()
            builders.prepare(builder)
            rates[workers] = n / (time.perf_counter() - began)
            print(f"workers {workers}: {n} samples of {args.source_px} px JPEG -> {args.resolution} px in "
                  f"{n / rates[workers]:.1f} s = {rates[workers]:.0f} samples/s")
        if len(rates) > 1:
            print(f"{args.workers} workers / 1: {rates[args.workers] / rates[1]:.2f}x ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
