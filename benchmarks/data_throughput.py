"""Input-pipeline throughput in images/s, to check that data never starves the train step.

  python -m benchmarks.data_throughput                          # shapes, in-memory procedural
  python -m benchmarks.data_throughput --kind folder --path data_cache/emoji_prepared
  python -m benchmarks.data_throughput --mesh --random-flip     # global jax.Arrays on all devices
  python -m benchmarks.data_throughput --synthetic 2000 --resolution 256 --image-format jpeg --num-workers 0,1,2

Counts whole global batches delivered by `InputPipeline` after a warm-up, including flips,
tokens (with --tokenize) and, with --mesh, `jax.make_array_from_process_local_data`.
`--synthetic N` first writes N photo-like images (1/f noise: the spectrum of natural images, so
JPEG sizes and decode times are a photo's, not a flat shape's) at 1.25x the resolution as a caption
folder, prepares it with `--image-format`, and reports the bytes per stored example beside the
images/s of every worker count given.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np
from jax.sharding import Mesh
from PIL import Image

from gigagan_jax.config import default_config
from gigagan_jax.data import InputPipeline


def photo_like(rng: np.random.Generator, size: int) -> np.ndarray:
    """uint8 [size, size, 3] with a 1/f amplitude spectrum and correlated colour channels."""
    f = np.sqrt(np.fft.fftfreq(size)[:, None] ** 2 + np.fft.fftfreq(size)[None, :] ** 2)
    f[0, 0] = 1.0 / size
    spectrum = (rng.normal(size=(3, size, size)) + 1j * rng.normal(size=(3, size, size))) / f
    fields = np.real(np.fft.ifft2(spectrum))  # [3, H, W]
    mix = np.array([[1.0, 0.3, 0.2], [0.3, 1.0, 0.3], [0.2, 0.3, 1.0]])
    fields = np.einsum("ij,jhw->hwi", mix, fields)
    fields = (fields - fields.mean()) / (fields.std() + 1e-8)
    return np.clip(128 + 50 * fields, 0, 255).astype(np.uint8)


def synthetic_folder(count: int, resolution: int, image_format: str, cache: str) -> tuple[str, float]:
    """Prepared dataset dir of `count` photo-like images, and its bytes per example."""
    from gigagan_jax.data import builders

    root = os.path.join(cache, f"synthetic_{count}_{resolution}")
    if not os.path.isdir(root):
        os.makedirs(root + ".partial", exist_ok=True)
        rng = np.random.default_rng(0)
        for i in range(count):
            Image.fromarray(photo_like(rng, resolution * 5 // 4)).save(
                os.path.join(root + ".partial", f"{i:06d}.jpg"), quality=92)
            with open(os.path.join(root + ".partial", f"{i:06d}.txt"), "w") as f:
                f.write(f"a photograph of texture number {i} with soft colours")
        os.replace(root + ".partial", root)
    dataset_dir = builders.prepare(builders.GigaganCaptionFolder(
        src=root, resolution=resolution, image_format=image_format,
        data_dir=os.path.join(cache, f"prepared_{count}_{resolution}_{image_format}")))
    stored = sum(os.path.getsize(os.path.join(dataset_dir, n)) for n in os.listdir(dataset_dir)
                 if ".array_record-" in n)
    return dataset_dir, stored / count


def images_per_s(config, tokenizer, mesh, batches: int) -> tuple[float, int]:
    pipe = InputPipeline(config, tokenizer=tokenizer, mesh=mesh)
    for _ in range(3):
        jax.block_until_ready(next(pipe)["image"])
    start = time.perf_counter()
    for _ in range(batches):
        jax.block_until_ready(next(pipe)["image"])
    seconds = time.perf_counter() - start
    pipe.close()
    return batches * config.train.batch_size / seconds, pipe.num_examples


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", default="shapes", choices=("shapes", "folder", "emoji", "tfds"))
    p.add_argument("--path", default="", help="config.data.path")
    p.add_argument("--name", default="", help="config.data.name (kind=tfds)")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--batches", type=int, default=40, help="timed batches after 3 warm-up batches")
    p.add_argument("--prefetch", type=int, default=2)
    p.add_argument("--num-workers", default="0", help="decode processes; several comma-separated counts are run in turn")
    p.add_argument("--synthetic", type=int, default=0, help="write and prepare this many photo-like images first")
    p.add_argument("--image-format", default="auto", help="--synthetic: how the images are stored")
    p.add_argument("--cache", default="data_cache/throughput", help="--synthetic: where the images go")
    p.add_argument("--random-flip", action="store_true")
    p.add_argument("--tokenize", action="store_true", help="CLIP-tokenize captions (gigagan_jax.pretrained.tokenize)")
    p.add_argument("--mesh", action="store_true", help="global arrays on a ('data','fsdp') mesh of all devices")
    args = p.parse_args()

    config = default_config()
    config.model.resolution = args.resolution
    config.data.kind, config.data.path, config.data.name = args.kind, args.path, args.name
    bytes_each = None
    if args.synthetic:
        config.data.kind = "folder"
        config.data.path, bytes_each = synthetic_folder(args.synthetic, args.resolution, args.image_format, args.cache)
    config.data.prefetch = args.prefetch
    config.data.random_flip = args.random_flip
    config.train.batch_size = args.batch_size
    mesh = Mesh(np.asarray(jax.devices()).reshape(1, -1), ("data", "fsdp")) if args.mesh else None
    tokenizer = None
    if args.tokenize:
        from gigagan_jax.pretrained.tokenize import ClipTokenizer
        tokenizer = ClipTokenizer()
    if bytes_each is not None:
        print(f"{args.synthetic} photo-like images at {args.resolution} px stored as {args.image_format}: "
              f"{bytes_each / 1024:.1f} KiB per example (raw would be {3 * args.resolution ** 2 / 1024:.1f} KiB)")
    for workers in (int(w) for w in args.num_workers.split(",")):
        config.data.num_workers = workers
        rate, examples = images_per_s(config, tokenizer, mesh, args.batches)
        print(f"kind={config.data.kind} examples={examples} res={args.resolution} batch={args.batch_size} "
              f"prefetch={args.prefetch} workers={workers} flip={args.random_flip} "
              f"tokenize={args.tokenize} mesh={'%d devices' % len(jax.devices()) if mesh else 'none'}: "
              f"{rate:,.0f} images/s on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
