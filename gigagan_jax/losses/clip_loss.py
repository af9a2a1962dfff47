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
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def clip_logits(image_embeds, text_embeds, logit_scale):
    """[B, P] x [B, P] -> [B, B] scaled cosine similarities; row n is image n vs every caption."""
    image = image_embeds.astype(jnp.float32)
    text = text_embeds.astype(jnp.float32)
    image = image / jnp.linalg.norm(image, axis=-1, keepdims=True)
    text = text / jnp.linalg.norm(text, axis=-1, keepdims=True)
    return jnp.exp(logit_scale) * image @ text.T


def clip_contrastive_loss(image_embeds, text_embeds, logit_scale, same_caption=None):
    """Eq. 9: mean over the batch of -log softmax_m(logits[n, m]) at m = n.

    image_embeds: [B, P] projected CLIP embeddings of the generated images.
    text_embeds:  [B, P] projected CLIP embeddings of their captions (row n made image n).
    logit_scale:  the checkpoint's `logit_scale` parameter (log inverse temperature); frozen,
                  like the rest of CLIP.
    same_caption: [B, B] bool, True where rows n and m hold the same caption (None: all distinct);
                  those m != n are dropped from row n's softmax.
    Returns a float32 scalar.
    """
    logits = clip_logits(image_embeds, text_embeds, jax.lax.stop_gradient(logit_scale))  # [B, B]
    if same_caption is not None:
        duplicate = same_caption & ~jnp.eye(logits.shape[0], dtype=bool)
        logits = jnp.where(duplicate, -jnp.inf, logits)
    return -jnp.mean(jnp.diagonal(jax.nn.log_softmax(logits, axis=-1)))
