"""One evaluation pass: real and generated image features -> metrics -> report.json + TensorBoard.

Metrics (each only when its network is given):
- `fid`: Fréchet distance of FID Inception-v3 pool3 features (pretrained/inception.py);
- `precision`, `recall`: improved precision/recall (k-NN manifolds) on the same features;
- `clip_fid`: Fréchet distance of projected CLIP image embeddings;
- `clip_score`: mean max(100 cos, 0) between each generated image and its prompt;
- `sampling_images_per_s`: generator throughput, timed around `sample_fn` with the first
  (compiling) batch left out.
Real features can be cached in an .npz so repeated evaluations against the same data skip the
real pass.
"""

from __future__ import annotations

import json
import time
from typing import Callable, Iterable, Iterator

import jax
import numpy as np
from tensorboardX import SummaryWriter
from tqdm import tqdm

from gigagan_jax.eval.clip_score import ClipScoreAccumulator
from gigagan_jax.eval.fid import feature_stats, frechet_distance
from gigagan_jax.eval.precision_recall import DEFAULT_K, precision_recall
from gigagan_jax.pixels import to_signed
from gigagan_jax.workdir import exists, join, open_file, write_text


def _take(batches: Iterable, num_images: int, desc: str) -> Iterator:
    """Yield batches (arrays or lists) until `num_images` rows, cutting the last one; a progress
    bar counts images."""
    seen = 0
    with tqdm(total=num_images, desc=desc, unit="img") as bar:
        for batch in batches:
            keep = min(num_images - seen, len(batch))
            seen += keep
            bar.update(keep)
            yield batch[:keep]
            if seen >= num_images:
                return
    if seen < num_images:
        raise ValueError(f"{desc}: the iterable ran out after {seen} of {num_images} images")


class _Features:
    """Collects per-network features [N, D] of a stream of [-1, 1] image batches."""

    def __init__(self, inception, clip):
        self.inception, self.clip = inception, clip
        self.parts: dict[str, list[np.ndarray]] = {"inception": [], "clip": []}

    def add(self, images, clip_embeds: np.ndarray | None = None) -> None:
        if self.inception is not None:
            self.parts["inception"].append(np.asarray(self.inception(images)))  # [B, 2048]
        if self.clip is not None:
            if clip_embeds is None:
                clip_embeds = np.asarray(self.clip.encode_image(images)[0])  # [B, P]
            self.parts["clip"].append(clip_embeds)

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.parts.items() if v}


def real_features(real_batches: Iterable, num_images: int, *, inception=None, clip=None,
                  cache: str | None = None) -> dict[str, np.ndarray]:
    """{'inception': [N, 2048], 'clip': [N, P]} (those whose network is given) of the first
    `num_images` real images; read from / written to `cache` (.npz) when given."""
    wanted = {name for name, net in (("inception", inception), ("clip", clip)) if net is not None}
    if cache is not None and exists(cache):
        with open_file(cache, "rb") as f, np.load(f) as data:
            cached = {k: data[k] for k in data.files}
        if wanted <= set(cached) and all(len(v) == num_images for v in cached.values()):
            return {k: cached[k] for k in wanted}
    features = _Features(inception, clip)
    for images in _take(real_batches, num_images, "real images"):
        features.add(to_signed(np.asarray(images)))
    arrays = features.arrays()
    if cache is not None:
        with open_file(cache, "wb") as f:
            np.savez(f, **arrays)
    return arrays


def write_report(metrics: dict, out_dir: str, step: int, metadata: dict | None = None) -> str:
    """Write `report.json` (metrics + metadata) and one TensorBoard scalar `eval/<name>` per
    numeric metric under `out_dir/tensorboard`; returns the JSON path."""
    path = join(out_dir, "report.json")
    write_text(path, json.dumps({"step": step, "metrics": metrics, **(metadata or {})}, indent=2))
    writer = SummaryWriter(join(out_dir, "tensorboard"))
    for name, value in metrics.items():
        writer.add_scalar(f"eval/{name}", value, step)
    writer.close()
    return path


def evaluate(real_batches: Iterable, prompt_batches: Iterable[list[str]],
             sample_fn: Callable[[list[str]], object], *, num_images: int, out_dir: str,
             inception=None, clip=None, step: int = 0, k: int = DEFAULT_K,
             real_cache: str | None = None, metadata: dict | None = None,
             with_clip_score: bool = True) -> dict[str, float]:
    """Evaluate a generator against real data and write the report; returns the metrics.

    real_batches: image batches [B, H, W, 3], uint8 or [-1, 1] float (any resolution).
    prompt_batches: lists of prompts; `sample_fn(prompts)` returns one [-1, 1] image per prompt.
    Class-conditional runs pass lists of class ids instead, with `with_clip_score=False` (a
    class id is no caption for CLIP to score; CLIP-FID is still computed).
    inception: an `InceptionFeatures` (pretrained/inception.py) for FID and precision/recall.
    clip: a `Clip` (pretrained/clip.py, with the vision tower) for CLIP-FID and CLIP score.
    num_images: images taken from each side (FID is biased upwards at small counts: compare
    numbers only at equal `num_images`; papers use 10k-50k).
    """
    if inception is None and clip is None:
        raise ValueError("evaluation needs the FID Inception, a CLIP, or both")
    real = real_features(real_batches, num_images, inception=inception, clip=clip,
                         cache=real_cache)

    fake = _Features(inception, clip)
    scorer = ClipScoreAccumulator(clip) if clip is not None and with_clip_score else None
    times, counts = [], []
    for prompts in _take(prompt_batches, num_images, "generated images"):
        start = time.perf_counter()
        images = jax.block_until_ready(sample_fn(list(prompts)))
        times.append(time.perf_counter() - start)
        counts.append(len(prompts))
        if len(images) != len(prompts):
            raise ValueError(f"sample_fn returned {len(images)} images for {len(prompts)} prompts")
        images = to_signed(np.asarray(images))
        fake.add(images, scorer.update(images, list(prompts)) if scorer is not None else None)
    fake_arrays = fake.arrays()

    timed = slice(1, None) if len(times) > 1 else slice(None)  # drop the compiling first call
    metrics = {"sampling_images_per_s": float(sum(counts[timed]) / sum(times[timed])),
               "num_real": num_images, "num_fake": num_images}
    if inception is not None:
        metrics["fid"] = frechet_distance(*feature_stats(real["inception"]),
                                          *feature_stats(fake_arrays["inception"]))
        metrics["precision"], metrics["recall"] = precision_recall(
            real["inception"], fake_arrays["inception"], k=k)
    if clip is not None:
        metrics["clip_fid"] = frechet_distance(*feature_stats(real["clip"]),
                                               *feature_stats(fake_arrays["clip"]))
        if scorer is not None:
            metrics["clip_score"] = scorer.result()
    write_report(metrics, out_dir, step, metadata)
    return metrics
