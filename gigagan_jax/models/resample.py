"""StyleGAN2-style FIR resampling (upfirdn2d) in NHWC.

Up/down-sampling goes through a separable low-pass filter (default [1, 3, 3, 1]) so that the
generator does not alias; the filter is a constant, not a parameter.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_FILTER = (1.0, 3.0, 3.0, 1.0)


def _taps(taps: Sequence[float], gain: float) -> np.ndarray:
    f = np.asarray(taps, dtype=np.float64)
    return (f / f.sum() * gain).astype(np.float32)  # [k]


def _fir(x: jax.Array, taps: np.ndarray, axis: int, stride: int) -> jax.Array:
    """VALID 1-D filtering of x along `axis` as a sum of k strided slices (cross-correlation with
    the flipped taps). Separable and elementwise: XLA runs this far faster than a depthwise
    (feature_group_count = C) convolution, which took most of the sampling time on CPU."""
    k = len(taps)
    out_len = (x.shape[axis] - k) // stride + 1
    flipped = taps[::-1]
    total = None
    for j in range(k):
        # A Python float is weakly typed, so a bf16 x stays bf16 (a numpy scalar would promote it).
        part = jax.lax.slice_in_dim(x, j, j + (out_len - 1) * stride + 1, stride, axis) * float(flipped[j])
        total = part if total is None else total + part
    return total


def _fir_2d(x: jax.Array, taps: np.ndarray, stride: int) -> jax.Array:
    """Separable FIR over H and W of [B, H, W, C]."""
    return _fir(_fir(x, taps, 1, stride), taps, 2, stride)


def upsample2d(x: jax.Array, taps: Sequence[float] = DEFAULT_FILTER, factor: int = 2) -> jax.Array:
    """[B, H, W, C] -> [B, factor*H, factor*W, C]: zero-insertion, then low-pass with gain factor**2."""
    k = len(taps)
    p = k - factor
    pad0, pad1 = (p + 1) // 2 + factor - 1, p // 2
    zero = jnp.zeros((), x.dtype)
    # Interior padding inserts factor-1 zeros between samples; the trailing factor-1 zeros and
    # the filter's border padding go to the ends.
    x = jax.lax.pad(x, zero, [(0, 0, 0), (pad0, pad1 + factor - 1, factor - 1),
                              (pad0, pad1 + factor - 1, factor - 1), (0, 0, 0)])
    return _fir_2d(x, _taps(taps, factor), stride=1)  # gain factor per axis = factor**2 in 2-D


def blur2d(x: jax.Array, pad: tuple[int, int], taps: Sequence[float] = DEFAULT_FILTER, stride: int = 1) -> jax.Array:
    """Low-pass [B, H, W, C] with `pad` = (before, after) zero padding on both spatial axes,
    keeping every `stride`-th output (the same values as blurring all, then subsampling)."""
    x = jnp.pad(x, [(0, 0), pad, pad, (0, 0)])
    return _fir_2d(x, _taps(taps, 1.0), stride=stride)


def downsample2d(x: jax.Array, taps: Sequence[float] = DEFAULT_FILTER, factor: int = 2) -> jax.Array:
    """[B, H, W, C] -> [B, H/factor, W/factor, C]: low-pass, then keep every factor-th sample."""
    k = len(taps)
    p = k - factor
    x = jnp.pad(x, [(0, 0), ((p + 1) // 2, p // 2), ((p + 1) // 2, p // 2), (0, 0)])
    return _fir_2d(x, _taps(taps, 1.0), stride=factor)
