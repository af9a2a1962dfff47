"""Does the trained demo follow its prompts? Colour and shape accuracy of generated images.

    python -m acceptance.demo_conditioning --workdir runs/demo [--step N] [--n 8]

A small CNN is trained (about a minute on 2 cores) to read colour (8 classes), shape (6 classes)
and position (5 classes) off real shapes images drawn like the run's training data (its
shape_scale and shape_positions); it is then applied to images the run's G_ema generates for
every (colour, shape) prompt, with position and background drawn from the run's vocabulary.
Prints the classifier's accuracy on held-out real images (its ceiling), the generated images'
accuracy against chance (position only when the run uses more than one), and writes a grid
(one row per colour, one column per shape) next to the run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gigagan_jax.data.shapes import BACKGROUNDS, COLOURS, POSITIONS, SHAPES, ShapesSource, make_caption
from gigagan_jax.generate.grid import make_grid, save_png
from gigagan_jax.generate.restore import load_trained_generator
from gigagan_jax.generate.sample import sample_prompts
from gigagan_jax.pixels import to_signed


class AttributeNet(nn.Module):
    """Tiny CNN: image [B, R, R, 3] in [-1, 1] -> logits for colour [B, 8], shape [B, 6], position [B, 5]."""

    @nn.compact
    def __call__(self, x):
        for features in (32, 64, 128):
            x = nn.relu(nn.Conv(features, (3, 3))(x))
            x = nn.max_pool(x, (2, 2), (2, 2))
        x = jnp.mean(x, axis=(1, 2))  # [B, 128]
        x = nn.relu(nn.Dense(128)(x))
        return nn.Dense(len(COLOURS))(x), nn.Dense(len(SHAPES))(x), nn.Dense(len(POSITIONS))(x)


def train_classifier(resolution: int, shape_scale: float = 1.0, positions=(), steps: int = 600, batch: int = 128):
    # seed 1, not the training seed: unseen images
    source = ShapesSource(12_000, resolution, seed=1, size_scale=shape_scale, positions=positions)
    data = source.get_batch(np.arange(len(source)))
    images = to_signed(data["image"])
    colour, shape = np.divmod(data["label"], len(SHAPES))
    position = np.asarray([list(POSITIONS).index(source.attributes(i)["position"]) for i in range(len(source))])
    train_idx, test_idx = np.arange(10_000), np.arange(10_000, 12_000)
    net = AttributeNet()
    params = net.init(jax.random.PRNGKey(0), images[:1])
    tx = optax.adam(2e-3)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, x, c, s, q):
        def loss_fn(p):
            return sum(optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
                       for logits, y in zip(net.apply(p, x), (c, s, q)))
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt = tx.update(grads, opt)
        return optax.apply_updates(params, updates), opt, loss

    rng = np.random.default_rng(0)
    for _ in range(steps):
        i = rng.choice(train_idx, batch, replace=False)
        params, opt, _ = step(params, opt, images[i], colour[i], shape[i], position[i])
    predict = jax.jit(lambda x: [jnp.argmax(l, -1) for l in net.apply(params, x)])
    pc, ps, pq = predict(images[test_idx])
    ceiling = {"colour": float(np.mean(np.asarray(pc) == colour[test_idx])),
               "shape": float(np.mean(np.asarray(ps) == shape[test_idx])),
               "position": float(np.mean(np.asarray(pq) == position[test_idx]))}
    return predict, ceiling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--step", type=int, default=None)
    parser.add_argument("--n", type=int, default=8, help="images per (colour, shape) prompt")
    parser.add_argument("--truncation", type=float, default=1.0)
    args = parser.parse_args()

    trained = load_trained_generator(args.workdir, args.step)
    resolution = trained.config.model.resolution
    data = trained.config.data
    positions = tuple(data.get("shape_positions", ())) or tuple(POSITIONS)
    predict, ceiling = train_classifier(resolution, data.get("shape_scale", 1.0), positions)

    rng = np.random.default_rng(0)
    pairs = list(itertools.product(range(len(COLOURS)), range(len(SHAPES))))
    where = [rng.choice(positions) for _ in pairs]
    prompts = [make_caption(list(COLOURS)[c], SHAPES[s], p, rng.choice(list(BACKGROUNDS)))
               for (c, s), p in zip(pairs, where)]
    images = sample_prompts(trained, prompts, args.n, seed=1000, truncation=args.truncation)  # [48*n, R, R, 3]
    pc, ps, pq = (np.asarray(p) for p in predict(to_signed(images)))
    want_c = np.repeat([c for c, _ in pairs], args.n)
    want_s = np.repeat([s for _, s in pairs], args.n)
    want_q = np.repeat([list(POSITIONS).index(p) for p in where], args.n)
    position = {"position_accuracy": float(np.mean(pq == want_q)), "position_chance": 1 / len(positions)}
    result = {
        "workdir": args.workdir, "step": trained.step, "images": int(len(images)),
        "colour_accuracy": float(np.mean(pc == want_c)), "colour_chance": 1 / len(COLOURS),
        "shape_accuracy": float(np.mean(ps == want_s)), "shape_chance": 1 / len(SHAPES),
        "both_accuracy": float(np.mean((pc == want_c) & (ps == want_s))),
        "shape_accuracy_by_shape": {name: float(np.mean(ps[want_s == k] == k)) for k, name in enumerate(SHAPES)},
        "shape_read_as": {name: dict(zip(SHAPES, np.bincount(ps[want_s == k], minlength=len(SHAPES)).tolist()))
                          for k, name in enumerate(SHAPES)},
        **(position if len(positions) > 1 else {}),
        "classifier_ceiling_on_real": ceiling, "truncation": args.truncation,
    }
    print(json.dumps(result, indent=2))
    first = images.reshape(len(pairs), args.n, resolution, resolution, 3)[:, 0]  # one image per prompt
    out = os.path.join(args.workdir, f"conditioning_step{trained.step}.png")
    save_png(make_grid(first, rows=len(COLOURS)), out)
    print(f"grid (rows: {', '.join(COLOURS)}; columns: {', '.join(SHAPES)}) -> {out}")


if __name__ == "__main__":
    main()
