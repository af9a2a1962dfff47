"""Train a small CLIP on image+caption data and write it as a Hugging Face CLIP folder.

No pretrained CLIP can be downloaded here, yet GigaGAN's text conditioning, CLIP loss and CLIP
score all need one whose embeddings mean something for the training captions. This trains one
from scratch with CLIP's symmetric contrastive objective, on any data kind the GAN trains on
(read through `config.data`), using the real OpenAI tokenizer (so the folder is a drop-in
`config.clip.path`), and reports text->image retrieval on held-out pairs it never saw.

A run with `config.clip.path = ""` calls `train_small_clip(config, out, SmallClipSpec.for_run(config))`;
`python -m gigagan_jax.tools.train_clip` is the same function behind a command line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
import uuid

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.traverse_util import flatten_dict, unflatten_dict
from tqdm import tqdm
from transformers import CLIPConfig

from gigagan_jax.checkpoint import CheckpointError, verify_manifest, write_manifest
from gigagan_jax.config import default_config
from gigagan_jax.data import open_source
from gigagan_jax.losses.clip_loss import clip_logits
from gigagan_jax.pixels import to_signed
from gigagan_jax.pretrained.clip import (
    ClipTextTower,
    ClipVisionTower,
    clip_preprocess,
    init_params,
    load_clip,
    save_clip,
)
from gigagan_jax.pretrained.tokenize import VOCAB_SIZE, ClipTokenizer
from gigagan_jax.train.length_groups import group_rows, needed_lengths, plan_lengths

MAX_LOGIT_SCALE = float(np.log(100.0))  # CLIP clamps its temperature at 1/100
PACE_STEPS = 10  # steps timed after the first (which compiles) before the time left is estimated
# Under a time limit, the step count is fitted again every REPLAN_EVERY steps to the pace since
# step PACE_STEPS: the first ten steps run slower than the steady pace (~7 % on a 2-core EPYC).
REPLAN_EVERY = 100
# Bump when the training code changes what a spec and data produce: cached CLIPs of an older
# recipe are then trained anew instead of reused.
RECIPE = 2
# Of a time-limited CLIP's seconds, the share kept for its held-out evaluation and saving.
EVAL_SHARE = 0.1
WEIGHT_DECAY = 0.1  # AdamW's, on every matrix
TOKEN_EMBEDDING = ("text_model", "embeddings", "token_embedding", "embedding")  # [vocab, width]


@dataclasses.dataclass(frozen=True)
class SmallClipSpec:
    """Sizes and schedule of the small CLIP. Defaults give 256-wide text tokens, matching
    `configs/demo.py`'s text_encoder_dim."""

    steps: int = 1000
    batch: int = 64
    lr: float = 2e-3
    seed: int = 0
    holdout: int = 1000  # pairs kept out of training for retrieval
    image_size: int = 32
    patch: int = 4
    text_width: int = 256
    text_layers: int = 2
    vision_width: int = 128
    vision_layers: int = 2
    heads: int = 4
    projection: int = 128

    def check(self) -> None:
        """ValueError naming the first setting no CLIP can be trained or scored with."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name != "seed" and not (math.isfinite(value) and value > 0):
                raise ValueError(f"small CLIP {field.name} must be > 0, got {value}")
        if self.holdout < 100:  # scored as text->image top-1 in galleries of 100 held-out pairs
            raise ValueError(f"small CLIP holdout must be >= 100 (one retrieval gallery), got {self.holdout}")
        if self.image_size % self.patch:
            raise ValueError(f"small CLIP image_size={self.image_size} is not divisible by patch={self.patch}")
        for width in ("text_width", "vision_width"):
            if getattr(self, width) % self.heads:
                raise ValueError(f"small CLIP {width}={getattr(self, width)} is not divisible by heads={self.heads}")

    @classmethod
    def for_run(cls, config: ml_collections.ConfigDict) -> "SmallClipSpec":
        """The CLIP a GAN run trains for itself: text width = config.model.text_encoder_dim, the
        run's seed, a holdout and batch scaled to the data set, images at <= 64 px."""
        n = config.data.num_examples
        return cls(steps=config.clip.train_steps, text_width=config.model.text_encoder_dim,
                   seed=config.train.seed, holdout=max(100, min(1000, n // 10)), batch=min(128, n // 4),
                   image_size=min(config.model.resolution, 64))


def training_data_config(config: ml_collections.ConfigDict, spec: SmallClipSpec) -> ml_collections.ConfigDict:
    """The config whose data section the CLIP reads: the run's data (so its shapes are drawn the
    way the GAN's are), rendered at the CLIP's image size."""
    out = default_config()
    out.data = ml_collections.ConfigDict(config.data.to_dict())
    out.model.resolution = spec.image_size
    return out


def load_pairs(config: ml_collections.ConfigDict):
    """All examples in memory: uint8 images [N, S, S, 3] and their captions."""
    source = open_source(config)
    images, captions = [], []
    for start in range(0, len(source), 1024):
        batch = source.get_batch(np.arange(start, min(start + 1024, len(source))))
        images.append(np.asarray(batch["image"], np.uint8))
        captions.extend(batch["caption"])
    return np.concatenate(images), captions


def training_key(spec: SmallClipSpec, images: np.ndarray, captions: list[str], seconds: float | None = None) -> str:
    """What a trained small CLIP depends on: the recipe, the spec and the pairs' exact bytes, and
    for one whose steps a time limit cut short, that limit (`limited_key`)."""
    h = hashlib.sha256(json.dumps({"recipe": RECIPE, "spec": dataclasses.asdict(spec), "images": images.shape,
                                   "captions": captions}, sort_keys=True).encode())
    h.update(np.ascontiguousarray(images, np.uint8).tobytes())  # [N, S, S, 3]
    key = h.hexdigest()[:32]
    return key if seconds is None else limited_key(key, seconds)


def limited_key(key: str, seconds: float) -> str:
    """The key of a CLIP whose steps a time limit of `seconds` cut short, from its spec's key
    (the pairs are hashed once)."""
    return hashlib.sha256(f"{key} within {round(seconds)} s".encode()).hexdigest()[:32]


def _copy_from_cache(cached: str, out: str) -> bool:
    """Copy a verified cache entry to `out`; a damaged one is removed (and trained anew)."""
    if not os.path.isdir(cached):
        return False
    try:
        verify_manifest(cached)
    except CheckpointError as e:
        print(f"small CLIP: the cached one is damaged ({e}); training it anew", flush=True)
        shutil.rmtree(cached, ignore_errors=True)
        return False
    shutil.copytree(cached, out)
    return True


def _store_in_cache(out: str, cached: str) -> None:
    """Copy `out` into the cache atomically (a temporary sibling renamed into place). Failing to
    cache never fails the caller; another process caching the same CLIP first wins."""
    partial = f"{cached}.partial-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(out, partial)
        write_manifest(partial)
        os.rename(partial, cached)
        print(f"small CLIP: cached for runs on the same data -> {cached}", flush=True)
    except OSError as e:
        shutil.rmtree(partial, ignore_errors=True)
        if not os.path.isdir(cached):
            print(f"small CLIP: not cached ({e}); training goes on", flush=True)


def clip_config(spec: SmallClipSpec, vocab_size: int = VOCAB_SIZE) -> CLIPConfig:
    """The saved CLIP's config (OpenAI's vocabulary); training's has `vocab_size` rows
    (`compact_vocabulary`)."""
    return CLIPConfig(
        text_config=dict(hidden_size=spec.text_width, intermediate_size=4 * spec.text_width,
                         num_hidden_layers=spec.text_layers, num_attention_heads=spec.heads,
                         max_position_embeddings=77, vocab_size=vocab_size),
        vision_config=dict(hidden_size=spec.vision_width, intermediate_size=4 * spec.vision_width,
                           num_hidden_layers=spec.vision_layers, num_attention_heads=spec.heads,
                           image_size=spec.image_size, patch_size=spec.patch),
        projection_dim=spec.projection)


def compact_vocabulary(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The token ids the captions use, ascending, and `ids` [N, 77] renumbered into them.

    Training embeds only these rows: a dense gradient and AdamW over all 49,408 rows of the token
    table cost ~11 % of a step at batch 128. A row no caption uses gets a zero gradient, so AdamW
    only decays it (`with_unused_rows`). The order is kept, so EOT stays the largest id (the
    pooling finds it by argmax)."""
    vocab = np.unique(ids)
    return vocab, np.searchsorted(vocab, ids).astype(ids.dtype)


def with_token_embedding(params, table):
    """`params` with the token embedding table replaced by `table` [vocab, width]."""
    flat = flatten_dict(params)
    flat[TOKEN_EMBEDDING] = table
    return unflatten_dict(flat)


def with_unused_rows(params, initial: np.ndarray, vocab: np.ndarray, decay: float):
    """The full token table from a compact one: rows `vocab` as trained, every other row its
    initial value times `decay`, the product of the steps' (1 - lr * WEIGHT_DECAY)."""
    table = np.asarray(initial) * np.float32(decay)  # [49408, width]
    table[vocab] = np.asarray(flatten_dict(params)[TOKEN_EMBEDDING])
    return with_token_embedding(params, jnp.asarray(table))


def lr_schedule(spec: SmallClipSpec, steps: int) -> optax.Schedule:
    """Warm-up then cosine decay to 0 over `steps` (the spec's, or fewer under a time limit)."""
    return optax.warmup_cosine_decay_schedule(0.0, spec.lr, min(100, steps // 10 + 1), steps)


def make_optimizer(params) -> optax.GradientTransformation:
    """AdamW at learning rate 1 (`make_train_step` scales its updates), decaying every matrix."""
    return optax.adamw(1.0, b2=0.98, weight_decay=WEIGHT_DECAY, mask=jax.tree.map(lambda p: p.ndim >= 2, params))


def make_train_step(config: CLIPConfig, optimizer: optax.GradientTransformation):
    """step(params, opt_state, id_groups, pixels, lr): `optimizer` runs at learning rate 1 and its
    updates are scaled by `lr`, so the schedule is the host's and may change length mid-run.
    `id_groups` is a tuple of [B_g, L_g] token arrays (`length_groups.LengthPlan.split`), each
    encoded at its own length; `pixels` holds their images in the same order."""
    text = ClipTextTower(config.text_config, config.projection_dim)
    vision = ClipVisionTower(config.vision_config, config.projection_dim)

    def loss_fn(params, id_groups, pixels):  # id_groups: ([B_g, L_g], ...), pixels [B, S, S, 3] in [-1, 1]
        text_params = {"params": {k: params[k] for k in ("text_model", "text_projection")}}
        t = jnp.concatenate([text.apply(text_params, ids)[2] for ids in id_groups])  # [B, P]
        x = clip_preprocess(pixels, config.vision_config.image_size)
        i, _ = vision.apply({"params": {k: params[k] for k in ("vision_model", "visual_projection")}}, x)
        logits = clip_logits(i, t, params["logit_scale"])  # [B, B] image -> caption
        labels = jnp.arange(pixels.shape[0])
        image_to_text = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        text_to_image = optax.softmax_cross_entropy_with_integer_labels(logits.T, labels).mean()
        return 0.5 * (image_to_text + text_to_image)

    @jax.jit
    def step(params, opt_state, id_groups, pixels, lr):
        loss, grads = jax.value_and_grad(loss_fn)(params, id_groups, pixels)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        updates = jax.tree.map(lambda u: lr * u, updates)
        params = optax.apply_updates(params, updates)
        params["logit_scale"] = jnp.clip(params["logit_scale"], 0.0, MAX_LOGIT_SCALE)
        return params, opt_state, loss

    return step


def retrieval_top1(text_embeds: np.ndarray, image_embeds: np.ndarray, gallery: int) -> float:
    """Text->image top-1 accuracy: each caption ranks the images of its gallery of `gallery`
    consecutive held-out pairs (chance = 1 / gallery)."""
    hits, total = 0, 0
    for start in range(0, len(text_embeds) - gallery + 1, gallery):
        t, i = text_embeds[start:start + gallery], image_embeds[start:start + gallery]
        sims = np.asarray(clip_logits(t, i, 0.0))  # [G, G], caption -> image
        hits += int((sims.argmax(axis=1) == np.arange(gallery)).sum())
        total += gallery
    return hits / total


def evaluate(path: str, images: np.ndarray, captions: list[str]) -> dict[str, float]:
    """Held-out retrieval through the normal loader, as the GAN will see the model."""
    clip = load_clip(path)
    texts, pics = [], []
    for start in range(0, len(captions), 250):
        texts.append(np.asarray(clip.encode_text(clip.tokenize(captions[start:start + 250]))[2]))
        pixels = to_signed(images[start:start + 250])
        pics.append(np.asarray(clip.encode_image(pixels)[0]))
    t, i = np.concatenate(texts), np.concatenate(pics)
    return {"top1_gallery100": retrieval_top1(t, i, 100), "chance_gallery100": 0.01,
            f"top1_gallery{len(t)}": retrieval_top1(t, i, len(t)), f"chance_gallery{len(t)}": 1 / len(t)}


def train_small_clip(config: ml_collections.ConfigDict, out: str, spec: SmallClipSpec,
                     command: str = "", cache_dir: str | None = None, seconds: float | None = None) -> dict:
    """Train on `config`'s data (`training_data_config`), write the HF folder `out` with
    `train_clip.json` (held-out retrieval, the spec, `command` when given); returns the metrics.

    With `seconds`, all of it (loading, compiling, training, evaluating) ends within about that
    long: after `PACE_STEPS` timed steps the step count is cut to what fits, and the learning-rate
    schedule is stretched over the new count; every `REPLAN_EVERY` steps the count is fitted again
    to the steady pace (a small step in the lr where it moves). With `cache_dir`, a CLIP trained before on the same
    pairs with the same spec and recipe (`training_key`; and the same time limit, if that cut it
    short) is copied instead of trained, and a newly trained one is cached there."""
    began = time.time()
    spec.check()
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(f"a small CLIP's time limit must be > 0 seconds, got {seconds}")
    images, captions = load_pairs(training_data_config(config, spec))
    if len(captions) <= spec.holdout + spec.batch:
        raise ValueError(f"the data has {len(captions)} pairs: too few to train a small CLIP on (it holds out "
                         f"{spec.holdout} and trains on batches of {spec.batch}); use more data, or give train.py "
                         "a CLIP folder (Hugging Face layout) with --config.clip.path=DIR")
    # The CLIP of the whole spec first; then one a time limit like this one cut short.
    keys = [training_key(spec, images, captions)]
    keys += [limited_key(keys[0], seconds)] if seconds else []
    cached = next((os.path.join(cache_dir, key) for key in keys if cache_dir
                   and _copy_from_cache(os.path.join(cache_dir, key), out)), None)
    if cached:
        with open(os.path.join(out, "train_clip.json")) as f:
            metrics = {**json.load(f), "reused_from": cached}
        with open(os.path.join(out, "train_clip.json"), "w") as f:
            json.dump(metrics, f, indent=2)
        print(f"small CLIP: reusing the one trained on the same data and spec ({cached}; held-out top-1 "
              f"{metrics['top1_gallery100']:.2f} among 100)", flush=True)
        return metrics
    # The held-out pairs are a fixed random subset; training never sees them.
    order = np.random.default_rng(spec.seed).permutation(len(captions))
    test_idx, train_idx = order[:spec.holdout], order[spec.holdout:]
    ids = ClipTokenizer()(captions)  # [N, 77]
    needed = needed_lengths(ids)  # [N]
    lengths = plan_lengths(needed[train_idx], spec.batch)
    vocab, ids = compact_vocabulary(ids)

    hf_config = clip_config(spec)
    params = init_params(hf_config, jax.random.key(spec.seed))
    initial_table = flatten_dict(params)[TOKEN_EMBEDDING]
    params = with_token_embedding(params, initial_table[vocab])
    unused_decay = 1.0  # of the token rows no caption uses
    steps = spec.steps
    schedule = lr_schedule(spec, steps)
    optimizer = make_optimizer(params)
    opt_state = optimizer.init(params)
    step = make_train_step(clip_config(spec, len(vocab)), optimizer)
    rng = np.random.default_rng(spec.seed + 1)
    limit = f", within {seconds:.0f} s (the steps fitted to the measured pace)" if seconds else ""
    print(f"small CLIP: {spec.steps} steps of {spec.batch} pairs ({len(train_idx)} to train on, {spec.holdout} held "
          f"out), {spec.image_size} px images; captions by length: {lengths.describe()}{limit}", flush=True)
    start = time.time()
    step_ends = []
    progress = tqdm(total=steps, desc="small CLIP", unit="step", mininterval=5.0)
    def fitted(i: int, pace: float) -> int:
        """The step count that ends before the evaluation's share of the time limit, step i (the
        next to run) included: a re-plan never ends the run on a step the old schedule set."""
        left = ((1 - EVAL_SHARE) * seconds - (time.time() - began)) / pace
        return min(spec.steps, max(i + 1, i + math.floor(left)))

    def of_steps() -> str:
        return f" of {steps} (the time limit's; {spec.steps} asked)" if steps < spec.steps else ""

    i = whole_batches = 0
    while i < steps:
        # Plans are made before step i runs, so every step, the last included, takes its lr from
        # the schedule of the count it ends up in.
        if i == PACE_STEPS + 1:
            pace = (step_ends[-1] - step_ends[0]) / PACE_STEPS
            if seconds is not None:
                steps = fitted(i, pace)
                schedule, progress.total = lr_schedule(spec, steps), steps
            tqdm.write(f"small CLIP: {pace:.3f} s/step over steps 1-{PACE_STEPS} (step 0 compiled in "
                       f"{step_ends[0] - start:.0f} s): about {pace * (steps - i):.0f} s "
                       f"({pace * (steps - i) / 60:.1f} min) for the {steps - i} steps left" + of_steps())
        elif seconds is not None and i > PACE_STEPS and i % REPLAN_EVERY == 0:
            jax.block_until_ready(loss)  # step i - 1's
            pace = (time.time() - step_ends[-1]) / (i - 1 - PACE_STEPS)  # steady: since step PACE_STEPS
            fit = fitted(i, pace)
            if fit != steps:
                steps = fit
                schedule, progress.total = lr_schedule(spec, steps), steps
                tqdm.write(f"small CLIP: re-planned at step {i} ({pace:.3f} s/step since step {PACE_STEPS}): "
                           f"{steps - i} steps left" + of_steps())
        batch = rng.choice(train_idx, spec.batch, replace=False)
        groups = lengths.split(needed[batch])
        if len(groups) < len(lengths.sizes):  # more long captions than the plan has room for
            whole_batches += 1
        id_groups, order = group_rows(groups, ids[batch])  # ([B_g, L_g], ...), [B]
        pixels = to_signed(images[batch[order]])  # [B, S, S, 3], in the groups' order
        lr = schedule(i)
        params, opt_state, loss = step(params, opt_state, id_groups, pixels, lr)
        unused_decay *= 1 - float(lr) * WEIGHT_DECAY
        if i <= PACE_STEPS:
            jax.block_until_ready(loss)
            step_ends.append(time.time())
        if i % 100 == 0 or i == steps - 1:
            tqdm.write(f"step {i:5d}  loss {float(loss):.4f}  logit_scale {float(params['logit_scale']):.2f}  "
                       f"{time.time() - start:.0f}s")
        i += 1
        progress.update(1)
    progress.close()

    save_clip(out, hf_config, with_unused_rows(params, initial_table, vocab, unused_decay))
    metrics = evaluate(out, images[test_idx], [captions[j] for j in test_idx])
    metrics.update(steps=steps, batch=spec.batch, train_pairs=len(train_idx), caption_lengths=lengths.describe(),
                   batches_over_the_plan=whole_batches,
                   seconds=round(time.time() - start, 1), spec=dataclasses.asdict(spec),
                   data=config.data.to_dict())
    if seconds is not None:
        metrics.update(time_limit_seconds=round(seconds, 1), seconds_with_loading=round(time.time() - began, 1))
    if command:
        metrics["command"] = command
    with open(os.path.join(out, "train_clip.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    if cache_dir:  # under the time limit's key when it cut the steps short
        _store_in_cache(out, os.path.join(cache_dir, keys[-1] if steps < spec.steps else keys[0]))
    return metrics
