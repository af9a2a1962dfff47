"""The learned text transformer T and the t_local / t_global split at the EOT token.

The frozen CLIP encoder gives token features c [B, 77, Dc]; T (trainable) adapts them to the
generator. The feature at the end-of-text position summarises the prompt (t_global, fed to the
mapping network); the remaining tokens (t_local) are what cross-attention reads.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gigagan_jax.models.attention import MultiHeadAttention
from gigagan_jax.models.layers import EqualizedDense

# Std of the learned position embedding at init (as GPT-2/CLIP), applied at run time so the
# stored table is unit-scale like every equalized-lr weight.
POS_EMBED_STD = 0.02

Dtype = Any


class TransformerBlock(nn.Module):
    """Pre-LayerNorm transformer block (attention + 4x GELU MLP).

    Its Dense layers use equalized lr like the rest of G and D: they share one Adam lr, and a
    standard-parameterised weight of fan-in n would move sqrt(n) times faster relative to its size.
    """

    heads: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, key_mask: jax.Array) -> jax.Array:
        dim = x.shape[-1]
        x = x + MultiHeadAttention(self.heads, dtype=self.dtype, name="attn")(
            nn.LayerNorm(dtype=self.dtype, name="ln_attn")(x), key_mask)
        h = EqualizedDense(4 * dim, name="fc1", dtype=self.dtype)(nn.LayerNorm(dtype=self.dtype, name="ln_mlp")(x))
        return x + EqualizedDense(dim, axes=("mlp", "embed"), name="fc2", dtype=self.dtype)(nn.gelu(h))


class TextTransformer(nn.Module):
    """T: frozen token features [B, L, Dc] -> learned token features [B, L, dim].

    Tokens after EOT are CLIP padding; they are masked as keys so they cannot leak into the
    prompt's representation.
    """

    dim: int
    layers: int
    heads: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, features: jax.Array, eot_index: jax.Array) -> jax.Array:
        length = features.shape[1]
        x = EqualizedDense(self.dim, name="in_proj", dtype=self.dtype)(features)
        pos = self.param("pos_embed", nn.with_logical_partitioning(nn.initializers.normal(1.0), (None, "embed")),
                         (length, self.dim), jnp.float32)
        x = x + (pos * POS_EMBED_STD).astype(x.dtype)
        key_mask = jnp.arange(length)[None, :] <= eot_index[:, None]  # [B, L]
        for i in range(self.layers):
            x = TransformerBlock(self.heads, dtype=self.dtype, name=f"block{i}")(x, key_mask)
        return nn.LayerNorm(dtype=self.dtype, name="ln_out")(x)


def split_at_eot(t: jax.Array, eot_index: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """t [B, L, D], eot [B] -> t_local [B, L-1, D], local_mask [B, L-1] bool, t_global [B, D].

    t_local is t with the EOT position removed (later tokens shift left by one); only positions
    before EOT (SOT and the words) are valid keys for cross-attention.
    """
    b, length, _ = t.shape
    t_global = jnp.take_along_axis(t, eot_index[:, None, None], axis=1)[:, 0]  # [B, D]
    j = jnp.arange(length - 1)[None, :]  # [1, L-1]
    src = jnp.where(j < eot_index[:, None], j, j + 1)  # [B, L-1]
    t_local = jnp.take_along_axis(t, src[:, :, None], axis=1)
    return t_local, j < eot_index[:, None], t_global
