"""Captions drawn once from the training data as extra negatives for G's CLIP loss
(config.loss.clip_negatives; `gigagan_jax.losses.clip_loss` says why a small batch needs them)."""

from __future__ import annotations

import numpy as np

from gigagan_jax.pretrained.clip import Clip


def draw_captions(source, count: int, seed: int) -> list[str]:
    """`count` captions of examples drawn at random (without replacement while the source has
    enough), seeded, so a run and its resume draw the same ones."""
    if len(source) == 0:
        raise ValueError("config.loss.clip_negatives needs captions, but the data source is empty")
    picks = np.random.default_rng(seed).choice(len(source), size=count, replace=count > len(source))
    return [source[int(i)]["caption"] for i in picks]


def caption_bank(clip: Clip, source, count: int, seed: int) -> np.ndarray:
    """[count, P] float32: CLIP's projected text embeddings of `draw_captions`."""
    captions = draw_captions(source, count, seed)
    return np.asarray(clip.encode_text(clip.tokenize(captions))[2], np.float32)
