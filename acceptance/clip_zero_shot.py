"""Can a CLIP tell the shapes apart? Zero-shot colour and shape accuracy on real shapes images.

    python -m acceptance.clip_zero_shot --clip runs/demo/clip [--shape-scale 2.2 --shape-positions center]

The GAN's CLIP loss can only teach G what the CLIP's image tower reads. For each real image
(drawn with the given scale and positions, seed 5: not the training set) the caption's shape word
is swapped for each of the six shapes, and the CLIP's most similar caption is its guess; the same
for the eight colours. Prints both accuracies and the shape confusion counts.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from gigagan_jax.data.shapes import COLOURS, SHAPES, ShapesSource, make_caption
from gigagan_jax.losses.clip_loss import clip_logits
from gigagan_jax.pixels import to_signed
from gigagan_jax.pretrained.clip import load_clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", required=True, help="HF CLIP folder (e.g. WORKDIR/clip)")
    parser.add_argument("--n", type=int, default=600, help="real images to classify")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--shape-scale", type=float, default=1.0)
    parser.add_argument("--shape-positions", default="", help="comma-separated; empty = all five")
    args = parser.parse_args()
    clip = load_clip(args.clip)
    positions = tuple(p for p in args.shape_positions.split(",") if p)
    source = ShapesSource(args.n, args.resolution, seed=5, size_scale=args.shape_scale, positions=positions)
    images = to_signed(source.get_batch(np.arange(args.n))["image"])
    image_embeds = clip.encode_image(images)[0]  # [N, P]
    colours = list(COLOURS)

    def guess(i: int, captions: list[str]) -> int:
        text_embeds = clip.encode_text(clip.tokenize(captions))[2]  # [K, P]
        return int(np.argmax(clip_logits(image_embeds[i:i + 1], text_embeds, clip.logit_scale)[0]))

    confusion = np.zeros((len(SHAPES), len(SHAPES)), np.int64)  # [asked, read]
    colour_hits = 0
    for i in range(args.n):
        a = source.attributes(i)
        read = guess(i, [make_caption(a["colour"], s, a["position"], a["background"]) for s in SHAPES])
        confusion[SHAPES.index(a["shape"]), read] += 1
        read = guess(i, [make_caption(c, a["shape"], a["position"], a["background"]) for c in colours])
        colour_hits += colours[read] == a["colour"]
    print(json.dumps({
        "clip": args.clip, "images": args.n, "shape_scale": args.shape_scale, "positions": positions or "all",
        "colour_accuracy": colour_hits / args.n, "colour_chance": 1 / len(colours),
        "shape_accuracy": float(np.trace(confusion)) / args.n, "shape_chance": 1 / len(SHAPES),
        "shape_read_as": {s: dict(zip(SHAPES, map(int, row))) for s, row in zip(SHAPES, confusion)},
    }, indent=2))


if __name__ == "__main__":
    main()
