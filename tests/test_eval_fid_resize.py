"""FID's resize protocols: 'clean' is PIL's float bicubic per channel (clean-fid), exactly, then
(x - 128) / 128 into the Inception with no resize inside; 'legacy' is the network's own bilinear
resize, the numbers the evaluation gave before the protocols had names."""

import numpy as np
import pytest
from PIL import Image

from gigagan_jax.eval.fid_resize import FID_RESIZES, clean_resize, fid_features
from gigagan_jax.pixels import to_signed, to_uint8

# Up- and downscaling, square and not (PIL takes (W, H): a transposed resize would show here).
SIZES = [(16, 16), (64, 64), (512, 512), (80, 352), (299, 299)]


def images(h, w, n=2, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def pil_bicubic(channel: np.ndarray) -> np.ndarray:
    """One channel [H, W] through PIL as clean-fid resizes it: a mode 'F' image, BICUBIC, 299 x 299."""
    image = Image.fromarray(channel.astype(np.float32))
    assert image.mode == "F"
    return np.asarray(image.resize((299, 299), resample=Image.BICUBIC))


@pytest.mark.parametrize("h, w", SIZES)
def test_clean_resize_is_pil_float_bicubic_exactly(h, w):
    x = images(h, w)
    out = clean_resize(x)
    assert out.shape == (2, 299, 299, 3) and out.dtype == np.float32
    for i in range(2):
        for c in range(3):
            np.testing.assert_array_equal(out[i, :, :, c], pil_bicubic(x[i, :, :, c]))
    if (h, w) == (299, 299):
        np.testing.assert_array_equal(out, x.astype(np.float32))  # nothing to resize


def test_clean_resize_keeps_floats_unclipped_and_is_antialiased_bicubic():
    """Noise images overshoot [0, 255] under bicubic and land between integers: neither is
    rounded or clipped away. torch's antialiased bicubic (PIL's kernel, a = -0.5, widened when
    shrinking) agrees to 4e-3 of 255 (observed); plain bilinear would be off by tens."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for h, w in ((64, 64), (512, 512), (80, 352)):
        x = images(h, w, seed=1)
        out = clean_resize(x)
        theirs = F.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2).float(), size=(299, 299), mode="bicubic",
                               antialias=True, align_corners=False).permute(0, 2, 3, 1).numpy()
        np.testing.assert_allclose(out, theirs, rtol=0, atol=1e-2)
        assert np.any(out != np.round(out))
    assert clean_resize(images(64, 64)).min() < -10 and clean_resize(images(64, 64)).max() > 265


def test_clean_resize_refuses_float_input():
    with pytest.raises(ValueError, match="uint8 images"):
        clean_resize(np.zeros((1, 8, 8, 3), np.float32))


class RecordingInception:
    """Stand-in: returns the mean of what it is fed, and remembers how it was fed."""

    def __init__(self):
        self.calls = []

    def __call__(self, x):  # the network resizes (legacy)
        self.calls.append(("resize inside", np.asarray(x)))
        return np.asarray(x).mean(axis=(1, 2))

    def at_input_size(self, x):
        self.calls.append(("at input size", np.asarray(x)))
        return np.asarray(x).mean(axis=(1, 2))


def test_each_protocol_feeds_the_network_its_way():
    x = images(48, 48)
    net = RecordingInception()
    fid_features(net, x, "clean")
    fid_features(net, to_signed(x), "clean")  # [-1, 1] floats are quantised back to the same uint8
    fid_features(net, x, "legacy")
    (way1, fed1), (way2, fed2), (way3, fed3) = net.calls
    assert (way1, way2, way3) == ("at input size", "at input size", "resize inside")
    np.testing.assert_array_equal(fed1, (clean_resize(x) - 128.0) / 128.0)
    np.testing.assert_array_equal(fed2, fed1)
    np.testing.assert_array_equal(fed3, to_signed(x))  # [-1, 1], at the images' own size
    np.testing.assert_array_equal(to_uint8(to_signed(x)), x)
    assert list(FID_RESIZES) == ["clean", "legacy"]
    with pytest.raises(ValueError, match="one of"):
        fid_features(net, x, "bilinear")


def test_the_real_network_under_both_protocols(tmp_path):
    """Random weights in pytorch-fid's layout: 'legacy' is exactly the call the evaluation made
    before; 'clean' matches an independent PyTorch forward fed the clean-resized input (its own
    bilinear resize from 299 to 299 is the identity)."""
    torch = pytest.importorskip("torch")
    from test_eval_inception import torch_layout_state_dict, torch_reference

    from gigagan_jax.pretrained.inception import load_inception

    state = torch_layout_state_dict()
    np.savez(tmp_path / "inception.npz", **state)
    inception = load_inception(str(tmp_path / "inception.npz"))
    x = images(40, 40)
    np.testing.assert_array_equal(fid_features(inception, x, "legacy"), np.asarray(inception(to_signed(x))))

    ours = fid_features(inception, x, "clean")
    fed = (clean_resize(x) - 128.0) / 128.0
    with torch.no_grad():
        theirs = torch_reference(state)(torch.from_numpy(fed).permute(0, 3, 1, 2)).numpy()
    assert ours.shape == (2, 2048)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5 * np.abs(theirs).max())
    assert not np.allclose(ours, fid_features(inception, x, "legacy"), rtol=0, atol=1e-3 * np.abs(theirs).max())
    with pytest.raises(ValueError, match=r"\[B, 299, 299, 3\]"):
        inception.at_input_size(np.zeros((1, 64, 64, 3), np.float32))
