"""Vision-aided adversarial terms (Kumari et al. 2022): the trainable heads on frozen CLIP image
features are a second discriminator with its own non-saturating logistic loss, written with
`softplus` like every other GAN term. Logits are [B], one per image."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def d_vision_aided_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """D: softplus(-D_v(x)) + softplus(D_v(G(c))), each averaged over the batch."""
    return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def g_vision_aided_loss(fake_logits: jax.Array) -> jax.Array:
    """G: softplus(-D_v(G(c))), averaged over the batch."""
    return jnp.mean(jax.nn.softplus(-fake_logits))
