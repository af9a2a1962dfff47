"""CLIP score: how well generated images match their prompts, measured by a frozen CLIP.

Definition (the common one, e.g. torchmetrics' CLIPScore): for each image/prompt pair,
score = max(100 * cos(E_img, E_txt), 0) with E the projected CLIP embeddings, averaged over
pairs. Papers that report it as a plain cosine (GigaGAN's Table 1: 0.222 ... 0.307) use the
same quantity divided by 100. The value depends on the CLIP model, so report which one
(`clip_model_name`), and on how the prompt is worded: the paper protocol scores each prompt with
the prefix "A photo depicts " (`PAPER_PROMPT_PREFIX`, CLIPScore's, Hessel et al. 2021) with
OpenAI's ViT-B/32.
"""

from __future__ import annotations

from typing import Iterable

import jax.numpy as jnp
import numpy as np

PAPER_PROMPT_PREFIX = "A photo depicts "
# (width, layers) of OpenAI's ViT image towers -> the size letter of their names (ViT-B/32 ...).
VIT_SIZES = {(768, 12): "b", (1024, 24): "l", (1280, 32): "h"}


def clip_model_name(config) -> str:
    """Name of a CLIP's image tower for metric names, from its `CLIPConfig`: 'vit_b32' for
    OpenAI's ViT-B/32 shape, 'vit_w{width}_d{layers}_p{patch}' for any other."""
    vision = config.vision_config
    size = VIT_SIZES.get((vision.hidden_size, vision.num_hidden_layers))
    if size is not None:
        return f"vit_{size}{vision.patch_size}"
    return f"vit_w{vision.hidden_size}_d{vision.num_hidden_layers}_p{vision.patch_size}"


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
    `gigagan_jax.pretrained.clip.load_clip`; each prompt is scored as `prefix + prompt`. `update`
    returns the image embeddings, which CLIP-FID uses when it reads the same CLIP."""

    def __init__(self, clip, prefix: str = ""):
        self.clip = clip
        self.prefix = prefix
        self.total = 0.0
        self.count = 0

    def image_embeds(self, images) -> np.ndarray:
        """[B, H, W, 3] in [-1, 1] -> projected CLIP image embeddings [B, P]."""
        return np.asarray(self.clip.encode_image(jnp.asarray(images))[0])

    def text_embeds(self, prompts: list[str]) -> np.ndarray:
        """B prompts (the prefix added) -> projected CLIP text embeddings [B, P]."""
        texts = [self.prefix + p for p in prompts]
        return np.asarray(self.clip.encode_text(self.clip.tokenize(texts))[2])

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
