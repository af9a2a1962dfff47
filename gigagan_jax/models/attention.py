"""Attention layers: Lipschitz L2-distance self-attention, text cross-attention, and a plain MHA.

GigaGAN needs attention that does not destabilise GAN training. Dot-product self-attention is
not Lipschitz (Kim et al. 2021); using minus the squared L2 distance between *tied* query/key
projections as logits is, so the self-attention blocks use that, with equalized-lr init and a
reduced residual gain. Cross-attention to text tokens is ordinary dot-product attention with
the padding positions masked out.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp

from gigagan_jax.models.layers import EqualizedDense, logical_dense, normalize_2nd_moment

Dtype = Any
# Finite "minus infinity": keeps softmax NaN-free even when every key is masked.
MASK_VALUE = -1e30


def l2_logits(q: jax.Array, k: jax.Array) -> jax.Array:
    """-||q_i - k_j||^2 / sqrt(d).  q [B, H, Nq, d], k [B, H, Nk, d] -> [B, H, Nq, Nk]"""
    d = q.shape[-1]
    qq = jnp.sum(jnp.square(q), axis=-1)[..., :, None]
    kk = jnp.sum(jnp.square(k), axis=-1)[..., None, :]
    qk = jnp.einsum("bhqd,bhkd->bhqk", q, k)
    return -(qq - 2.0 * qk + kk) / math.sqrt(d)


def dot_logits(q: jax.Array, k: jax.Array) -> jax.Array:
    """q.k / sqrt(d).  [B, H, Nq, d], [B, H, Nk, d] -> [B, H, Nq, Nk]"""
    return jnp.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.shape[-1])


def attend(logits: jax.Array, v: jax.Array, key_mask: Optional[jax.Array] = None) -> jax.Array:
    """Softmax over keys (masked where key_mask is False), then mix values.

    logits [B, H, Nq, Nk], v [B, H, Nk, d], key_mask [B, Nk] bool -> [B, H, Nq, d]
    """
    logits = logits.astype(jnp.float32)
    if key_mask is not None:
        logits = jnp.where(key_mask[:, None, None, :], logits, MASK_VALUE)
    weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("bhqk,bhkd->bhqd", weights, v)


def split_heads(x: jax.Array, heads: int) -> jax.Array:
    return einops.rearrange(x, "b n (h d) -> b h n d", h=heads)


def merge_heads(x: jax.Array) -> jax.Array:
    return einops.rearrange(x, "b h n d -> b n (h d)")


class L2SelfAttention(nn.Module):
    """Residual L2-distance self-attention over image positions (plus an optional style token).

    Queries and keys share one projection (tied), which is what makes the L2 logits Lipschitz.
    When `w` is given it is projected to one extra key/value token, so attention can read the
    style vector (GigaGAN's g_attn(f, w)).  The output projection starts scaled down and the
    residual branch is multiplied by `residual_gain` < 1.
    """

    heads: int
    head_dim: int
    residual_gain: float = 0.5
    out_init_std: float = 0.2
    logits: str = "l2"  # "l2" (GigaGAN) | "dot" (reference for the Lipschitz comparison)
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, w: Optional[jax.Array] = None) -> jax.Array:
        b, h, wd, c = x.shape
        inner = self.heads * self.head_dim
        tokens = einops.rearrange(x, "b h w c -> b (h w) c")  # [B, N, C]
        context = tokens
        if w is not None:
            w_token = EqualizedDense(c, name="style_token", dtype=self.dtype)(w)[:, None, :]  # [B, 1, C]
            context = jnp.concatenate([tokens, w_token.astype(tokens.dtype)], axis=1)
        qk_proj = EqualizedDense(inner, use_bias=False, name="qk", dtype=self.dtype)
        q = split_heads(qk_proj(tokens), self.heads)  # [B, H, N, d]
        k = split_heads(qk_proj(context), self.heads)  # [B, H, N(+1), d]
        v = split_heads(EqualizedDense(inner, name="v", dtype=self.dtype)(context), self.heads)
        if self.logits == "l2":
            logits = l2_logits(q, k)
        elif self.logits == "dot":
            logits = dot_logits(q, k)
        else:
            raise ValueError(f"logits must be 'l2' or 'dot', got {self.logits!r}")
        out = merge_heads(attend(logits, v))  # [B, N, inner]
        out = EqualizedDense(c, init_std=self.out_init_std, name="out", dtype=self.dtype)(out)
        out = einops.rearrange(out, "b (h w) c -> b h w c", h=h, w=wd)
        return x + self.residual_gain * out.astype(x.dtype)


class CrossAttention(nn.Module):
    """Residual attention from image positions (queries) to text tokens (keys/values).

    Padding tokens (mask False) receive no weight. Image features are RMS-normalised before the
    query projection so the logits do not grow with the feature scale.
    """

    heads: int
    head_dim: int
    residual_gain: float = 0.5
    out_init_std: float = 0.2
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, text: jax.Array, text_mask: jax.Array) -> jax.Array:
        b, h, wd, c = x.shape
        inner = self.heads * self.head_dim
        tokens = normalize_2nd_moment(einops.rearrange(x, "b h w c -> b (h w) c"))  # [B, N, C]
        q = split_heads(EqualizedDense(inner, use_bias=False, name="q", dtype=self.dtype)(tokens), self.heads)
        k = split_heads(EqualizedDense(inner, use_bias=False, name="k", dtype=self.dtype)(text), self.heads)
        v = split_heads(EqualizedDense(inner, name="v", dtype=self.dtype)(text), self.heads)
        out = merge_heads(attend(dot_logits(q, k), v, text_mask))  # [B, N, inner]
        out = EqualizedDense(c, init_std=self.out_init_std, name="out", dtype=self.dtype)(out)
        out = einops.rearrange(out, "b (h w) c -> b h w c", h=h, w=wd)
        return x + self.residual_gain * out.astype(x.dtype)


class MultiHeadAttention(nn.Module):
    """Plain pre-projected multi-head attention over a token sequence (text transformers)."""

    heads: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, key_mask: Optional[jax.Array] = None) -> jax.Array:
        dim = x.shape[-1]
        q, k, v = (split_heads(logical_dense(dim, n, dtype=self.dtype)(x), self.heads) for n in ("q", "k", "v"))
        out = merge_heads(attend(dot_logits(q, k), v, key_mask))  # [B, N, dim]
        return logical_dense(dim, "out", axes=("mlp", "embed"), dtype=self.dtype)(out)
