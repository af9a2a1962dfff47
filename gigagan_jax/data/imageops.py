"""The one image decoder: any PIL image or numpy array -> uint8 RGB, then centre crop + resize.

Preparation, training sources and `sample.py --upsample_images` all go through `to_rgb_uint8`, so
a file gives the same pixels wherever it is read. The conventions:
  - EXIF orientation is applied (a phone photo comes out the way it is shown).
  - Transparency (RGBA, LA, PA, P or L/RGB with a transparent colour) is composited over white,
    as an image is shown on a page: out = round((c * a + 255 * (255 - a)) / 255) on 8-bit values.
  - 16-bit values (PIL "I;16*" / "I", numpy uint16) become round(v / 257), the exact inverse of
    widening 8 bits to 16 (x * 257), so 65535 -> 255.
  - Floats (PIL "F", numpy float*) must be finite and in [0, 1]; they become round(v * 255).
  - bool is 0 / 255; other integer arrays must already lie in [0, 255].
  - Arrays are [H, W] or [H, W, C] with C = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).
Anything else is a ValueError saying what was found.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

# What reading a bad file raises: PIL's OSError / SyntaxError / DecompressionBombError, our ValueError.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)
_WHITE = 255
_ORIENTATION = 0x0112  # EXIF tag; 1 = as stored
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_DIRECT_MODES = ("1", "L", "LA", "RGB", "RGBA", "F")  # np.asarray gives a [H, W(, C)] array we read


def _pil_array(image: Image.Image) -> np.ndarray:
    """[H, W(, C)] array of a PIL image, in a dtype `_array_bytes` interprets by the conventions."""
    if image.getexif().get(_ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image)  # uint16 (either byte order) or int32 ("I")
        if values.size and (values.min() < 0 or values.max() > 0xFFFF):
            raise ValueError(f"mode {image.mode!r} image has values outside the 16-bit range [0, 65535]")
        return values.astype(np.uint16)
    if image.mode not in ("LA", "RGBA") and ("transparency" in image.info
                                              or {"A", "a"} & set(image.getbands())):
        image = image.convert("RGBA")  # P, PA, RGBa, La, L / RGB with a transparent colour
    elif image.mode not in _DIRECT_MODES:
        image = image.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV
    return np.asarray(image)


def _array_bytes(values: np.ndarray) -> np.ndarray:
    """uint8 of the same shape, scaled by dtype as the module docstring says."""
    kind, size = values.dtype.kind, values.dtype.itemsize
    if kind == "u" and size == 1:
        return values
    if kind == "b":
        return values.astype(np.uint8) * np.uint8(255)
    if kind == "u" and size == 2:  # either byte order
        return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round(v / 257)
    if kind == "f":
        if not np.all(np.isfinite(values)):
            raise ValueError("float image has NaN or infinite values")
        if values.size and (values.min() < 0 or values.max() > 1):
            raise ValueError(f"float image values must lie in [0, 1], got [{values.min():g}, {values.max():g}]")
        return np.rint(values.astype(np.float32) * 255).astype(np.uint8)
    if kind in "iu":
        if values.size and (values.min() < 0 or values.max() > 255):
            raise ValueError(f"{values.dtype} image values must lie in [0, 255] (uint16 arrays are read as "
                             f"16-bit), got [{values.min()}, {values.max()}]")
        return values.astype(np.uint8)
    raise ValueError(f"cannot read an image of dtype {values.dtype}")


def to_rgb_uint8(image: Image.Image | np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] of a PIL image or an [H, W(, C)] array, by the module's conventions."""
    values = _pil_array(image) if isinstance(image, Image.Image) else np.asarray(image)
    if values.ndim == 2:
        values = values[..., None]
    if values.ndim != 3 or values.shape[-1] not in (1, 2, 3, 4) or 0 in values.shape:
        raise ValueError(f"expected an image array [H, W] or [H, W, 1|2|3|4], got shape {values.shape}")
    values = _array_bytes(values)  # [H, W, C] uint8
    colour = values[..., :3] if values.shape[-1] >= 3 else values[..., :1]
    if values.shape[-1] in (2, 4):  # over white, rounded to nearest
        alpha = values[..., -1:].astype(np.uint32)
        colour = ((colour * alpha + _WHITE * (255 - alpha) + 127) // 255).astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(colour, colour.shape[:2] + (3,)))


def centre_crop_resize(image: Image.Image | np.ndarray, resolution: int) -> np.ndarray:
    """uint8 [R, R, 3]: the largest centred square, resized with a Lanczos (anti-aliased) filter."""
    rgb = to_rgb_uint8(image)  # [H, W, 3]
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = rgb[top:top + side, left:left + side]
    if side == resolution:
        return np.ascontiguousarray(square)
    return np.asarray(Image.fromarray(square).resize((resolution, resolution), Image.LANCZOS), np.uint8)


def load_image(path: str | BinaryIO, resolution: int) -> np.ndarray:
    """Decode a file (a path, or a file object: a tar member's bytes) fully, so truncated files fail
    here and not in training, to uint8 [R, R, 3]."""
    with Image.open(path) as image:
        image.load()
        return centre_crop_resize(image, resolution)


def fit_array(image: np.ndarray, resolution: int) -> np.ndarray:
    """Pass through uint8 [R, R, 3]; convert any other [H, W(, C)] array to it."""
    if image.shape == (resolution, resolution, 3) and image.dtype == np.uint8:
        return image
    return centre_crop_resize(image, resolution)
