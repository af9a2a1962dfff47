"""Laying sampled images out for people: grids (one row per prompt), pixel-repeated low-res
inputs beside their upsampled outputs, and PNG files."""

from __future__ import annotations

import math
from typing import Optional

import einops
import jax.numpy as jnp
import numpy as np
from PIL import Image

from gigagan_jax.workdir import open_file


def nearest_resize(images, size: int):
    """[B, r, r, C] -> [B, size, size, C] by pixel repetition (how a low-res input is shown)."""
    f = size // images.shape[1]
    return jnp.repeat(jnp.repeat(images, f, axis=1), f, axis=2)


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
    """Write uint8 [H, W, 3] to `path`, a local file or a bucket URL (creating its folder)."""
    with open_file(path, "wb") as f:
        Image.fromarray(image).save(f, format="PNG")
