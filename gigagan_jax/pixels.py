"""Pixel conventions every layer shares: datasets store uint8 [0, 255], networks read and write
float [-1, 1], and pyramids are built by area (box-filter) down-sampling. One definition each,
so a real image, a generated one and a restored one are always on the same scale."""

from __future__ import annotations

import einops
import jax
import jax.numpy as jnp
import numpy as np


def to_signed(images):
    """uint8 [0, 255] -> float32 [-1, 1]; float input passes through as float32.
    numpy in, numpy out; a jax array (or a tracer inside jit) in, a jax array out."""
    xp = jnp if isinstance(images, jax.Array) else np
    x = xp.asarray(images)
    if x.dtype == xp.uint8:
        return x.astype(xp.float32) / 127.5 - 1.0
    return x.astype(xp.float32)


def quantize(images) -> jax.Array:
    """[-1, 1] float -> uint8 (rounded, clipped), left where it was computed."""
    return jnp.round((jnp.asarray(images) + 1.0) * 127.5).clip(0, 255).astype(jnp.uint8)


def to_uint8(images) -> np.ndarray:
    """[-1, 1] float -> uint8 [B, H, W, 3] on the host (rounded, clipped)."""
    return np.asarray(quantize(images))


def area_downsample(x: jax.Array, factor: int) -> jax.Array:
    """Box-filter [B, H, W, C] by an integer factor: real-image pyramids, upsampler inputs."""
    return einops.reduce(x, "b (h fh) (w fw) c -> b h w c", "mean", fh=factor, fw=factor)


def resize_to(x: jax.Array, resolution: int) -> jax.Array:
    """Square image [B, r, r, C] -> [B, resolution, resolution, C]: bicubic up, area down.

    Bicubic (not the zero-padded FIR of the feature path) so that borders keep their colour:
    the upsampler then starts exactly at the bicubic baseline it has to beat."""
    b, r, _, c = x.shape
    if r < resolution:
        return jax.image.resize(x, (b, resolution, resolution, c), method="bicubic")
    if r > resolution:
        return area_downsample(x, r // resolution)
    return x
