"""StyleGAN2-style FIR resampling (upfirdn2d) in NHWC.

Up/down-sampling goes through a separable low-pass filter (default [1, 3, 3, 1]) so that the
generator does not alias; the filter is a constant, not a parameter.
"""

from __future__ import annotations

from typing import Sequence

import einops
import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_FILTER = (1.0, 3.0, 3.0, 1.0)


def _filter_2d(taps: Sequence[float], gain: float) -> np.ndarray:
    f = np.asarray(taps, dtype=np.float32)
    f2 = np.outer(f, f)
    return f2 / f2.sum() * gain  # [k, k]


def _depthwise(x: jax.Array, f2: np.ndarray, stride: int) -> jax.Array:
    """Convolve every channel of x [B, H, W, C] with the same 2-D filter (valid padding)."""
    channels = x.shape[-1]
    kernel = jnp.broadcast_to(jnp.asarray(f2[::-1, ::-1], x.dtype)[:, :, None, None],
                              f2.shape + (1, channels))  # [k, k, 1, C]
    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=(stride, stride), padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels)


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
    return _depthwise(x, _filter_2d(taps, factor**2), stride=1)


def blur2d(x: jax.Array, pad: tuple[int, int], taps: Sequence[float] = DEFAULT_FILTER) -> jax.Array:
    """Low-pass [B, H, W, C] with `pad` = (before, after) zero padding on both spatial axes."""
    x = jnp.pad(x, [(0, 0), pad, pad, (0, 0)])
    return _depthwise(x, _filter_2d(taps, 1.0), stride=1)


def downsample2d(x: jax.Array, taps: Sequence[float] = DEFAULT_FILTER, factor: int = 2) -> jax.Array:
    """[B, H, W, C] -> [B, H/factor, W/factor, C]: low-pass, then keep every factor-th sample."""
    k = len(taps)
    p = k - factor
    x = jnp.pad(x, [(0, 0), ((p + 1) // 2, p // 2), ((p + 1) // 2, p // 2), (0, 0)])
    return _depthwise(x, _filter_2d(taps, 1.0), stride=factor)


def area_downsample(x: jax.Array, factor: int) -> jax.Array:
    """Box-filter [B, H, W, C] by an integer factor; used to build real-image pyramids."""
    return einops.reduce(x, "b (h fh) (w fw) c -> b h w c", "mean", fh=factor, fw=factor)
