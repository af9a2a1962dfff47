"""Sampling G (usually G_ema) for prompts and seeds, and writing image grids.

One jitted forward pass per batch; noise inputs off (`noise_mode='none'`) so an image is a
pure function of (params, prompt, seed): the same seed gives byte-identical PNGs.
"""

from __future__ import annotations

import functools
import math
from typing import Optional, Sequence

import einops
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from gigagan_jax.models.generator import Generator


def seeds_to_z(seeds: Sequence[int], z_dim: int) -> jax.Array:
    """One z per seed, independent of batch composition: [len(seeds), z_dim]."""
    return jnp.stack([jax.random.normal(jax.random.PRNGKey(int(s)), (z_dim,)) for s in seeds])


@functools.partial(jax.jit, static_argnames=("generator", "truncation_psi"))
def generate(generator: Generator, params, z, text_features=None, eot_index=None, labels=None,
             truncation_psi=1.0, w_avg=None):
    """Final-resolution images [B, R, R, 3] in [-1, 1] (clipped)."""
    pyramid = generator.apply({"params": params}, z, text_features, eot_index, labels,
                              truncation_psi=truncation_psi, w_avg=w_avg, noise_mode="none")
    return jnp.clip(pyramid[-1], -1.0, 1.0)


@functools.partial(jax.jit, static_argnames=("upsampler", "truncation_psi"))
def upsample(upsampler, params, z, lowres, text_features=None, eot_index=None, labels=None,
             truncation_psi=1.0, w_avg=None):
    """Low-res images [B, r, r, 3] in [-1, 1] -> the upsampler's output [B, R, R, 3] (clipped)."""
    pyramid = upsampler.apply({"params": params}, z, lowres, text_features, eot_index, labels,
                              truncation_psi=truncation_psi, w_avg=w_avg, noise_mode="none")
    return jnp.clip(pyramid[-1], -1.0, 1.0)


@functools.partial(jax.jit, static_argnames=("generator", "upsampler", "truncation_psi"))
def generate_and_upsample(generator: Generator, g_params, upsampler, u_params, z, z_up, g_condition: dict,
                          u_condition: dict, truncation_psi=1.0, w_avg=None):
    """Base model -> upsampler in one executable: (base images [B, r, r, 3], upsampled [B, R, R, 3]).

    Each model reads its own condition dict (text_features/eot_index from its own text encoder,
    or labels)."""
    lowres = generate(generator, g_params, z, truncation_psi=truncation_psi, w_avg=w_avg, **g_condition)
    return lowres, upsample(upsampler, u_params, z_up, lowres, **u_condition)


def nearest_resize(images, size: int):
    """[B, r, r, C] -> [B, size, size, C] by pixel repetition (how a low-res input is shown)."""
    f = size // images.shape[1]
    return jnp.repeat(jnp.repeat(images, f, axis=1), f, axis=2)


def to_uint8(images) -> np.ndarray:
    """[-1, 1] float -> uint8 [B, H, W, 3]."""
    return np.asarray(jnp.round((jnp.asarray(images) + 1.0) * 127.5).clip(0, 255).astype(jnp.uint8))


def make_grid(images: np.ndarray, rows: Optional[int] = None, pad: int = 1) -> np.ndarray:
    """uint8 [N, H, W, 3] -> one uint8 [rows*(H+pad)-pad, cols*(W+pad)-pad, 3] image."""
    n = images.shape[0]
    rows = rows or int(math.floor(math.sqrt(n)))
    cols = -(-n // rows)
    padded = np.full((rows * cols,) + images.shape[1:], 255, np.uint8)
    padded[:n] = images
    padded = np.pad(padded, [(0, 0), (0, pad), (0, pad), (0, 0)], constant_values=255)
    grid = einops.rearrange(padded, "(r c) h w ch -> (r h) (c w) ch", r=rows, c=cols)
    return grid[:-pad or None, :-pad or None]


def save_png(image: np.ndarray, path: str) -> None:
    Image.fromarray(image).save(path, format="PNG")
