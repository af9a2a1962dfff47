"""How one example is stored on disk: its image (raw or encoded) and its caption's CLIP tokens.

Images. Raw uint8 [R, R, 3] costs 3 R² bytes (0.8 MB at 512 px), so datasets of web scale keep
images encoded. Preparation decodes every image once (`imageops.load_image`: crop, resize, the
pixel conventions) and stores, by `image_format`:
  - "auto": the file's own bytes when they are already a JPEG / PNG / WebP of exactly R x R that
    decodes to the same pixels; otherwise the prepared pixels re-encoded, as JPEG (quality
    `JPEG_QUALITY`) when the file was a JPEG, as lossless PNG otherwise. img2dataset's output at
    the training size is kept as downloaded, not compressed a second time.
  - "png" / "webp": lossless re-encoding (decoding gives back exactly the prepared pixels).
  - "jpeg": re-encoded at quality `JPEG_QUALITY` (lossy; the smallest).
  - "raw": uint8 bytes (no decode on read; the fastest for small sets).
Reading decodes with PIL: whatever was stored decodes to uint8 [R, R, 3].

Tokens. Every caption is tokenized once, at preparation, with the vendored OpenAI BPE at CLIP's
context length 77, and stored as uint16 ids without padding (~30 bytes against 308 for int32
[77]). Any shorter context length L follows exactly: a sequence that fits in L is a prefix; one
that does not is its first L - 1 ids plus end-of-text, which is how the tokenizer truncates.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from gigagan_jax.data import imageops
from gigagan_jax.pretrained.tokenize import BPE_SHA256, CONTEXT_LENGTH, EOT_ID, VOCAB_SIZE, ClipTokenizer

IMAGE_FORMATS = ("auto", "raw", "png", "jpeg", "webp")
JPEG_QUALITY = 95
# Recorded with a dataset: stored tokens are used only by the tokenizer that wrote them.
TOKENIZER_ID = f"openai-bpe:{BPE_SHA256[:16]}:{CONTEXT_LENGTH}"
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
_KEPT_AS_GIVEN = ("JPEG", "PNG", "WEBP")
assert VOCAB_SIZE <= 1 << 16  # ids fit uint16


def encode_pixels(pixels: np.ndarray, image_format: str) -> bytes:
    """uint8 [R, R, 3] -> the stored bytes in `image_format` (not "auto")."""
    if image_format == "raw":
        return np.ascontiguousarray(pixels, np.uint8).tobytes()
    buffer = io.BytesIO()
    options = {"quality": JPEG_QUALITY, "subsampling": 0} if image_format == "jpeg" else (
        {"lossless": True, "quality": 100, "method": 4} if image_format == "webp" else {"optimize": False})
    Image.fromarray(pixels).save(buffer, format=_PIL_FORMATS[image_format], **options)
    return buffer.getvalue()


def stored_image(file_bytes: bytes | None, pixels: np.ndarray, image_format: str) -> bytes:
    """The bytes to store for an image whose prepared pixels are `pixels` [R, R, 3] and whose file
    held `file_bytes` (None for generated images)."""
    if image_format != "auto":
        return encode_pixels(pixels, image_format)
    given = None
    if file_bytes is not None:
        with Image.open(io.BytesIO(file_bytes)) as image:
            given = image.format
            same_size = image.size == pixels.shape[1::-1]
        if given in _KEPT_AS_GIVEN and same_size and np.array_equal(decode_image(file_bytes), pixels):
            return file_bytes
    return encode_pixels(pixels, "jpeg" if given == "JPEG" else "png")


def stored_file(data: bytes, resolution: int, image_format: str) -> bytes:
    """An image file's bytes -> what is stored for it at `resolution` (decoded once by
    `imageops.load_image`, whose errors, `imageops.DECODE_ERRORS`, pass through)."""
    return stored_image(data, imageops.load_image(io.BytesIO(data), resolution), image_format)


def decode_image(data: bytes | memoryview) -> np.ndarray:
    """Encoded image bytes -> uint8 [H, W, 3] (RGB; encoders given other modes are converted)."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        if image.mode != "RGB":
            image = image.convert("RGB")
        return np.asarray(image)


def pack_tokens(ids: np.ndarray) -> bytes:
    """One tokenizer row (int [77], zero-padded) -> its ids up to end-of-text as uint16 bytes."""
    ids = np.asarray(ids)
    length = int(np.argmax(ids == EOT_ID)) + 1 if (ids == EOT_ID).any() else len(ids)
    return ids[:length].astype("<u2").tobytes()


def unpack_tokens(data: bytes | memoryview) -> np.ndarray:
    """Stored ids -> int32 [77], zero-padded, as the tokenizer returned them."""
    ids = np.frombuffer(data, "<u2")
    out = np.zeros(CONTEXT_LENGTH, np.int32)
    out[:len(ids)] = ids
    return out


def fit_context(tokens: np.ndarray, context_length: int) -> np.ndarray:
    """Tokenizer rows int [n, 77] -> [n, L] for L <= 77, exactly as `ClipTokenizer(L)` gives them:
    a row that fits keeps its prefix, a longer one its first L - 1 ids and end-of-text."""
    if not 2 <= context_length <= tokens.shape[1]:
        raise ValueError(f"stored tokens hold {tokens.shape[1]} positions; context length {context_length} "
                         "needs the captions tokenized again")
    out = np.array(tokens[:, :context_length], np.int32)  # [n, L]
    cut = tokens[:, context_length - 1:].any(axis=1) & (out[:, -1] != EOT_ID)  # [n]: longer than L
    out[cut, -1] = EOT_ID
    return out


class Tokens:
    """Caption -> (stored token bytes, whether the caption was longer than CLIP's context and cut);
    the tokenizer's warning becomes the flag, so preparation can count cut captions once."""

    def __init__(self):
        self._tokenizer = ClipTokenizer()

    def __call__(self, caption: str) -> tuple[bytes, bool]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            row = self._tokenizer([caption])[0]  # [77]
        return pack_tokens(row), bool(caught)
