"""CLIP score: how well generated images match their prompts, measured by a frozen CLIP.

Definition (the common one, e.g. torchmetrics' CLIPScore): for each image/prompt pair,
score = max(100 * cos(E_img, E_txt), 0) with E the projected CLIP embeddings, averaged over
pairs. Papers that report it as a plain cosine (GigaGAN's Table 1: 0.222 ... 0.307) use the
same quantity divided by 100. The value depends on the CLIP model, so report which one.
"""

from __future__ import annotations

from typing import Iterable

import jax.numpy as jnp
import numpy as np


def clip_scores(image_embeds, text_embeds) -> np.ndarray:
    """Per-pair scores [N] = max(100 * cos, 0) of matching rows of [N, P] and [N, P]."""
    a = jnp.asarray(image_embeds, jnp.float32)
    b = jnp.asarray(text_embeds, jnp.float32)
    if a.shape != b.shape:
        raise ValueError("image and text embeddings must pair up row by row: "
                         f"{a.shape} vs {b.shape}")
    a = a / jnp.linalg.norm(a, axis=-1, keepdims=True)
    b = b / jnp.linalg.norm(b, axis=-1, keepdims=True)
    return np.asarray(jnp.maximum(100.0 * jnp.sum(a * b, axis=-1), 0.0))  # [N]


def clip_score(image_embeds, text_embeds) -> float:
    """Mean CLIP score of matching rows of image embeddings [N, P] and text embeddings [N, P]."""
    return float(clip_scores(image_embeds, text_embeds).mean())


class ClipScoreAccumulator:
    """Running CLIP score over batches of (images in [-1, 1], prompts), with a CLIP from
    `gigagan_jax.pretrained.clip.load_clip`. Also keeps the image embeddings, which CLIP-FID uses."""

    def __init__(self, clip):
        self.clip = clip
        self.total = 0.0
        self.count = 0

    def image_embeds(self, images) -> np.ndarray:
        """[B, H, W, 3] in [-1, 1] -> projected CLIP image embeddings [B, P]."""
        return np.asarray(self.clip.encode_image(jnp.asarray(images))[0])

    def text_embeds(self, prompts: list[str]) -> np.ndarray:
        """B prompts -> projected CLIP text embeddings [B, P]."""
        return np.asarray(self.clip.encode_text(self.clip.tokenize(list(prompts)))[2])

    def update(self, images, prompts: list[str]) -> np.ndarray:
        """Score one batch; returns its image embeddings [B, P]."""
        if len(prompts) != len(images):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        embeds = self.image_embeds(images)
        scores = clip_scores(embeds, self.text_embeds(prompts))  # [B]
        self.total += float(scores.sum())
        self.count += len(scores)
        return embeds

    def result(self) -> float:
        if self.count == 0:
            raise ValueError("no images were scored")
        return self.total / self.count


def clip_score_of_batches(clip, batches: Iterable[tuple[np.ndarray, list[str]]]) -> float:
    """Mean CLIP score over an iterable of (images [B, H, W, 3] in [-1, 1], B prompts)."""
    acc = ClipScoreAccumulator(clip)
    for images, prompts in batches:
        acc.update(images, prompts)
    return acc.result()
