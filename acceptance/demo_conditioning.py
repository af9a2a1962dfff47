"""Does a trained run follow its prompts? Colour, shape and position accuracy of generated images.

    python -m acceptance.demo_conditioning --workdir runs/demo [--step N] [--n 8]

Works on any run whose training captions name a colour, a shape and (optionally) a position from
the shapes vocabulary: the built-in shapes source, or a caption folder (`prepare --kind
shapes-folder`, or a user's own). Labels come from the run's own captions (`parse_caption`), so
a small CNN learns to read colour (8 classes), shape (6) and position (5) off the run's own
training images (about a minute on 2 cores); its accuracy on held-out training images is the
checker's ceiling. It then scores images the run's G_ema draws for every (colour, shape) pair.

Each pair's prompt is a training caption, chosen at random, with its colour, shape and position
swapped for the pair's (the position drawn from those the captions use): the data's own wording
and templates, but a caption that appears nowhere in the training set when one can be made that
way (`prompts_unseen_in_training` says how many could). Position is scored when the captions use
more than one. Writes a grid (one row per colour, one column per shape) next to the run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gigagan_jax.data.shapes import COLOURS, POSITIONS, SHAPES, parse_caption
from gigagan_jax.generate.grid import make_grid, save_png
from gigagan_jax.generate.restore import load_trained_generator
from gigagan_jax.generate.sample import sample_prompts
from gigagan_jax.pixels import to_signed
from gigagan_jax.train.small_clip import load_pairs

# Columns of every label array: 0 colour, 1 shape, 2 position.
ATTRIBUTES = {"colour": tuple(COLOURS), "shape": SHAPES, "position": tuple(POSITIONS)}
MAX_TRAIN_IMAGES = 12_000  # the classifier's data: the first images; the last HELD_OUT of them score it
HELD_OUT = 2_000
PROMPT_TRIES = 200  # training captions tried per pair for one that stays unseen after the swap


class AttributeNet(nn.Module):
    """Tiny CNN: image [B, R, R, 3] in [-1, 1] -> logits for colour [B, 8], shape [B, 6], position [B, 5]."""

    @nn.compact
    def __call__(self, x):
        for features in (32, 64, 128):
            x = nn.relu(nn.Conv(features, (3, 3))(x))
            x = nn.max_pool(x, (2, 2), (2, 2))
        x = jnp.mean(x, axis=(1, 2))  # [B, 128]
        x = nn.relu(nn.Dense(128)(x))
        return tuple(nn.Dense(len(names))(x) for names in ATTRIBUTES.values())


def caption_labels(captions: Sequence[str]) -> np.ndarray:
    """int [N, 3]: the (colour, shape, position) index each caption names, -1 where it names none."""
    labels = np.full((len(captions), len(ATTRIBUTES)), -1, np.int64)
    for row, caption in enumerate(captions):
        found = parse_caption(caption)
        for col, (name, vocab) in enumerate(ATTRIBUTES.items()):
            if found[name] is not None:
                labels[row, col] = vocab.index(found[name])
    return labels


def train_classifier(images: np.ndarray, labels: np.ndarray, steps: int = 600, batch: int = 128,
                     held_out: int = HELD_OUT):
    """Fit AttributeNet to uint8 images [N, R, R, 3] and labels [N, 3] (-1 = unknown, not trained on).

    Returns (predict: images in [-1, 1] -> [colour, shape, position] index arrays, the accuracy per
    attribute on the last `held_out` images, None where they have no such labels)."""
    known = np.flatnonzero((labels[:, :2] >= 0).all(1))  # a colour and a shape named
    if len(known) < 2 * held_out:
        raise ValueError(f"only {len(known)} training captions name both a colour {tuple(COLOURS)} and a "
                         f"shape {SHAPES}; the checker needs at least {2 * held_out}")
    train_idx, test_idx = known[:-held_out], known[-held_out:]
    x = to_signed(images)
    net = AttributeNet()
    params = net.init(jax.random.PRNGKey(0), x[:1])
    tx = optax.adam(2e-3)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, x, y):  # y [B, 3]
        def loss_fn(p):
            total = 0.0
            for k, logits in enumerate(net.apply(p, x)):
                mask = y[:, k] >= 0
                ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(y[:, k], 0))
                total += jnp.sum(jnp.where(mask, ce, 0.0)) / jnp.maximum(jnp.sum(mask), 1)
            return total
        grads = jax.grad(loss_fn)(params)
        updates, opt = tx.update(grads, opt)
        return optax.apply_updates(params, updates), opt

    rng = np.random.default_rng(0)
    for _ in range(steps):
        i = rng.choice(train_idx, batch, replace=False)
        params, opt = step(params, opt, x[i], labels[i])
    predict = jax.jit(lambda x: [jnp.argmax(l, -1) for l in net.apply(params, x)])
    guessed = np.stack([np.asarray(p) for p in predict(x[test_idx])], -1)  # [held_out, 3]
    ceiling = {}
    for k, name in enumerate(ATTRIBUTES):
        named = labels[test_idx, k] >= 0
        ceiling[name] = float(np.mean(guessed[named, k] == labels[test_idx][named, k])) if named.any() else None
    return predict, ceiling


def _swap(caption: str, named: np.ndarray, colour: str, shape: str, position: str | None) -> str:
    """`caption`, whose (colour, shape, position) indices are `named` [3], naming `colour`, `shape`
    (and `position`) instead."""
    was = {name: vocab[i] if i >= 0 else None for (name, vocab), i in zip(ATTRIBUTES.items(), named)}
    out = re.sub(rf"\b{was['colour']}\b", colour, caption, count=1)
    out = re.sub(rf"\b(a|an) {colour}\b", f"{'an' if colour[0] in 'aeiou' else 'a'} {colour}", out, count=1)
    out = re.sub(rf"\b{was['shape']}\b", shape, out, count=1)
    if position is not None and was["position"] is not None:
        out = re.sub(rf"\b{was['position']}\b", position, out, count=1)
    return out


def held_out_prompts(captions: Sequence[str], labels: np.ndarray, seed: int = 0):
    """One prompt per (colour, shape) pair, in the order of itertools.product(COLOURS, SHAPES).

    Returns (prompts, wanted int [48, 3] with position -1 when the captions use one position or none,
    unseen bool [48]: the prompt is no training caption)."""
    rng = np.random.default_rng(seed)
    seen = set(captions)
    positions = sorted(set(labels[:, 2][labels[:, 2] >= 0].tolist()))
    scored = len(positions) > 1
    # Bases name all three (or colour and shape, when no caption names a position).
    need = 3 if positions else 2
    bases = np.flatnonzero((labels[:, :need] >= 0).all(1))
    prompts, wanted, unseen = [], [], []
    for c, s in itertools.product(range(len(COLOURS)), range(len(SHAPES))):
        for _ in range(PROMPT_TRIES):
            q = int(rng.choice(positions)) if positions else -1
            base = int(rng.choice(bases))
            prompt = _swap(captions[base], labels[base], ATTRIBUTES["colour"][c], SHAPES[s],
                           ATTRIBUTES["position"][q] if q >= 0 else None)
            if prompt not in seen:
                break
        prompts.append(prompt)
        wanted.append((c, s, q if scored else -1))
        unseen.append(prompt not in seen)
    return prompts, np.asarray(wanted, np.int64), np.asarray(unseen)


def score(predict: Callable, generate: Callable[[list[str], int], np.ndarray], prompts: list[str],
          wanted: np.ndarray, n: int) -> tuple[dict, np.ndarray]:
    """Accuracy of `generate(prompts, n)` (uint8 [len(prompts) * n, R, R, 3], prompt-major) read by
    `predict`, against `wanted` [P, 3] (-1: not scored). Returns (figures, the images)."""
    images = generate(prompts, n)
    guessed = np.stack([np.asarray(p) for p in predict(to_signed(images))], -1)  # [P*n, 3]
    want = np.repeat(wanted, n, axis=0)  # [P*n, 3]
    hit = guessed == want
    figures = {
        "images": int(len(images)),
        "colour_accuracy": float(hit[:, 0].mean()), "colour_chance": 1 / len(COLOURS),
        "shape_accuracy": float(hit[:, 1].mean()), "shape_chance": 1 / len(SHAPES),
        "both_accuracy": float((hit[:, 0] & hit[:, 1]).mean()),
        "shape_accuracy_by_shape": {name: float(hit[want[:, 1] == k, 1].mean())
                                    for k, name in enumerate(SHAPES)},
        "shape_read_as": {name: dict(zip(SHAPES, np.bincount(guessed[want[:, 1] == k, 1],
                                                             minlength=len(SHAPES)).tolist()))
                          for k, name in enumerate(SHAPES)},
    }
    if (wanted[:, 2] >= 0).all():
        figures["position_accuracy"] = float(hit[:, 2].mean())
        figures["position_chance"] = 1 / len(set(wanted[:, 2].tolist()))
    return figures, images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--step", type=int, default=None)
    parser.add_argument("--n", type=int, default=8, help="images per (colour, shape) prompt")
    parser.add_argument("--truncation", type=float, default=1.0)
    args = parser.parse_args()

    trained = load_trained_generator(args.workdir, args.step)
    resolution = trained.config.model.resolution
    images, captions = load_pairs(trained.config)  # the run's own data, as training read it
    labels = caption_labels(captions)
    predict, ceiling = train_classifier(images[:MAX_TRAIN_IMAGES], labels[:MAX_TRAIN_IMAGES])
    prompts, wanted, unseen = held_out_prompts(captions, labels)

    def generate(prompts, n):
        return sample_prompts(trained, prompts, n, seed=1000, truncation=args.truncation)

    figures, generated = score(predict, generate, prompts, wanted, args.n)
    data = trained.config.data
    result = {"workdir": args.workdir, "step": trained.step, "data": {"kind": data.kind, "path": data.path},
              **figures, "prompts_unseen_in_training": f"{int(unseen.sum())}/{len(prompts)}",
              "example_prompts": prompts[:3], "classifier_ceiling_on_real": ceiling,
              "truncation": args.truncation}
    print(json.dumps(result, indent=2))
    first = generated.reshape(len(prompts), args.n, resolution, resolution, 3)[:, 0]  # one image per prompt
    out = os.path.join(args.workdir, f"conditioning_step{trained.step}.png")
    save_png(make_grid(first, rows=len(COLOURS)), out)
    print(f"grid (rows: {', '.join(COLOURS)}; columns: {', '.join(SHAPES)}) -> {out}")


if __name__ == "__main__":
    main()
