"""Train a small CLIP on image+caption data and write it as a Hugging Face CLIP folder.

No pretrained CLIP can be downloaded here, yet GigaGAN's text conditioning, CLIP loss and CLIP
score all need one whose embeddings mean something for the training captions. This trains one
from scratch with CLIP's symmetric contrastive objective, on any data kind the GAN trains on,
using the real OpenAI tokenizer (so the folder is a drop-in `config.clip.path`), and reports
text->image retrieval on held-out pairs it never saw.

    python -m gigagan_jax.tools.train_clip --data shapes --out runs/clip_small
    python -m gigagan_jax.tools.train_clip --data folder:/path/to/captions --out runs/clip_mine

Default sizes give 256-wide text tokens, matching `configs/demo.py`'s text_encoder_dim.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from transformers import CLIPConfig

from gigagan_jax.config import default_config
from gigagan_jax.data.tokenize import ClipTokenizer
from gigagan_jax.losses.clip_loss import clip_logits
from gigagan_jax.models.clip import (
    ClipTextTower,
    ClipVisionTower,
    clip_preprocess,
    init_params,
    load_clip,
    save_clip,
)

MAX_LOGIT_SCALE = float(np.log(100.0))  # CLIP clamps its temperature at 1/100


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m gigagan_jax.tools.train_clip", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="shapes",
                   help="shapes | emoji[:DIR] | folder:DIR | tfds:NAME[:DATA_DIR] (as config.data)")
    p.add_argument("--out", required=True, help="output folder (HF layout: config.json + flax_model.msgpack)")
    p.add_argument("--num-examples", type=int, default=20000, help="size of the shapes set")
    p.add_argument("--shape-scale", type=float, default=1.0,
                   help="shapes only: size relative to the default (as config.data.shape_scale)")
    p.add_argument("--shape-positions", default="",
                   help="shapes only: comma-separated positions, empty = all (as config.data.shape_positions)")
    p.add_argument("--holdout", type=int, default=1000, help="pairs kept out of training for retrieval")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--patch", type=int, default=4)
    p.add_argument("--text-width", type=int, default=256)
    p.add_argument("--text-layers", type=int, default=2)
    p.add_argument("--vision-width", type=int, default=128)
    p.add_argument("--vision-layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--projection", type=int, default=128)
    return p.parse_args(argv)


def data_config(args: argparse.Namespace):
    """`--data` spec and the shapes options -> the project config whose data section `open_source` reads."""
    config = default_config()
    config.model.resolution = args.image_size
    kind, _, rest = args.data.partition(":")
    config.data.kind = kind
    config.data.num_examples = args.num_examples
    config.data.shape_scale = args.shape_scale
    config.data.shape_positions = tuple(p for p in args.shape_positions.split(",") if p)
    if kind == "tfds":
        config.data.name, _, config.data.path = rest.partition(":")
    else:
        config.data.path = rest
    return config


def load_pairs(args: argparse.Namespace):
    """All examples in memory: uint8 images [N, S, S, 3] and their captions."""
    from gigagan_jax.data import open_source

    source = open_source(data_config(args))
    images, captions = [], []
    for start in range(0, len(source), 1024):
        batch = source.get_batch(np.arange(start, min(start + 1024, len(source))))
        images.append(np.asarray(batch["image"], np.uint8))
        captions.extend(batch["caption"])
    return np.concatenate(images), captions


def clip_config(args: argparse.Namespace) -> CLIPConfig:
    return CLIPConfig(
        text_config=dict(hidden_size=args.text_width, intermediate_size=4 * args.text_width,
                         num_hidden_layers=args.text_layers, num_attention_heads=args.heads,
                         max_position_embeddings=77, vocab_size=49408),
        vision_config=dict(hidden_size=args.vision_width, intermediate_size=4 * args.vision_width,
                           num_hidden_layers=args.vision_layers, num_attention_heads=args.heads,
                           image_size=args.image_size, patch_size=args.patch),
        projection_dim=args.projection)


def make_train_step(config: CLIPConfig, optimizer: optax.GradientTransformation):
    text = ClipTextTower(config.text_config, config.projection_dim)
    vision = ClipVisionTower(config.vision_config, config.projection_dim)

    def loss_fn(params, ids, pixels):  # ids [B, L], pixels [B, S, S, 3] in [-1, 1]
        _, _, t = text.apply({"params": {k: params[k] for k in ("text_model", "text_projection")}}, ids)
        x = clip_preprocess(pixels, config.vision_config.image_size)
        i, _ = vision.apply({"params": {k: params[k] for k in ("vision_model", "visual_projection")}}, x)
        logits = clip_logits(i, t, params["logit_scale"])  # [B, B] image -> caption
        labels = jnp.arange(ids.shape[0])
        image_to_text = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        text_to_image = optax.softmax_cross_entropy_with_integer_labels(logits.T, labels).mean()
        return 0.5 * (image_to_text + text_to_image)

    @jax.jit
    def step(params, opt_state, ids, pixels):
        loss, grads = jax.value_and_grad(loss_fn)(params, ids, pixels)
        updates, opt_state = optimizer.update(grads, opt_state, params)
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
        pixels = images[start:start + 250].astype(np.float32) / 127.5 - 1.0
        pics.append(np.asarray(clip.encode_image(pixels)[0]))
    t, i = np.concatenate(texts), np.concatenate(pics)
    return {"top1_gallery100": retrieval_top1(t, i, 100), "chance_gallery100": 0.01,
            f"top1_gallery{len(t)}": retrieval_top1(t, i, len(t)), f"chance_gallery{len(t)}": 1 / len(t)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    images, captions = load_pairs(args)
    if len(captions) <= args.holdout + args.batch:
        raise SystemExit(f"--data has {len(captions)} pairs: too few for --holdout {args.holdout} "
                         f"plus one batch of {args.batch}")
    # The held-out pairs are a fixed random subset; training never sees them.
    order = np.random.default_rng(args.seed).permutation(len(captions))
    test_idx, train_idx = order[:args.holdout], order[args.holdout:]
    ids = ClipTokenizer()(captions)  # [N, 77]
    # Causal attention: positions after the longest caption's EOT cannot change any pooled
    # embedding, so training runs on the shortest prefix that holds every EOT.
    length = int(min(77, -(-(ids.argmax(axis=1).max() + 1) // 8) * 8))

    config = clip_config(args)
    params = init_params(config, jax.random.key(args.seed))
    schedule = optax.warmup_cosine_decay_schedule(0.0, args.lr, min(100, args.steps // 10 + 1), args.steps)
    optimizer = optax.adamw(schedule, b2=0.98, weight_decay=0.1,
                            mask=jax.tree.map(lambda p: p.ndim >= 2, params))
    opt_state = optimizer.init(params)
    step = make_train_step(config, optimizer)
    rng = np.random.default_rng(args.seed + 1)
    start = time.time()
    for i in range(args.steps):
        batch = rng.choice(train_idx, args.batch, replace=False)
        pixels = images[batch].astype(np.float32) / 127.5 - 1.0  # [B, S, S, 3]
        params, opt_state, loss = step(params, opt_state, ids[batch, :length], pixels)
        if i % 100 == 0 or i == args.steps - 1:
            print(f"step {i:5d}  loss {float(loss):.4f}  logit_scale {float(params['logit_scale']):.2f}  "
                  f"{time.time() - start:.0f}s", flush=True)

    save_clip(args.out, config, params)
    metrics = evaluate(args.out, images[test_idx], [captions[j] for j in test_idx])
    given = sys.argv[1:] if argv is None else argv
    metrics.update(steps=args.steps, batch=args.batch, train_pairs=len(train_idx),
                   seconds=round(time.time() - start, 1),
                   command=" ".join(["python -m gigagan_jax.tools.train_clip"] + given))
    with open(os.path.join(args.out, "train_clip.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
