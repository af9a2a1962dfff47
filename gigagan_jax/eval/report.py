"""One evaluation pass: real and generated image features -> metrics -> report.json + TensorBoard.

A metric's name says how it was measured, so numbers taken under different protocols never share
a name (the report's `protocols` spells each one out):
- `fid_clean` / `fid_legacy`: FID on FID Inception-v3 pool3 features (pretrained/inception.py),
  the images resized to its input by clean-fid's or pytorch-fid's protocol (fid_resize.py); the
  real side may be precomputed reference statistics instead of images;
- `precision_vgg16`, `recall_vgg16`: improved precision/recall (k-NN manifolds) on VGG16 fc2
  features (pretrained/vgg16.py), the published feature space; `_inception` when only the FID
  Inception is given (its pool3 features, as resized for FID);
- `clip_fid`: Fréchet distance of projected CLIP image embeddings;
- `clip_score_<model>`: mean max(100 cos, 0) between each generated image and its prompt (with a
  prefix), `<model>` naming the scoring CLIP;
- `sampling_images_per_s`: generator throughput, timed around `sample_fn` with the first
  (compiling) batch left out.
A metric that what was given cannot measure is listed under `skipped` with the reason. Real
features can be cached in an .npz so repeated evaluations against the same data skip the real pass.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Callable, Iterable, Iterator

import jax
import numpy as np
from tqdm import tqdm

from gigagan_jax.eval.clip_score import ClipScoreAccumulator
from gigagan_jax.eval.fid import ReferenceStats, feature_stats, frechet_distance, save_stats
from gigagan_jax.eval.fid_resize import FID_RESIZES, fid_features
from gigagan_jax.eval.precision_recall import DEFAULT_K, precision_recall
from gigagan_jax.pixels import to_signed
from gigagan_jax.pretrained.vgg16 import FEATURES as VGG16_FEATURES
from gigagan_jax.workdir import exists, join, open_file, tensorboardx, write_text


@dataclasses.dataclass
class Report:
    """What `evaluate` measured: metric -> value, metric -> how it was measured, and metric ->
    why it was not measured."""

    metrics: dict[str, float]
    protocols: dict[str, str]
    skipped: dict[str, str]


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


def _feature_networks(inception=None, fid_resize: str = "clean", vgg16=None,
                     clip=None) -> dict[str, Callable]:
    """The given networks as {feature name: [-1, 1] images [B, H, W, 3] -> features [B, D]}:
    'inception_<resize>' (the FID Inception under that resize protocol), 'vgg16', 'clip'."""
    if fid_resize not in FID_RESIZES:
        raise ValueError(f"FID resize must be one of {tuple(FID_RESIZES)}, got {fid_resize!r}")
    nets = {}
    if inception is not None:
        nets[f"inception_{fid_resize}"] = lambda x: fid_features(inception, x, fid_resize)  # [B, 2048]
    if vgg16 is not None:
        nets["vgg16"] = lambda x: np.asarray(vgg16(x))  # [B, 4096]
    if clip is not None:
        nets["clip"] = lambda x: np.asarray(clip.encode_image(x)[0])  # [B, P]
    return nets


class _Features:
    """Collects per-network features [N, D] of a stream of [-1, 1] image batches."""

    def __init__(self, nets: dict[str, Callable]):
        self.nets = nets
        self.parts: dict[str, list[np.ndarray]] = {name: [] for name in nets}

    def add(self, images, known: dict[str, np.ndarray] | None = None) -> None:
        """Features of one batch; `known` holds ones computed already (CLIP embeddings of a scorer)."""
        known = known or {}
        for name, net in self.nets.items():
            self.parts[name].append(known[name] if name in known else net(images))

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.parts.items() if v}


def real_features(real_batches: Iterable, num_images: int, nets: dict[str, Callable],
                  cache: str | None = None) -> dict[str, np.ndarray]:
    """{feature name: [N, D]} of the first `num_images` real images for each of `nets`
    (`_feature_networks`); read from / written to `cache` (.npz) when given."""
    if cache is not None and exists(cache):
        with open_file(cache, "rb") as f, np.load(f) as data:
            cached = {k: data[k] for k in data.files}
        if set(nets) <= set(cached) and all(len(v) == num_images for v in cached.values()):
            return {k: cached[k] for k in nets}
    features = _Features(nets)
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
    writer = tensorboardx().SummaryWriter(join(out_dir, "tensorboard"))
    for name, value in metrics.items():
        writer.add_scalar(f"eval/{name}", value, step)
    writer.close()
    return path


def _plan(inception, fid_resize: str, vgg16, clip, score_clip, score_clip_name: str,
          score_prompt_prefix: str, ref_stats: ReferenceStats | None, reals: bool, k: int):
    """(metric -> protocol, metric -> reason skipped, the features needed of the real images,
    those needed of the generated ones) for the given networks, reference statistics and whether
    real images are read."""
    protocols, skipped, real, fake = {}, {}, set(), set()
    no_reals = "needs real images, and none were read (reference statistics stand in for FID's real side only)"
    if inception is None:
        skipped["fid"] = "no FID Inception weights given"
    elif ref_stats is None and not reals:
        skipped[f"fid_{fid_resize}"] = "neither real images nor reference statistics were given"
    else:
        real_side = (f"reference statistics ({ref_stats.count or 'an unrecorded number of'} images)"
                     if ref_stats is not None else "the real images")
        protocols[f"fid_{fid_resize}"] = (f"Fréchet distance of FID Inception-v3 pool3 features, "
                                          f"{FID_RESIZES[fid_resize]}; real side: {real_side}")
        fake.add(f"inception_{fid_resize}")
        if ref_stats is None:
            real.add(f"inception_{fid_resize}")
    pr = "vgg16" if vgg16 is not None else "inception" if inception is not None else None
    if pr is None:
        skipped["precision"] = skipped["recall"] = "no VGG16 or FID Inception weights given"
    elif not reals:
        skipped[f"precision_{pr}"] = skipped[f"recall_{pr}"] = no_reals
    else:
        features = (VGG16_FEATURES if pr == "vgg16" else
                    f"FID Inception-v3 pool3 features ({FID_RESIZES[fid_resize]}); the published metric uses VGG16")
        for name in ("precision", "recall"):
            protocols[f"{name}_{pr}"] = f"improved {name}, k={k} nearest neighbours, on {features}"
        net = "vgg16" if pr == "vgg16" else f"inception_{fid_resize}"
        real.add(net)
        fake.add(net)
    if clip is None:
        skipped["clip_fid"] = "no CLIP given"
    elif not reals:
        skipped["clip_fid"] = no_reals
    else:
        protocols["clip_fid"] = "Fréchet distance of projected CLIP image embeddings"
        real.add("clip")
        fake.add("clip")
    if score_clip is None:
        skipped["clip_score"] = "no CLIP to score prompts with"
    else:
        protocols[f"clip_score_{score_clip_name}"] = (
            f"mean max(100 cos, 0) of CLIP {score_clip_name} embeddings of each generated image "
            f"and its prompt, prefixed with {score_prompt_prefix!r}")
    protocols["sampling_images_per_s"] = "generated images per second, the first (compiling) batch left out"
    return protocols, skipped, real, fake


def evaluate(real_batches: Iterable | None, prompt_batches: Iterable[list[str]],
             sample_fn: Callable[[list[str]], object], *, num_images: int, out_dir: str,
             inception=None, fid_resize: str = "clean", ref_stats: ReferenceStats | None = None,
             save_ref_stats: str | None = None, vgg16=None, clip=None, score_clip=None,
             score_clip_name: str = "train_clip", score_prompt_prefix: str = "", step: int = 0,
             k: int = DEFAULT_K, real_cache: str | None = None,
             metadata: dict | None = None) -> Report:
    """Evaluate a generator against real data and write the report.

    real_batches: image batches [B, H, W, 3], uint8 or [-1, 1] float (any resolution); None
    reads no real images (then FID needs `ref_stats`; precision/recall and CLIP-FID are skipped).
    prompt_batches: lists of prompts; `sample_fn(prompts)` returns one [-1, 1] image per prompt.
    Class-conditional runs pass lists of class ids instead, and no `score_clip` (a class id is no
    caption for CLIP to score; CLIP-FID is still computed).
    inception: an `InceptionFeatures` (pretrained/inception.py) for FID, under `fid_resize`
    (fid_resize.py), and for precision/recall when no `vgg16` is given.
    ref_stats: FID statistics of the real set (`fid.load_stats`), used instead of real features.
    save_ref_stats: write the real images' FID statistics there (.npz, with count and resize).
    vgg16: a `VGG16Features` (pretrained/vgg16.py) for precision/recall.
    clip: a `Clip` (pretrained/clip.py, with the vision tower) for CLIP-FID.
    score_clip: a `Clip` with both towers for the CLIP score, named `score_clip_name` in the
    metric; prompts are scored as `score_prompt_prefix + prompt`.
    num_images: images taken from each side (FID is biased upwards at small counts: compare
    numbers only at equal `num_images`; papers use 10k-50k).
    """
    if inception is None and vgg16 is None and clip is None and score_clip is None:
        raise ValueError("evaluation needs the FID Inception, VGG16, a CLIP, or several")
    if (ref_stats is not None or save_ref_stats is not None) and inception is None:
        raise ValueError("FID reference statistics are Inception features: they need the FID Inception")
    if save_ref_stats is not None and (ref_stats is not None or real_batches is None):
        raise ValueError("saving reference statistics needs real images read, not statistics loaded")
    nets = _feature_networks(inception, fid_resize, vgg16, clip)
    protocols, skipped, real_needed, fake_needed = _plan(
        inception, fid_resize, vgg16, clip, score_clip, score_clip_name, score_prompt_prefix, ref_stats,
        real_batches is not None, k)
    if save_ref_stats is not None:
        real_needed.add(f"inception_{fid_resize}")
    real = (real_features(real_batches, num_images, {n: nets[n] for n in sorted(real_needed)}, real_cache)
            if real_needed else {})
    real_fid_stats = None  # (mu [D], sigma [D, D]) of FID's real side: for FID and --save_ref_stats, fitted once
    if ref_stats is not None:
        real_fid_stats = (ref_stats.mu, ref_stats.sigma)
    elif f"inception_{fid_resize}" in real:
        real_fid_stats = feature_stats(real[f"inception_{fid_resize}"])
    if save_ref_stats is not None:
        save_stats(save_ref_stats, *real_fid_stats, num_images, fid_resize)

    fake = _Features({n: nets[n] for n in sorted(fake_needed)})
    scorer = ClipScoreAccumulator(score_clip, score_prompt_prefix) if score_clip is not None else None
    times, counts = [], []
    for prompts in _take(prompt_batches, num_images, "generated images"):
        start = time.perf_counter()
        images = jax.block_until_ready(sample_fn(list(prompts)))
        times.append(time.perf_counter() - start)
        counts.append(len(prompts))
        if len(images) != len(prompts):
            raise ValueError(f"sample_fn returned {len(images)} images for {len(prompts)} prompts")
        images = to_signed(np.asarray(images))
        embeds = scorer.update(images, list(prompts)) if scorer is not None else None
        fake.add(images, {"clip": embeds} if scorer is not None and score_clip is clip else None)
    fake_arrays = fake.arrays()

    timed = slice(1, None) if len(times) > 1 else slice(None)  # drop the compiling first call
    metrics = {"sampling_images_per_s": float(sum(counts[timed]) / sum(times[timed])),
               **({"num_real": num_images} if real else {}), "num_fake": num_images}
    fid = f"fid_{fid_resize}"
    if fid in protocols:
        metrics[fid] = frechet_distance(*real_fid_stats, *feature_stats(fake_arrays[f"inception_{fid_resize}"]))
    for pr, features in (("vgg16", "vgg16"), ("inception", f"inception_{fid_resize}")):
        if f"precision_{pr}" in protocols:
            metrics[f"precision_{pr}"], metrics[f"recall_{pr}"] = precision_recall(
                real[features], fake_arrays[features], k=k)
    if "clip_fid" in protocols:
        metrics["clip_fid"] = frechet_distance(*feature_stats(real["clip"]), *feature_stats(fake_arrays["clip"]))
    if scorer is not None:
        metrics[f"clip_score_{score_clip_name}"] = scorer.result()
    write_report(metrics, out_dir, step, {"protocols": protocols, "skipped": skipped, **(metadata or {})})
    return Report(metrics, protocols, skipped)
