"""Input-pipeline throughput in images/s, to check that data never starves the train step.

  python -m benchmarks.data_throughput                          # shapes, in-memory procedural
  python -m benchmarks.data_throughput --kind folder --path data_cache/emoji_prepared
  python -m benchmarks.data_throughput --mesh --random-flip     # global jax.Arrays on all devices

Counts whole global batches delivered by `InputPipeline` after a warm-up, including flips,
tokens (with --tokenize) and, with --mesh, `jax.make_array_from_process_local_data`.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from jax.sharding import Mesh

from gigagan_jax.config import default_config
from gigagan_jax.data import InputPipeline


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", default="shapes", choices=("shapes", "folder", "emoji", "tfds"))
    p.add_argument("--path", default="", help="config.data.path")
    p.add_argument("--name", default="", help="config.data.name (kind=tfds)")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--batches", type=int, default=40, help="timed batches after 3 warm-up batches")
    p.add_argument("--prefetch", type=int, default=2)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--random-flip", action="store_true")
    p.add_argument("--tokenize", action="store_true", help="CLIP-tokenize captions (gigagan_jax.pretrained.tokenize)")
    p.add_argument("--mesh", action="store_true", help="global arrays on a ('data','fsdp') mesh of all devices")
    args = p.parse_args()

    config = default_config()
    config.model.resolution = args.resolution
    config.data.kind, config.data.path, config.data.name = args.kind, args.path, args.name
    config.data.prefetch, config.data.num_workers = args.prefetch, args.num_workers
    config.data.random_flip = args.random_flip
    config.train.batch_size = args.batch_size
    mesh = Mesh(np.asarray(jax.devices()).reshape(1, -1), ("data", "fsdp")) if args.mesh else None
    tokenizer = None
    if args.tokenize:
        from gigagan_jax.pretrained.tokenize import ClipTokenizer
        tokenizer = ClipTokenizer()

    pipe = InputPipeline(config, tokenizer=tokenizer, mesh=mesh)
    for _ in range(3):
        jax.block_until_ready(next(pipe)["image"])
    start = time.perf_counter()
    for _ in range(args.batches):
        jax.block_until_ready(next(pipe)["image"])
    seconds = time.perf_counter() - start
    pipe.close()
    images = args.batches * args.batch_size
    print(f"kind={args.kind} examples={pipe.num_examples} res={args.resolution} batch={args.batch_size} "
          f"prefetch={args.prefetch} workers={args.num_workers} flip={args.random_flip} "
          f"tokenize={args.tokenize} mesh={'%d devices' % len(jax.devices()) if mesh else 'none'}: "
          f"{images / seconds:,.0f} images/s ({images} images in {seconds:.2f} s)")


if __name__ == "__main__":
    main()
