"""How examples are stored: images kept as given or re-encoded (exactly, or close for JPEG), CLIP
tokens stored once and cut to any context length exactly as the tokenizer cuts."""

import io
import pickle

import numpy as np
import pytest
from PIL import Image

from gigagan_jax.data import builders, codec, imageops
from gigagan_jax.pretrained.tokenize import ClipTokenizer


def photo_like(size, seed=0):
    """Smooth colour fields plus mild noise: compresses like a photo, not like noise or flat shapes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    channels = [np.sin(2 * np.pi * (rng.uniform(0.5, 2) * x + rng.uniform(0.5, 2) * y) + rng.uniform(0, 6))
                for _ in range(3)]
    image = 127.5 + 100 * np.stack(channels, -1) + rng.normal(0, 4, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def encoded(pixels, fmt, **options):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255 ** 2 / mse)


@pytest.mark.parametrize("fmt,options", [("PNG", {}), ("JPEG", {"quality": 90}), ("WEBP", {"lossless": True})])
def test_auto_keeps_a_file_of_the_stored_size_as_given(fmt, options):
    data = encoded(photo_like(32), fmt, **options)
    pixels = imageops.load_image(io.BytesIO(data), 32)
    assert codec.stored_image(data, pixels, "auto") == data
    np.testing.assert_array_equal(codec.decode_image(data), pixels)


def test_auto_reencodes_other_sizes_jpeg_as_jpeg_and_the_rest_losslessly():
    big = photo_like(48, seed=1)
    for fmt, lossless in (("JPEG", False), ("PNG", True), ("WEBP", True)):
        data = encoded(big, fmt, **({"quality": 95} if fmt == "JPEG" else {"lossless": True} if fmt == "WEBP" else {}))
        pixels = imageops.load_image(io.BytesIO(data), 32)
        stored = codec.stored_image(data, pixels, "auto")
        assert stored != data
        assert Image.open(io.BytesIO(stored)).format == ("PNG" if lossless else "JPEG")
        back = codec.decode_image(stored)
        if lossless:
            np.testing.assert_array_equal(back, pixels)
        else:
            assert psnr(back, pixels) > 35, psnr(back, pixels)
    generated = photo_like(32, seed=2)  # no file: lossless
    np.testing.assert_array_equal(codec.decode_image(codec.stored_image(None, generated, "auto")), generated)


def test_explicit_formats_round_trip_and_jpeg_is_smallest():
    pixels = photo_like(64, seed=3)
    sizes = {}
    for fmt in ("png", "webp", "jpeg", "raw"):
        stored = codec.stored_image(None, pixels, fmt)
        sizes[fmt] = len(stored)
        back = (np.frombuffer(stored, np.uint8).reshape(pixels.shape) if fmt == "raw" else codec.decode_image(stored))
        if fmt == "jpeg":
            assert psnr(back, pixels) > 35
        else:
            np.testing.assert_array_equal(back, pixels)
    assert sizes["raw"] == 64 * 64 * 3 and sizes["jpeg"] < min(sizes["png"], sizes["webp"]) < sizes["raw"]


def test_stored_tokens_cut_to_any_length_exactly_as_the_tokenizer():
    rng = np.random.default_rng(0)
    words = ["a", "red", "circle", "on", "blue", "ground", "photograph", "ünïcödé", "☃", "tokens!"]
    captions = ["", "x", " ".join(["word"] * 75), " ".join(["word"] * 76), " ".join(["word"] * 200)]
    captions += [" ".join(rng.choice(words, rng.integers(1, 40))) for _ in range(30)]
    tokenize = codec.Tokens()
    packed, cut = zip(*(tokenize(c) for c in captions))
    stored = np.stack([codec.unpack_tokens(p) for p in packed])  # [n, 77]
    longer = sum(len(ClipTokenizer().encode(c)) + 2 > 77 for c in captions)  # + start and end of text
    assert sum(cut) == longer >= 2  # 76 and 200 words at least
    with pytest.warns(UserWarning):
        np.testing.assert_array_equal(stored, ClipTokenizer()(captions))
    for length in (2, 5, 16, 40, 76):
        with pytest.warns(UserWarning):
            expected = ClipTokenizer(length)(captions)
        np.testing.assert_array_equal(codec.fit_context(stored, length), expected, err_msg=str(length))
    assert max(len(p) for p in packed) == 2 * 77  # uint16, no padding
    with pytest.raises(ValueError, match="tokenized again"):
        codec.fit_context(stored, 78)


def test_a_prepared_source_pickles_as_its_folder(tmp_path):
    from gigagan_jax.data.sources import open_prepared

    root = tmp_path / "raw"
    root.mkdir()
    for i in range(3):
        Image.fromarray(photo_like(20, seed=i)).save(root / f"{i}.jpg", quality=90)
        (root / f"{i}.txt").write_text(f"image {i}")
    dataset_dir = builders.prepare(builders.GigaganCaptionFolder(src=str(root), resolution=16,
                                                                 data_dir=str(tmp_path / "out")))
    source = open_prepared(dataset_dir, 16)
    copy = pickle.loads(pickle.dumps(source))
    assert len(pickle.dumps(source)) < 1000  # the path and settings, not the data
    a, b = source.get_batch(np.arange(3)), copy.get_batch(np.arange(3))
    for key in ("image", "label", "tokens"):
        np.testing.assert_array_equal(a[key], b[key])
    assert a["caption"] == b["caption"]
