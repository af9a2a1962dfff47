"""The 3x3 conv of a 2x-upsampled image, computed at the input's resolution.

A synthesis layer that upsamples computes conv3x3(upsample2d(x)). upsample2d is zero insertion
followed by a low-pass, and all three are linear and shift-invariant, so the conv can run between
the two (StyleGAN2's order): a transposed conv of x, then the low-pass over its output. The conv
then touches each input pixel once per tap instead of each of the 4x as many upsampled pixels.

The transposed conv is one 2x2 conv of x to 4 x Cout channels, one group of Cout per output pixel
parity (`subpixel_kernel`), interleaved: 16 products per input pixel and channel pair where the
conv at 2x takes 36. Being an ordinary conv, it runs through whichever implementation the layer
uses (layers.AdaptiveModulatedConv's `impl`), per-sample kernels or a shared bank alike.

The two orders differ only at the border: conv3x3 zero-pads upsample2d's output, cropped to 2H x
2W, while the low-pass after the conv also carries the one pixel of upsampled image past each
edge. That ring's share of the edge outputs is subtracted (`_subtract_border_terms`), so the result equals
conv3x3(upsample2d(x)) up to rounding (tests/test_upsampled_conv.py).
"""

from __future__ import annotations

from typing import Callable

import einops
import jax
import jax.numpy as jnp
import numpy as np

from gigagan_jax.models.resample import DEFAULT_FILTER, upsample_axis, upsample_lowpass

# conv(x, kernel [.., k, k, Cin, Cout], padding ((top, bottom), (left, right))) -> [B, H', W', Cout]
Conv = Callable[[jax.Array, jax.Array, tuple], jax.Array]

# Per axis, output 2m + r of the transposed conv reads x[m + t] through kernel tap a (tap a - 1 of
# the 3x3 conv's offsets -1, 0, 1): [parity r, window tap t, kernel tap a].
_PARITY_TAPS = np.zeros((2, 2, 3), np.float32)
_PARITY_TAPS[0, 0, 1] = 1.0  # even outputs read x[m] through the centre tap
_PARITY_TAPS[1, 0, 0] = _PARITY_TAPS[1, 1, 2] = 1.0  # odd outputs read x[m] and x[m + 1] through the outer taps
# How much of an edge pixel the upsampled image holds one pixel past that edge (upsample2d's low-pass
# with [1, 3, 3, 1] spills exactly one pixel: the formulas below assume it).
_SPILL = 0.25
assert tuple(DEFAULT_FILTER) == (1.0, 3.0, 3.0, 1.0)


def subpixel_kernel(kernel: jax.Array) -> jax.Array:
    """A 3x3 kernel [..., 3, 3, Cin, Cout] as the 2x2 kernel [..., 2, 2, Cin, 4*Cout] of its
    transposed conv's four output parities, channels ordered (row parity, column parity, Cout)."""
    taps = jnp.asarray(_PARITY_TAPS, kernel.dtype)
    sub = jnp.einsum("rta,sub,...abio->...tuirso", taps, taps, kernel)
    return einops.rearrange(sub, "... t u i r s o -> ... t u i (r s o)")


def upsampled_conv(x: jax.Array, kernel: jax.Array, conv: Conv) -> jax.Array:
    """conv3x3(upsample2d(x), kernel) with SAME padding: x [B, H, W, Cin], a 3x3 kernel shared
    [3, 3, Cin, C] or per sample [B, 3, 3, Cin, C] -> [B, 2H, 2W, C]. `conv` applies a (shared or
    per-sample) kernel with explicit padding; it runs the 2x2 conv at H x W."""
    if kernel.shape[-4:-2] != (3, 3):
        raise ValueError(f"upsampled_conv takes a 3x3 kernel, got {kernel.shape}")
    # Padded ahead and convolved VALID: XLA:CPU's kernel gradient of a 2x2 conv that pads its own
    # input took 100x longer (16 s against 0.16 at 32 px, 64 -> 1024 channels, batch 8).
    xp = jnp.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    y = conv(xp, subpixel_kernel(kernel), ((0, 0), (0, 0)))  # [B, H+1, W+1, 4C]: window m reads x[m - 1], x[m]
    # The transposed conv at rows (columns) -2 .. 2H-1, and at 2H, where it is zero: the margins
    # upsample_lowpass expects.
    v = einops.rearrange(y, "b h w (r s o) -> b (h r) (w s) o", r=2, s=2)
    v = jnp.pad(v, [(0, 0), (0, 1), (0, 1), (0, 0)])  # [B, 2H+3, 2W+3, C]
    return _subtract_border_terms(upsample_lowpass(v), x, kernel)  # [B, 2H, 2W, C]


def _subtract_border_terms(y: jax.Array, x: jax.Array, kernel: jax.Array) -> jax.Array:
    """y [B, 2H, 2W, C] less what the upsampled image's spill ring adds to its edge rows and
    columns: the ring is upsample2d's output one pixel past each edge, _SPILL of the edge pixels
    upsampled along the edge, which the SAME conv after upsample2d never sees.

    The ring is split into strips that do not overlap: the rows above and below, each with its
    two corner pixels, and the columns left and right between them. Opposite strips go together
    (fewer ops: XLA:CPU compiles each fused kernel on its own)."""
    spill = jnp.asarray(_SPILL, x.dtype)
    edge_rows = jnp.concatenate([x[:, :1], x[:, -1:]], axis=1)  # [B, 2, W, Cin]
    edge_cols = einops.rearrange(jnp.concatenate([x[:, :, :1], x[:, :, -1:]], axis=2), "b h s c -> b s h c")
    rows = upsample_axis(edge_rows, 2, margin=1) * spill  # [B, 2, 2W+2, Cin]: rows -1 and 2H, columns -1 .. 2W
    # [B, 2, 2H+2, Cin]: columns -1 and 2W, rows -1 .. 2H with the corners (the row strips') zero.
    cols = jnp.pad(upsample_axis(edge_cols, 2) * spill, [(0, 0), (0, 0), (1, 1), (0, 0)])
    # A strip reaches the outputs beside it through the kernel's taps on that side.
    row_terms = _strip_conv(rows, kernel[..., ::2, :, :, :])  # [B, 2, 2W, C]: output rows 0 and 2H-1
    col_terms = _strip_conv(cols, einops.rearrange(kernel[..., :, ::2, :, :], "... t s i o -> ... s t i o"))
    col_terms = einops.rearrange(col_terms, "b s h o -> b h s o")  # [B, 2H, 2, C]: output columns 0 and 2W-1
    # Spread to the image's edges by interior zero padding: elementwise with y, so XLA fuses it.
    zero = jnp.zeros((), y.dtype)
    h, w = y.shape[1:3]
    row_terms = jax.lax.pad(row_terms, zero, [(0, 0, 0), (0, 0, h - 2), (0, 0, 0), (0, 0, 0)])
    col_terms = jax.lax.pad(col_terms, zero, [(0, 0, 0), (0, 0, 0), (0, 0, w - 2), (0, 0, 0)])
    return y - row_terms - col_terms


def _strip_conv(strips: jax.Array, taps: jax.Array) -> jax.Array:
    """1-D VALID convs: strips [B, S, L+2, Cin] with taps [S, 3, Cin, C] or per sample
    [B, S, 3, Cin, C] -> [B, S, L, C]."""
    length = strips.shape[2] - 2
    views = jnp.stack([strips[:, :, t:t + length] for t in range(3)], axis=3)  # [B, S, L, 3, Cin]
    spec = "bslti,bstio->bslo" if taps.ndim == 5 else "bslti,stio->bslo"
    return jnp.einsum(spec, views, taps.astype(strips.dtype))
