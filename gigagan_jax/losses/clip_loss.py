"""GigaGAN's CLIP contrastive loss (paper eq. 9), generator side.

A generated image must be closer, in a frozen CLIP's embedding space, to the caption it was
generated from than to the other captions of the batch:

    L_CLIP = E_n [ -log( exp(s * cos(E_img(x_n), E_txt(c_n)))
                         / sum_m exp(s * cos(E_img(x_n), E_txt(c_m))) ) ]

with x_n = G(z_n, c_n) and s = exp(logit_scale), CLIP's own learned inverse temperature, so the
logits have the scale the checkpoint was trained with. Only the image->text direction is used:
the captions are fixed data, the images are what G can change. Another row holding the same
caption as row n is not a negative for image n (the matching-aware loss skips such pairs too):
it leaves the sum over m.

Optionally a bank of K more captions (config.loss.clip_negatives) joins the sum over m. A small
batch rarely holds a caption that differs from c_n in only one attribute, so once G gets the
easy attributes right (colour) its images already beat every in-batch negative and the loss
stops teaching the rest (shape); bank captions then supply those near misses. Any negative whose
text embedding is nearly c_n's (cosine >= `same_cosine`: a paraphrase, the same caption) leaves
the sum too, since no image can tell them apart.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _unit(x):
    x = x.astype(jnp.float32)
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def clip_logits(image_embeds, text_embeds, logit_scale):
    """[B, P] x [M, P] -> [B, M] scaled cosine similarities; row n is image n vs every caption."""
    return jnp.exp(logit_scale) * _unit(image_embeds) @ _unit(text_embeds).T


def close_captions(text_embeds, candidates, min_cosine: float):
    """[B, P] x [M, P] -> [B, M] bool: True where candidate m's embedding has cosine >= min_cosine
    with caption n's. A paraphrase reads as the same to CLIP; identical captions always count,
    whatever the rounding."""
    return _unit(text_embeds) @ _unit(candidates).T >= min_cosine - 1e-6


def close_caption_pairs(text_embeds, partners, min_cosine: float):
    """[B, P] x [B, P] -> [B] bool: `close_captions` of row n and its partner n only."""
    return jnp.sum(_unit(text_embeds) * _unit(partners), axis=-1) >= min_cosine - 1e-6


def clip_contrastive_loss(image_embeds, text_embeds, logit_scale, same_caption=None, bank=None,
                          same_cosine: float | None = None):
    """Eq. 9: mean over the batch of -log softmax_m(logits[n, m]) at m = n.

    image_embeds: [B, P] projected CLIP embeddings of the generated images.
    text_embeds:  [B, P] projected CLIP embeddings of their captions (row n made image n).
    logit_scale:  the checkpoint's `logit_scale` parameter (log inverse temperature); frozen,
                  like the rest of CLIP.
    same_caption: [B, B] bool, True where rows n and m hold the same caption (None: all distinct);
                  those m != n are dropped from row n's softmax.
    bank:         [K, P] embeddings of more captions, negatives for every row (None: none).
    same_cosine:  a negative whose text embedding has at least this cosine with row n's caption
                  is dropped from row n's softmax (None: none is).
    Returns a float32 scalar.
    """
    candidates = text_embeds if bank is None else jnp.concatenate([text_embeds, bank.astype(text_embeds.dtype)])
    logits = clip_logits(image_embeds, candidates, jax.lax.stop_gradient(logit_scale))  # [B, B + K]
    b = logits.shape[0]
    duplicate = jnp.zeros(logits.shape, bool)  # [B, B + K]
    if same_cosine is not None:
        duplicate = close_captions(text_embeds, candidates, same_cosine)
    if same_caption is not None:
        duplicate = duplicate.at[:, :b].set(duplicate[:, :b] | same_caption)
    own = jnp.arange(candidates.shape[0])[None, :] == jnp.arange(b)[:, None]  # [B, B + K]: column n of row n
    logits = jnp.where(duplicate & ~own, -jnp.inf, logits)
    return -jnp.mean(jnp.diagonal(jax.nn.log_softmax(logits, axis=-1)[:, :b]))
