"""Vision-aided discriminator heads (Kumari et al. 2022) on frozen CLIP image features.

The CLIP backbone stays frozen; only these small heads train. Each head reads one CLIP layer
(its CLS token and the mean of its patch tokens), and conditions on the caption by projection:
logit = out(h) + <h, P t> / sqrt(hidden), with t the CLIP text embedding of the caption.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gigagan_jax.models.layers import EqualizedDense, normalize_2nd_moment


def feature_layers(num_layers: int, num_heads: int) -> list[int]:
    """Evenly spaced CLIP layer indices ending at the last layer, e.g. 12 layers, 3 heads -> [3, 7, 11]."""
    return sorted({int(round(x)) for x in np.linspace(num_layers - 1, (num_layers - 1) / num_heads, num_heads)})


class VisionAidedHeads(nn.Module):
    hidden: int = 256
    num_heads: int = 3

    @nn.compact
    def __call__(self, features: list[jax.Array], text_embeds: jax.Array) -> jax.Array:
        """features: per-layer [B, 1 + patches, D]; text_embeds [B, P] -> logits [B]."""
        text = normalize_2nd_moment(text_embeds.astype(jnp.float32))
        total = jnp.zeros((text.shape[0],), jnp.float32)
        for n, layer in enumerate(feature_layers(len(features), self.num_heads)):
            f = normalize_2nd_moment(features[layer].astype(jnp.float32))  # [B, 1 + patches, D]
            pooled = jnp.concatenate([f[:, 0], jnp.mean(f[:, 1:], axis=1)], axis=-1)  # [B, 2D]
            h = EqualizedDense(self.hidden, activation="lrelu", name=f"fc{n}")(pooled)
            out = EqualizedDense(1, name=f"out{n}")(h)[:, 0]
            proj = EqualizedDense(self.hidden, use_bias=False, name=f"text_proj{n}")(text)
            total = total + out + jnp.sum(h * proj, axis=-1) / math.sqrt(self.hidden)
        return total
