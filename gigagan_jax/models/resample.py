"""StyleGAN2-style FIR resampling (upfirdn2d) in NHWC.

Up/down-sampling goes through a separable low-pass filter (default [1, 3, 3, 1]) so that the
generator does not alias; the filter is a constant, not a parameter.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_FILTER = (1.0, 3.0, 3.0, 1.0)


def _taps(taps: Sequence[float], gain: float) -> tuple[float, ...]:
    """The filter normalised to sum to `gain`, as float32 values (a hashable tuple)."""
    f = np.asarray(taps, dtype=np.float64)
    return tuple(float(v) for v in (f / f.sum() * gain).astype(np.float32))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _fir(x: jax.Array, taps: tuple[float, ...], axis: int, stride: int) -> jax.Array:
    """VALID 1-D filtering of x along `axis` as a sum of k strided slices (cross-correlation with
    the flipped taps). Separable and elementwise: XLA runs this far faster than a depthwise
    (feature_group_count = C) convolution, which took most of the sampling time on CPU.

    Its input gradient is the same kind of FIR (`_fir_bwd`). Autodiff's own transposes each
    slice into a zero-padded copy of the output gradient: in D's backward pass XLA wrote those k
    copies out one by one, where the forward pass is one fused loop (BENCHMARKS.md, "The FIR's
    gradient as a FIR")."""
    k = len(taps)
    out_len = (x.shape[axis] - k) // stride + 1
    total = None
    for j, tap in enumerate(reversed(taps)):
        # A Python float is weakly typed, so a bf16 x stays bf16 (a numpy scalar would promote it).
        part = jax.lax.slice_in_dim(x, j, j + (out_len - 1) * stride + 1, stride, axis) * tap
        total = part if total is None else total + part
    return total


def _fir_fwd(x, taps, axis, stride):
    return _fir(x, taps, axis, stride), x.shape[axis]  # the residual is the input's length, a Python int


def _fir_bwd(taps, axis, stride, in_len, dy):
    """dx[m] = sum over (i, j) with stride * i + j = m of dy[i] * flipped[j]: dy dilated by the
    stride, zero-padded by k - 1 in front (and to the input's length behind), then filtered with
    the taps reversed. One pad and one FIR, which XLA fuses into a single loop."""
    k, out_len = len(taps), dy.shape[axis]
    config = [(0, 0, 0)] * dy.ndim
    config[axis] = (k - 1, in_len - (out_len - 1) * stride - 1, stride - 1)  # (low, high, interior)
    return (_fir(jax.lax.pad(dy, jnp.zeros((), dy.dtype), config), taps[::-1], axis, 1),)


_fir.defvjp(_fir_fwd, _fir_bwd)


def _fir_2d(x: jax.Array, taps: tuple[float, ...], stride: int) -> jax.Array:
    """Separable FIR over H and W of [B, H, W, C]."""
    return _fir(_fir(x, taps, 1, stride), taps, 2, stride)


def _zero_insertion(k: int, factor: int, margin: int = 0) -> tuple[int, int, int]:
    """lax.pad's (low, high, interior) along an axis that upsample2d's k-tap low-pass then filters
    VALID: interior padding inserts factor-1 zeros between samples; the trailing factor-1 zeros,
    the filter's border padding and `margin` more for its spill past each end go to the ends."""
    p = k - factor
    return (p + 1) // 2 + factor - 1 + margin, p // 2 + factor - 1 + margin, factor - 1


def upsample2d(x: jax.Array, taps: Sequence[float] = DEFAULT_FILTER, factor: int = 2) -> jax.Array:
    """[B, H, W, C] -> [B, factor*H, factor*W, C]: zero-insertion, then low-pass with gain factor**2."""
    axis = _zero_insertion(len(taps), factor)
    return upsample_lowpass(jax.lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), axis, axis, (0, 0, 0)]), taps, factor)


def upsample_axis(x: jax.Array, axis: int, taps: Sequence[float] = DEFAULT_FILTER, factor: int = 2,
                  margin: int = 0) -> jax.Array:
    """upsample2d along one axis: n -> factor*n samples, or factor*n + 2*margin keeping `margin`
    samples of the low-pass's spill past each end (what upsample2d crops off)."""
    config = [(0, 0, 0)] * x.ndim
    config[axis] = _zero_insertion(len(taps), factor, margin)
    return _fir(jax.lax.pad(x, jnp.zeros((), x.dtype), config), _taps(taps, factor), axis, 1)


def upsample_lowpass(v: jax.Array, taps: Sequence[float] = DEFAULT_FILTER, factor: int = 2) -> jax.Array:
    """upsample2d's low-pass alone, over an image `v` [B, factor*H + k - 1, factor*W + k - 1, C]
    that is already zero-inserted (or a linear function of such an image), padded as upsample2d
    pads it: (k - factor + 1) // 2 + factor - 1 samples in front. VALID: [B, factor*H, factor*W, C]."""
    return _fir_2d(v, _taps(taps, factor), stride=1)  # gain factor per axis = factor**2 in 2-D


def blur2d(x: jax.Array, pad: tuple[int, int], taps: Sequence[float] = DEFAULT_FILTER) -> jax.Array:
    """Low-pass [B, H, W, C] with `pad` = (before, after) zero padding on both spatial axes."""
    x = jnp.pad(x, [(0, 0), pad, pad, (0, 0)])
    return _fir_2d(x, _taps(taps, 1.0), stride=1)


def downsample2d(x: jax.Array, taps: Sequence[float] = DEFAULT_FILTER, factor: int = 2) -> jax.Array:
    """[B, H, W, C] -> [B, H/factor, W/factor, C]: low-pass, then keep every factor-th sample."""
    k = len(taps)
    p = k - factor
    x = jnp.pad(x, [(0, 0), ((p + 1) // 2, p // 2), ((p + 1) // 2, p // 2), (0, 0)])
    return _fir_2d(x, _taps(taps, 1.0), stride=factor)
