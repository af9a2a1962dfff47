"""How an image reaches the FID Inception's 299 x 299 input. FIDs are comparable only under one
resize protocol, and published numbers use two:

- "clean" (clean-fid, Parmar et al. 2022; GigaGAN's published FIDs): a uint8 image is resized
  channel by channel as a float32 PIL image (mode 'F') to 299 x 299 with PIL's BICUBIC filter
  (whose kernel widens when shrinking, so it antialiases), the values kept as floats (not
  clipped, not rounded: bicubic over- and undershoots [0, 255] slightly at edges), then scaled by
  (x - 128) / 128, as clean-fid's wrapper feeds the TF Inception, with no resize inside the
  network. This is clean-fid's `make_resizer("PIL", False, "bicubic", (299, 299))` followed by
  `InceptionV3W.forward` without `resize_inside`. Generated images are quantised to uint8 first:
  clean-fid measures images as they are saved.
- "legacy" (pytorch-fid): [-1, 1] images are bilinearly resized inside the network, without
  antialiasing (`InceptionFeatures.__call__`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from gigagan_jax.pixels import to_signed, to_uint8
from gigagan_jax.pretrained.inception import INPUT_SIZE

# Protocol -> how it brings an image to the Inception's input, for reports.
FID_RESIZES = {
    "clean": "clean-fid's resize: uint8 images, PIL bicubic to 299 x 299 per channel in float32, (x - 128) / 128",
    "legacy": "pytorch-fid's resize: [-1, 1] images, bilinear to 299 x 299 inside the network, no antialiasing",
}


def clean_resize(images) -> np.ndarray:
    """uint8 [B, H, W, 3] -> float32 [B, 299, 299, 3] on the 0..255 scale, resized per channel by
    PIL's float-image BICUBIC. Images are resized in threads, one per core (PIL releases the GIL
    while it resizes): ~4 ms per 256 px image on one core, 2 minutes for 30k images."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"clean resize reads uint8 images [B, H, W, C], got {images.dtype} {images.shape}")
    out = np.empty((images.shape[0], INPUT_SIZE, INPUT_SIZE, images.shape[3]), np.float32)

    def resize(i: int) -> None:
        for c in range(images.shape[3]):
            channel = Image.fromarray(images[i, :, :, c].astype(np.float32))  # mode 'F'
            out[i, :, :, c] = np.asarray(channel.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC))

    with ThreadPoolExecutor(min(os.cpu_count() or 1, max(1, len(images)))) as pool:
        list(pool.map(resize, range(len(images))))
    return out


def fid_features(inception, images, resize: str) -> np.ndarray:
    """FID Inception pool3 features [B, 2048] of images [B, H, W, 3] (uint8, or float in [-1, 1])
    under the resize protocol `resize` (one of FID_RESIZES)."""
    if resize == "legacy":
        return np.asarray(inception(to_signed(np.asarray(images))))
    if resize != "clean":
        raise ValueError(f"FID resize must be one of {tuple(FID_RESIZES)}, got {resize!r}")
    images = np.asarray(images)
    pixels = clean_resize(images if images.dtype == np.uint8 else to_uint8(images))  # [B, 299, 299, 3]
    return np.asarray(inception.at_input_size((pixels - 128.0) / 128.0))
