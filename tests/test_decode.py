"""The one decoder: every image mode and array dtype becomes the same uint8 RGB wherever it is read."""

import numpy as np
import pytest
from PIL import Image

from gigagan_jax.config import default_config
from gigagan_jax.data import imageops, open_source


def test_sixteen_bit_grey_png_keeps_its_brightness(tmp_path):
    values = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    Image.fromarray(values).save(tmp_path / "grey16.png")
    with Image.open(tmp_path / "grey16.png") as image:
        assert image.mode.startswith("I")
        rgb = imageops.to_rgb_uint8(image)
    expected = np.rint(values / 257)  # [64, 64]
    np.testing.assert_array_equal(rgb, np.repeat(expected[..., None], 3, -1))
    assert abs(rgb.mean() - 127.47) < 0.01  # PIL's convert("RGB") clips: 98 % white, mean ~254
    assert imageops.load_image(str(tmp_path / "grey16.png"), 64).mean() == rgb.mean()


def test_exif_orientation_is_applied(tmp_path):
    stored = np.zeros((16, 32, 3), np.uint8)  # [H, W, C] as stored: red left half, blue right half
    stored[:, :16, 0] = stored[:, 16:, 2] = 255
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise: the left half on top
    image.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    with Image.open(tmp_path / "phone.jpg") as image:
        shown = imageops.to_rgb_uint8(image).astype(int)
    assert shown.shape == (32, 16, 3)
    assert np.all(np.abs(shown[2:14] - (255, 0, 0)) < 16) and np.all(np.abs(shown[18:30] - (0, 0, 255)) < 16)
    assert imageops.load_image(str(tmp_path / "phone.jpg"), 16)[1, 8, 0] > 200  # top row red after the crop


def over_white(colour, alpha):
    return round((colour * alpha + 255 * (255 - alpha)) / 255)


def test_palette_and_transparency_modes_over_white():
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    assert np.all(imageops.to_rgb_uint8(palette) == (10, 20, 30))
    palette.info["transparency"] = 1  # index 1 fully transparent
    assert np.all(imageops.to_rgb_uint8(palette) == 255)
    assert np.all(imageops.to_rgb_uint8(Image.new("LA", (4, 4), (40, 100))) == over_white(40, 100))
    rgba = imageops.to_rgb_uint8(Image.new("RGBA", (4, 4), (200, 0, 50, 77)))
    assert np.all(rgba == [over_white(200, 77), over_white(0, 77), over_white(50, 77)])
    assert np.all(imageops.to_rgb_uint8(Image.new("PA", (4, 4), (0, 0))) == 255)
    keyed = Image.new("L", (4, 4), 9)
    keyed.info["transparency"] = 9
    assert np.all(imageops.to_rgb_uint8(keyed) == 255)


def test_other_pil_modes():
    assert np.all(imageops.to_rgb_uint8(Image.new("CMYK", (2, 2), (0, 255, 0, 0))) == (255, 0, 255))
    assert np.all(imageops.to_rgb_uint8(Image.new("1", (2, 2), 1)) == 255)
    assert np.all(imageops.to_rgb_uint8(Image.new("I", (2, 2), 257 * 30)) == 30)
    assert np.all(imageops.to_rgb_uint8(Image.new("I;16B", (2, 2), 257 * 31)) == 31)
    assert np.all(imageops.to_rgb_uint8(Image.new("F", (2, 2), 0.5)) == 128)
    with pytest.raises(ValueError, match=r"outside the 16-bit range"):
        imageops.to_rgb_uint8(Image.new("I", (2, 2), 70000))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\], got \[2, 2\]"):
        imageops.to_rgb_uint8(Image.new("F", (2, 2), 2.0))


def test_arrays_by_dtype_and_shape():
    grey16 = np.array([[0, 257 * 100, 65535]], np.uint16)  # [1, 3]
    np.testing.assert_array_equal(imageops.to_rgb_uint8(grey16)[0, :, 0], [0, 100, 255])
    np.testing.assert_array_equal(imageops.to_rgb_uint8(grey16.astype(">u2"))[0, :, 0], [0, 100, 255])
    unit = np.array([[[0.0], [0.5], [1.0]]], np.float32)  # [1, 3, 1]
    np.testing.assert_array_equal(imageops.to_rgb_uint8(unit)[0], [[0] * 3, [128] * 3, [255] * 3])
    np.testing.assert_array_equal(imageops.to_rgb_uint8(np.array([[True, False]]))[0, :, 1], [255, 0])
    np.testing.assert_array_equal(imageops.to_rgb_uint8(np.array([[7, 200]], np.int64))[0, :, 2], [7, 200])
    grey_alpha = np.array([[[40, 100]]], np.uint8)  # [1, 1, 2]
    assert np.all(imageops.to_rgb_uint8(grey_alpha) == over_white(40, 100))
    rgba = np.array([[[1.0, 0.0, 0.0, 0.5]]])  # float RGBA, half transparent red
    np.testing.assert_array_equal(imageops.to_rgb_uint8(rgba)[0, 0], [255, over_white(0, 128), over_white(0, 128)])
    for bad, message in [(np.array([[1.5]]), r"\[0, 1\]"), (np.array([[np.nan]]), "NaN or infinite"),
                         (np.array([[-0.1]], np.float16), r"\[0, 1\]"), (np.array([[300]], np.int32), r"\[0, 255\]"),
                         (np.zeros((2, 2, 5), np.uint8), r"shape \(2, 2, 5\)"), (np.zeros((0, 4), np.uint8), "shape"),
                         (np.zeros((2, 2), np.complex64), "dtype complex64")]:
        with pytest.raises(ValueError, match=message):
            imageops.to_rgb_uint8(bad)


def test_fit_array_of_uint16_does_not_wrap():
    image = np.full((16, 16, 3), 256 * 100, np.uint16)  # modulo 256 this was 0 (black)
    out = imageops.fit_array(image, 8)
    assert out.dtype == np.uint8 and out.shape == (8, 8, 3) and np.all(out == 100)
    assert np.all(imageops.fit_array(np.full((8, 8), 0.25), 8) == 64)  # float grey, no resize


def test_training_and_upsample_images_decode_a_file_identically(tmp_path):
    from gigagan_jax.commands.sample import read_lowres_images

    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (40, 52, 4), np.uint8)  # [H, W, RGBA], varied transparency
    (tmp_path / "raw").mkdir()
    Image.fromarray(rgba).save(tmp_path / "raw" / "a.png")
    (tmp_path / "raw" / "a.txt").write_text("a")
    config = default_config()
    config.model.resolution = 16
    config.data.kind, config.data.path, config.data.cache_dir = "folder", str(tmp_path / "raw"), str(tmp_path / "c")
    trained_on = open_source(config)[0]["image"]
    names, lowres = read_lowres_images(str(tmp_path / "raw"), 16)
    assert names == ["a.png"]
    np.testing.assert_array_equal(lowres[0], trained_on)
    np.testing.assert_array_equal(trained_on, imageops.centre_crop_resize(rgba, 16))  # file or array alike
