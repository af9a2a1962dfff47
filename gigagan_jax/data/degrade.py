"""The upsampler's training inputs: a real high-res image becomes its clean low-res input by area
down-sampling, then a random degradation (paper §3.4) so the upsampler does not rely on a
perfectly clean input. Sampling feeds the input as is; only training degrades it."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gigagan_jax.pixels import area_downsample


def gaussian_taps(sigma: jax.Array, radius: int) -> jax.Array:
    """Per-sample normalised 1-D Gaussian taps [B, 2*radius+1]; sigma -> 0 gives the identity."""
    offsets = jnp.arange(-radius, radius + 1, dtype=jnp.float32)  # [K]
    logits = -jnp.square(offsets)[None, :] / (2.0 * jnp.square(jnp.maximum(sigma, 1e-3))[:, None])
    return jax.nn.softmax(logits, axis=-1)


def _blur_axis(x: jax.Array, taps: jax.Array, axis: int) -> jax.Array:
    """Per-sample separable blur along `axis` (1 = H, 2 = W) with edge padding."""
    radius = (taps.shape[1] - 1) // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (radius, radius)
    xp = jnp.pad(x, pad, mode="edge")
    n = x.shape[axis]
    out = jnp.zeros_like(x)
    for k in range(taps.shape[1]):
        out = out + taps[:, k, None, None, None] * jax.lax.slice_in_dim(xp, k, k + n, axis=axis)
    return out


def degrade(lowres: jax.Array, rng: jax.Array, blur_sigma_max: float, noise_std_max: float) -> jax.Array:
    """Training-time augmentation of the low-res input (paper §3.4): a random-strength Gaussian
    blur and Gaussian noise per sample, so the upsampler does not rely on a perfectly clean input
    and also restores base-generator outputs, which are never exactly area-downsampled photos."""
    b = lowres.shape[0]
    blur_rng, std_rng, noise_rng = jax.random.split(rng, 3)
    x = lowres.astype(jnp.float32)
    if blur_sigma_max > 0:
        sigma = jax.random.uniform(blur_rng, (b,), maxval=blur_sigma_max)
        taps = gaussian_taps(sigma, radius=max(1, math.ceil(3 * blur_sigma_max)))
        x = _blur_axis(_blur_axis(x, taps, 1), taps, 2)
    if noise_std_max > 0:
        std = jax.random.uniform(std_rng, (b, 1, 1, 1), maxval=noise_std_max)
        x = x + std * jax.random.normal(noise_rng, x.shape)
    return x


def lowres_input(images: jax.Array, input_resolution: int) -> jax.Array:
    """Real high-res images [B, R, R, 3] -> the clean low-res input [B, r, r, 3] the upsampler reads."""
    return area_downsample(images, images.shape[1] // input_resolution)
