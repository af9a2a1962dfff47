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
