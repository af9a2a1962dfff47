"""The small CLIP's training step with every caption padded to the data's longest against its
captions encoded in groups of like length (`gigagan_jax.train.length_groups`), and with only the
token rows the data uses (`small_clip.compact_vocabulary`).

    python -m benchmarks.small_clip_lengths [--captions FILE] [--batch 128] [--rounds 5]

Caption sets: the shapes data's; the same with one 74-token caption among 20,000 (padding to
the longest, it set 77 tokens for all); a synthetic long tail (95 % of 8-15 words, 5 % of
30-50 words, Zipf-like over 10,000 words; a stand-in, since no real caption set is at hand
here); and FILE (one caption per line) when given. The step is the one `train_small_clip`
runs, at `SmallClipSpec`'s default sizes (256-wide 2-layer text tower, 32 px images). Each round
times `--calls` calls of each form, alternating which goes first; medians over all rounds.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from benchmarks._timing import call_seconds
from gigagan_jax.config import default_config
from gigagan_jax.data import open_source
from gigagan_jax.machine import cpu_model
from gigagan_jax.pretrained.clip import init_params
from gigagan_jax.pretrained.tokenize import ClipTokenizer
from gigagan_jax.train.length_groups import LengthPlan, group_rows, needed_lengths, plan_lengths
from gigagan_jax.train.small_clip import (
    SmallClipSpec,
    clip_config,
    compact_vocabulary,
    make_optimizer,
    make_train_step,
)

WORDS = ("a photo of the red small dog cat sitting on wooden table next to window with bright light in garden "
         "two people walking along busy street at night old house near river blue sky over mountains").split()


def shapes_captions(n: int) -> list[str]:
    config = default_config()
    config.data.num_examples = n
    return list(open_source(config).get_batch(np.arange(n))["caption"])


def long_tail_captions(n: int, seed: int = 0) -> list[str]:
    """95 % of 8-15 words, 5 % of 30-50, drawn Zipf-like from the tokenizer's first 10,000 whole
    words (in merge order, roughly by frequency): a real caption set's thousands of distinct tokens."""
    words = [w for t in ClipTokenizer().encoder if t.endswith("</w>") and (w := t[:-4]).isascii()
             and w.isalpha() and w.islower() and len(w) >= 3][:10000]
    rng = np.random.default_rng(seed)
    weights = 1 / np.arange(1, len(words) + 1)
    counts = np.where(rng.random(n) < 0.95, rng.integers(8, 16, n), rng.integers(30, 51, n))
    return [" ".join(rng.choice(words, k, p=weights / weights.sum())) for k in counts]


def caption_sets(path: str | None) -> dict[str, list[str]]:
    shapes = shapes_captions(20000)
    sets = {"shapes": shapes, "shapes + one long caption": shapes[:-1] + [" ".join(WORDS * 2)],
            "synthetic long tail": long_tail_captions(20000)}
    if path:
        with open(path, encoding="utf-8") as f:
            sets[path] = [line.strip() for line in f if line.strip()]
    return sets


class Steps:
    """The training step at one vocabulary size, with its own weights and optimiser state."""

    def __init__(self, spec: SmallClipSpec, vocab_size: int):
        config = clip_config(spec, vocab_size)
        self.params = init_params(config, jax.random.key(0))
        optimizer = make_optimizer(self.params)
        self.opt_state = optimizer.init(self.params)
        self.step = make_train_step(config, optimizer)

    def loss(self, id_groups, pixels):
        return self.step(self.params, self.opt_state, id_groups, pixels, 1e-3)[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--captions", default=None, help="a text file, one caption per line")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2)
    args = parser.parse_args()

    spec = SmallClipSpec(batch=args.batch)
    whole = Steps(spec, clip_config(spec).text_config.vocab_size)
    pixels = np.random.default_rng(0).uniform(-1, 1, (args.batch, spec.image_size, spec.image_size, 3))
    pixels = pixels.astype(np.float32)
    tokenizer = ClipTokenizer()
    print(f"{cpu_model()}; batch {args.batch}, SmallClipSpec defaults otherwise; median s/step over "
          f"{args.rounds} rounds x {args.calls} calls. Forms: padded (to the longest caption, every "
          "token row: before), grouped, grouped + only the data's token rows (now)")
    for name, captions in caption_sets(args.captions).items():
        ids = tokenizer(captions)  # [N, 77]
        needed = needed_lengths(ids)
        plan = plan_lengths(needed, args.batch)
        padded = LengthPlan((args.batch,), (plan.lengths[-1],))
        vocab, compact_ids = compact_vocabulary(ids)
        compact = Steps(spec, len(vocab))
        rng = np.random.default_rng(1)
        batch = rng.choice(len(ids), args.batch, replace=False)
        while len(plan.split(needed[batch])) < len(plan.sizes):  # a batch the plan holds (all but ~1e-4)
            batch = rng.choice(len(ids), args.batch, replace=False)
        groups = plan.split(needed[batch])
        forms = {}
        for form, parts, steps, table in (("padded", padded.split(needed[batch]), whole, ids),
                                          ("grouped", groups, whole, ids),
                                          ("grouped + data's tokens", groups, compact, compact_ids)):
            id_groups, order = group_rows(parts, table[batch])
            forms[form] = lambda steps=steps, id_groups=id_groups, order=order: steps.loss(id_groups, pixels[order])
        compile_s = {}
        for form, fn in forms.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            compile_s[form] = time.perf_counter() - t0
        times = {form: [] for form in forms}
        for r in range(args.rounds):
            for form in (forms if r % 2 == 0 else reversed(forms)):
                times[form] += call_seconds(forms[form], args.calls)
        median = {form: float(np.median(t)) for form, t in times.items()}
        print(f"\n{name}: {len(vocab)} distinct tokens; padded to {padded.lengths[0]}, grouped {plan.describe()}: "
              f"token positions {padded.positions} -> {plan.positions}")
        for form in forms:
            print(f"  {form:<24} {median[form]:.3f} s/step  ({median['padded'] / median[form]:.2f}x)  "
                  f"first call (compile + step) {compile_s[form]:.1f} s")


if __name__ == "__main__":
    main()
