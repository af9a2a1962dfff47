"""L2 self-attention, cross-attention masking, and the text split at EOT."""

import jax
import pytest
import jax.numpy as jnp
import numpy as np
from flax.core import meta

from gigagan_jax.models.attention import (CrossAttention, L2SelfAttention, attend, attend_l2, l2_logit_scale,
                                          l2_logits, self_logit)
from gigagan_jax.models.text import split_at_eot


def test_l2_logits_are_minus_scaled_squared_distances():
    q = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 5, 8))
    k = jax.random.normal(jax.random.PRNGKey(1), (2, 3, 7, 8))
    expected = -np.sum((np.asarray(q)[:, :, :, None] - np.asarray(k)[:, :, None]) ** 2, -1) * 0.1
    np.testing.assert_allclose(l2_logits(q, k, 0.1), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("token_scale", [1.0, 1e-3, 30.0, 1e3])
def test_l2_attention_without_a_row_maximum_matches_softmax_in_value_and_gradient(token_scale):
    """attend_l2 skips softmax's max subtraction and normalises after the value matmul. At token
    scale 30 every other token's logit is below -100 (exp underflows to 0 but the own logit
    keeps the row finite); at 1e3 rounding in qq - 2qk + kk leaves logits slightly above 0."""
    heads, n, d = 2, 24, 16
    q = token_scale * jax.random.normal(jax.random.PRNGKey(0), (2, heads, n, d))
    context = jnp.concatenate([q, token_scale * jax.random.normal(jax.random.PRNGKey(1), (2, heads, 1, d))], 2)
    v = jax.random.normal(jax.random.PRNGKey(2), (2, heads, n + 1, d))
    scale = l2_logit_scale(d, 4 * d)
    logits = self_logit(l2_logits(q, context, scale), d, scale)  # [2, H, N, N + 1]: a style token as the last key
    if token_scale == 30.0:
        assert float(jnp.max(jnp.where(jnp.eye(n, n + 1, dtype=bool), -jnp.inf, logits))) < -100
    dy = jax.random.normal(jax.random.PRNGKey(3), (2, heads, n, d))
    ref, ref_vjp = jax.vjp(attend, logits, v)
    out, out_vjp = jax.vjp(attend_l2, logits, v)
    assert bool(jnp.all(jnp.isfinite(out)))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    for got, want in zip(out_vjp(dy), ref_vjp(dy)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    out_bf16 = attend_l2(logits, v.astype(jnp.bfloat16))
    assert out_bf16.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out_bf16, np.float32), ref, atol=3e-2)


def test_l2_logits_of_bf16_tokens_are_float32_distances_without_cancellation():
    # Near-equal bf16 tokens of norm ~8: bf16's qq - 2qk + kk would round to a multiple of ~0.25,
    # far above the distances here (~1e-2).
    q = jax.random.normal(jax.random.PRNGKey(0), (1, 1, 16, 64)).astype(jnp.bfloat16)
    k = (q.astype(jnp.float32) + 0.01 * jax.random.normal(jax.random.PRNGKey(1), q.shape)).astype(jnp.bfloat16)
    logits = l2_logits(q, k, 1.0)
    assert logits.dtype == jnp.float32
    qd, kd = np.asarray(q, np.float64), np.asarray(k, np.float64)
    exact = -np.sum((qd[..., :, None, :] - kd[..., None, :, :]) ** 2, axis=-1)
    np.testing.assert_allclose(np.diagonal(logits[0, 0]), np.diagonal(exact[0, 0]), atol=2e-3)
    np.testing.assert_allclose(logits, exact, rtol=1e-4, atol=2e-3)

@pytest.mark.parametrize("head_dim", [16, 32, 64, 128])
def test_l2_attention_is_not_saturated_at_init(head_dim):
    """Unit-variance tokens, 8 x 8 positions (the smallest level with attention): each query's
    logits over the other keys have std in [0.5, 2]; no token keeps more than 15 % of its weight on
    itself (uniform: 1.6 %) and no key takes more than 35 %. (Before: logits / sqrt(d) kept 99.9 %
    of the weight on the token itself at d = 64.)"""
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 8, 128))  # [B, H, W, C]
    layer = L2SelfAttention(2, head_dim)
    params = meta.unbox(jax.jit(layer.init)(jax.random.PRNGKey(1), x))
    _, state = layer.apply(params, x, mutable=["intermediates"])
    logits = np.asarray(state["intermediates"]["logits"][0])  # [B, H, N, N]
    n = logits.shape[-1]
    others = logits[..., ~np.eye(n, dtype=bool)].reshape(*logits.shape[:-1], n - 1)
    stds = others.std(axis=-1)
    assert 0.5 <= stds.min() and stds.max() <= 2.0, (stds.min(), stds.max())
    assert 0.8 <= stds.mean() <= 1.25, stds.mean()
    weights = np.asarray(jax.nn.softmax(logits, axis=-1))
    assert np.diagonal(weights, axis1=-2, axis2=-1).max() <= 0.15
    assert weights.max() <= 0.35, weights.max()


def _sensitivity(module, params, x, seed=2):
    """||f(x+d) - f(x)|| / ||d|| for the attention branch alone (the residual removed)."""
    d = jax.random.normal(jax.random.PRNGKey(seed), x.shape) * 1e-3
    branch = lambda y: module.apply(params, y) - y  # noqa: E731
    return float(jnp.linalg.norm(branch(x + d) - branch(x)) / jnp.linalg.norm(d))


def test_l2_attention_stays_lipschitz_where_dot_product_does_not():
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 8, 32))
    l2 = L2SelfAttention(4, 16, residual_gain=1.0, logits="l2")
    dot = L2SelfAttention(4, 16, residual_gain=1.0, logits="dot")
    params = meta.unbox(jax.jit(l2.init)(jax.random.PRNGKey(1), x))  # same weights for both
    scales = (1.0, 3.0, 10.0, 30.0)
    l2_ratios = [_sensitivity(l2, params, x * s) for s in scales]
    dot_ratios = [_sensitivity(dot, params, x * s) for s in scales]
    # L2: the local gain levels off (at the value path's, once each token attends to itself) as
    # inputs grow 10x past 3x; dot-product: it grows without bound.
    assert max(l2_ratios[1:]) <= 1.5 * l2_ratios[1], l2_ratios
    assert dot_ratios[-1] >= 10 * dot_ratios[1], dot_ratios


def test_self_attention_reads_the_style_token_and_uses_reduced_gain():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, 16))
    w = jax.random.normal(jax.random.PRNGKey(1), (2, 8))
    full = L2SelfAttention(2, 8, residual_gain=1.0)
    half = L2SelfAttention(2, 8, residual_gain=0.5)
    params = meta.unbox(jax.jit(full.init)(jax.random.PRNGKey(2), x, w))
    y_full, y_half = full.apply(params, x, w), half.apply(params, x, w)
    np.testing.assert_allclose(y_half - x, 0.5 * (y_full - x), rtol=1e-5, atol=1e-6)
    y_other_w = full.apply(params, x, w + 1.0)
    assert float(jnp.abs(y_other_w - y_full).max()) > 1e-4


def test_cross_attention_ignores_padding_tokens():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 4, 16))
    text = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 12))
    mask = jnp.array([[True, True, True, False, False, False], [True, False, False, False, False, False]])
    layer = CrossAttention(2, 8)
    params = meta.unbox(jax.jit(layer.init)(jax.random.PRNGKey(2), x, text, mask))
    y = layer.apply(params, x, text, mask)
    padded_changed = jnp.where(mask[:, :, None], text, text + 100.0)
    np.testing.assert_allclose(layer.apply(params, x, padded_changed, mask), y, rtol=1e-6, atol=1e-6)
    valid_changed = text.at[:, 0].add(1.0)
    assert float(jnp.abs(layer.apply(params, x, valid_changed, mask) - y).max()) > 1e-4
    # Even a fully masked row stays finite (an all-padding prompt must not produce NaNs).
    all_masked = layer.apply(params, x, text, jnp.zeros_like(mask))
    assert bool(jnp.all(jnp.isfinite(all_masked)))


def test_split_at_eot_separates_global_and_local_tokens():
    t = jnp.arange(2 * 6 * 1, dtype=jnp.float32).reshape(2, 6, 1)  # token i of sample b = 6b + i
    eot = jnp.array([3, 1])
    t_local, mask, t_global = split_at_eot(t, eot)
    np.testing.assert_array_equal(t_global[:, 0], [3.0, 7.0])
    np.testing.assert_array_equal(t_local[..., 0], [[0, 1, 2, 4, 5], [6, 8, 9, 10, 11]])
    np.testing.assert_array_equal(mask, [[True, True, True, False, False], [True, False, False, False, False]])
