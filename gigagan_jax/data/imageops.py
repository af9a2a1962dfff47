"""Image decoding and centre-crop + resize to the model resolution, with PIL only (no TensorFlow)."""

from __future__ import annotations

import numpy as np
from PIL import Image

# Transparent pixels (emoji) are composited onto white, as they are shown on a page.
_MATTE = (255, 255, 255)


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        matte = Image.new("RGBA", rgba.size, _MATTE + (255,))
        return Image.alpha_composite(matte, rgba).convert("RGB")
    return image.convert("RGB")


def centre_crop_resize(image: Image.Image, resolution: int) -> np.ndarray:
    """uint8 [R, R, 3]: the largest centred square, resized with a Lanczos (anti-aliased) filter."""
    image = to_rgb(image)
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != resolution:
        image = image.resize((resolution, resolution), Image.LANCZOS)
    return np.asarray(image, dtype=np.uint8)


def load_image(path: str, resolution: int) -> np.ndarray:
    """Decode a file fully (so truncated files fail here, not in training) to uint8 [R, R, 3]."""
    with Image.open(path) as image:
        image.load()
        return centre_crop_resize(image, resolution)


def fit_array(image: np.ndarray, resolution: int) -> np.ndarray:
    """Pass through uint8 [R, R, 3]; convert any other [H, W(, C)] array to it."""
    if image.shape == (resolution, resolution, 3) and image.dtype == np.uint8:
        return image
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return centre_crop_resize(Image.fromarray(np.asarray(image, np.uint8)), resolution)

