"""Attention layers: Lipschitz L2-distance self-attention, text cross-attention, and a plain MHA.

GigaGAN needs attention that does not destabilise GAN training. Dot-product self-attention is
not Lipschitz (Kim et al. 2021); using minus the squared L2 distance between *tied* query/key
projections as logits is, so the self-attention blocks use that, with equalized-lr init and a
reduced residual gain. Cross-attention to text tokens is ordinary dot-product attention with
the padding positions masked out.

Two things keep the L2 softmax out of saturation at init, whatever the head width d:
- the logits are scaled to unit variance over keys (the paper scales them "to roughly match the
  unit normal distribution at initialization"; `l2_logit_scale`);
- a token's logit for itself is a constant, the logit of the distance two tokens have on average
  at init (`self_logit`). With tied Q = K its own distance is always 0 while every other is ~2d,
  a lead of sqrt(2d/3) standard deviations that no scale removes (6.5 at d = 64: 99.7 % of the
  weight on itself among 64 tokens). The self logit was a constant (0) before, so the map keeps
  its Lipschitz bound; as other tokens move away a token still falls back on itself. (Masking the
  diagonal instead, as Reformer's shared-QK attention does, loses that: the weight then has
  nowhere to go but the nearest other token, and the gain grows with the input scale.)
"""

from __future__ import annotations

import math
from typing import Any, Optional

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp

from gigagan_jax.models.layers import EqualizedDense, normalize_2nd_moment

Dtype = Any
# Finite "minus infinity": keeps softmax NaN-free even when every key is masked.
MASK_VALUE = -1e30


def l2_logit_scale(head_dim: int, fan_in: int) -> float:
    """1 / (std over keys of ||q - k||^2) at init, for unit-variance tokens of `fan_in` channels.

    With the tied projection W [head_dim, fan_in] drawn N(0, 1/fan_in), q and k are N(0, S),
    S = W W^T, and for a fixed q the squared distance varies over keys with variance
    4 q^T S q + 2 tr(S^2), whose mean is 6 E tr(S^2) = 6 d (d + fan_in + 1) / fan_in.
    """
    d = head_dim
    return 1.0 / math.sqrt(6.0 * d * (d + fan_in + 1) / fan_in)


def l2_logits(q: jax.Array, k: jax.Array, scale: float) -> jax.Array:
    """-scale * ||q_i - k_j||^2 in float32.  q [B, H, Nq, d], k [B, H, Nk, d] -> [B, H, Nq, Nk]

    The expansion qq - 2qk + kk cancels when q is near k; in bf16 that leaves rounding noise as
    large as the distance, so the sums are float32 whatever the compute dtype."""
    qq = jnp.sum(jnp.square(q.astype(jnp.float32)), axis=-1)[..., :, None]
    kk = jnp.sum(jnp.square(k.astype(jnp.float32)), axis=-1)[..., None, :]
    qk = jnp.einsum("bhqd,bhkd->bhqk", q, k, preferred_element_type=jnp.float32)
    return -(qq - 2.0 * qk + kk) * scale


def self_logit(logits: jax.Array, head_dim: int, scale: float) -> jax.Array:
    """Query i's logit for key i := -scale * 2 * head_dim, the expected squared distance between two
    tokens at init (tr S = d, see `l2_logit_scale`); keys past the queries (a style token) keep theirs.

    logits [B, H, Nq, Nk] with Nk >= Nq, keys 0..Nq-1 being the queries themselves."""
    nq, nk = logits.shape[-2:]
    own = jnp.eye(nq, nk, dtype=bool)  # [Nq, Nk]
    return jnp.where(own, jnp.asarray(-2.0 * head_dim * scale, logits.dtype), logits)


def dot_logits(q: jax.Array, k: jax.Array) -> jax.Array:
    """q.k / sqrt(d) in float32.  [B, H, Nq, d], [B, H, Nk, d] -> [B, H, Nq, Nk]"""
    return jnp.einsum("bhqd,bhkd->bhqk", q, k, preferred_element_type=jnp.float32) / math.sqrt(q.shape[-1])


def attend(logits: jax.Array, v: jax.Array, key_mask: Optional[jax.Array] = None) -> jax.Array:
    """Softmax over keys (masked where key_mask is False), then mix values.

    logits [B, H, Nq, Nk], v [B, H, Nk, d], key_mask [B, Nk] bool -> [B, H, Nq, d]
    """
    logits = logits.astype(jnp.float32)
    if key_mask is not None:
        logits = jnp.where(key_mask[:, None, None, :], logits, MASK_VALUE)
    weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("bhqk,bhkd->bhqd", weights, v)


def attend_l2(logits: jax.Array, v: jax.Array) -> jax.Array:
    """`attend` for L2 logits after `self_logit`, with two passes over the [Nq, Nk] weights fewer.

    - No row maximum is subtracted before exp. Every L2 logit is minus a scaled squared distance
      (<= 0 up to rounding), and each row holds its token's own constant logit, so the row's
      largest term lies in [exp(own logit), 1]: exp neither overflows nor underflows a whole row.
    - The row sums divide the mixed values [Nq, d], not the weights [Nq, Nk], so neither the
      forward nor the backward pass reduces or rescales the weights a second time.
    The bench64 D step ran 3.5 % faster (BENCHMARKS.md, "L2 attention's softmax").

    logits [B, H, Nq, Nk] (keys 0..Nq-1 being the queries), v [B, H, Nk, d] -> [B, H, Nq, d]
    """
    unnormalised = jnp.exp(logits.astype(jnp.float32))  # [B, H, Nq, Nk]
    mixed = jnp.einsum("bhqk,bhkd->bhqd", unnormalised.astype(v.dtype), v, preferred_element_type=jnp.float32)
    return (mixed / jnp.sum(unnormalised, axis=-1, keepdims=True)).astype(v.dtype)


def split_heads(x: jax.Array, heads: int) -> jax.Array:
    return einops.rearrange(x, "b n (h d) -> b h n d", h=heads)


def merge_heads(x: jax.Array) -> jax.Array:
    return einops.rearrange(x, "b h n d -> b n (h d)")


class L2SelfAttention(nn.Module):
    """Residual L2-distance self-attention over image positions (plus an optional style token).

    Queries and keys share one projection (tied), which is what makes the L2 logits Lipschitz.
    When `w` is given it is projected to one extra key/value token, so attention can read the
    style vector (GigaGAN's g_attn(f, w)).  The output projection starts scaled down and the
    residual branch is multiplied by `residual_gain` < 1. With L2 logits a position's logit for
    itself is a constant (module doc).
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
            scale = l2_logit_scale(self.head_dim, c)
            logits = self_logit(l2_logits(q, k, scale), self.head_dim, scale)
            self.sow("intermediates", "logits", logits)  # kept only when the caller asks (tests)
            mixed = attend_l2(logits, v)
        elif self.logits == "dot":
            mixed = attend(dot_logits(q, k), v)
        else:
            raise ValueError(f"logits must be 'l2' or 'dot', got {self.logits!r}")
        out = merge_heads(mixed)  # [B, N, inner]
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
    """Plain multi-head dot-product attention over a token sequence (text transformers), with
    equalized-lr projections."""

    heads: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, key_mask: Optional[jax.Array] = None) -> jax.Array:
        dim = x.shape[-1]
        q, k, v = (split_heads(EqualizedDense(dim, name=n, dtype=self.dtype)(x), self.heads) for n in ("q", "k", "v"))
        out = merge_heads(attend(dot_logits(q, k), v, key_mask))  # [B, N, dim]
        return EqualizedDense(dim, axes=("mlp", "embed"), name="out", dtype=self.dtype)(out)
