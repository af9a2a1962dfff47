"""LPIPS-VGG: conversion of PyTorch weights (torchvision VGG16 + lpips linear layers), strict
loading, clear errors, and parity of distance and gradient with an independent PyTorch forward.

The real weights cannot be downloaded here; random weights under torchvision's / lpips' names
and shapes go through the same converter and loader.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gigagan_jax.pretrained.lpips import (
    CONVERT_COMMAND,
    VGG16_URL,
    _unit_normalise,
    load_lpips,
    lpips_distance,
)
from gigagan_jax.pretrained.convert_lpips import convert, torchvision_indices
from gigagan_jax.tools.convert_lpips import main

torch = pytest.importorskip("torch")
F = torch.nn.functional

# torchvision vgg16().features, from its definition: 13 convs, ReLU after each, 4 pools between
# the 5 stages; LPIPS taps the ReLU outputs at relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
POOLS = (4, 9, 16, 23)
TAPS = (3, 8, 15, 22, 29)
WIDTHS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)


def random_state_dicts(seed=0):
    """Random torchvision VGG16 (He-scaled convs, so activations stay O(1) through 13 layers, and
    a stand-in classifier key that the converter must ignore) + non-negative lpips lin weights."""
    g = torch.Generator().manual_seed(seed)
    vgg, cin = {}, 3
    for i, cout in zip(CONVS, WIDTHS):
        he = (2 / (9 * cin)) ** 0.5
        vgg[f"features.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * he
        vgg[f"features.{i}.bias"] = torch.randn(cout, generator=g) * 0.1
        cin = cout
    vgg["classifier.6.bias"] = torch.zeros(1000)
    lin = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g)
           for k, c in enumerate((64, 128, 256, 512, 512))}
    return vgg, lin


def torch_lpips(vgg, lin, x, y):
    """Reference LPIPS-VGG from the lpips facts, NCHW with torch.nn.functional, float64.
    x, y: [B, H, W, 3] torch tensors in [-1, 1] -> [B]."""
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)

    def taps(img):
        h, out = (img.permute(0, 3, 1, 2).double() - shift) / scale, []
        for i in range(TAPS[-1] + 1):
            if i in CONVS:
                h = F.conv2d(h, vgg[f"features.{i}.weight"].double(),
                             vgg[f"features.{i}.bias"].double(), padding=1)
            elif i in POOLS:
                h = F.max_pool2d(h, 2, stride=2)
            else:
                h = F.relu(h)
            if i in TAPS:
                out.append(h)
        return out

    def normalise(f):
        return f / (torch.sqrt(torch.sum(f ** 2, dim=1, keepdim=True)) + 1e-10)

    total = 0
    for k, (fx, fy) in enumerate(zip(taps(x), taps(y))):
        d = F.conv2d((normalise(fx) - normalise(fy)) ** 2, lin[f"lin{k}.model.1.weight"].double())
        total = total + d.mean(dim=(2, 3))[:, 0]  # [B]
    return total


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """(torch state dicts, path of the .npz converted by the CLI)."""
    vgg, lin = random_state_dicts()
    d = tmp_path_factory.mktemp("lpips")
    torch.save(vgg, d / "vgg16-397923af.pth")
    torch.save(lin, d / "vgg.pth")
    out = str(d / "lpips_vgg.npz")
    main(["--vgg16", str(d / "vgg16-397923af.pth"), "--lin", str(d / "vgg.pth"), "--out", out])
    return (vgg, lin), out


@pytest.fixture(scope="module")
def images():
    """x, y [3, 36, 44, 3] in [-1, 1]: odd sizes after 2 pools exercise the floor of pooling.
    Row 0 of y is x plus small noise, rows 1-2 are unrelated images."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(3, 36, 44, 3)).astype(np.float32)
    y = rng.uniform(-1, 1, size=x.shape).astype(np.float32)
    y[0] = np.clip(x[0] + 0.05 * rng.normal(size=x[0].shape), -1, 1)
    return x, y


def test_torchvision_indices_follow_vgg16_features():
    indices = torchvision_indices()
    assert list(indices.values()) == list(CONVS)
    assert [indices[f"conv{s}_{n}"] + 1 for s, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))] \
        == list(TAPS)


def test_converted_layout(weights):
    (vgg, lin), path = weights
    params = load_lpips(path)
    with np.load(path) as data:
        assert len(data.files) == 13 * 2 + 5
    np.testing.assert_array_equal(  # [O, I, kh, kw] -> [kh, kw, I, O]
        params["vgg"]["conv3_2"]["kernel"], vgg["features.12.weight"].numpy().transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(params["vgg"]["conv5_3"]["bias"], vgg["features.28.bias"].numpy())
    np.testing.assert_array_equal(params["lin2"], lin["lin2.model.1.weight"].numpy().reshape(256))


def test_distance_and_gradient_match_pytorch(weights, images):
    (vgg, lin), path = weights
    params = load_lpips(path)
    x, y = images
    ours = np.asarray(lpips_distance(params, x, y))

    tx = torch.from_numpy(x).double().requires_grad_(True)
    theirs = torch_lpips(vgg, lin, tx, torch.from_numpy(y))
    theirs.sum().backward()
    theirs_grad = tx.grad.numpy()
    theirs = theirs.detach().numpy()

    assert ours.shape == (3,) and ours.dtype == np.float32
    # The slightly perturbed pair is much closer than the unrelated ones.
    assert theirs[0] < 0.5 * min(theirs[1], theirs[2])
    # Observed: distances within 6e-7 relative, gradients within 4e-6 of their largest entry.
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)

    grad_params, grad_x = jax.jit(jax.grad(lambda p, a: lpips_distance(p, a, y).sum(),
                                           argnums=(0, 1)))(params, x)
    grad_x = np.asarray(grad_x)
    assert np.all(np.isfinite(grad_x)) and np.abs(grad_x).max() > 0
    np.testing.assert_allclose(grad_x, theirs_grad, rtol=0, atol=1e-4 * np.abs(theirs_grad).max())
    # Frozen: nothing flows into the weights.
    assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(grad_params))


def test_distance_to_itself_is_zero(weights, images):
    x, _ = images
    params = load_lpips(weights[1])
    # 0 up to an FMA's rounding (observed 1.6e-15; unrelated images are ~0.1 to 1 apart).
    np.testing.assert_allclose(np.asarray(lpips_distance(params, x, x)), 0.0, rtol=0, atol=1e-12)
    grad_x = np.asarray(jax.grad(lambda a: lpips_distance(params, a, x).sum())(x))
    assert np.all(np.isfinite(grad_x)) and np.abs(grad_x).max() < 1e-8  # a minimum


def test_unit_normalise_has_a_finite_gradient_where_all_channels_are_zero():
    f = jnp.zeros((1, 2, 2, 8)).at[0, 0, 0].set(jnp.arange(8.0))
    out = _unit_normalise(f)
    np.testing.assert_allclose(jnp.sum(out[0, 0, 0] ** 2), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(out[0, 1], 0.0)
    grad = jax.grad(lambda a: jnp.sum(_unit_normalise(a) * jnp.arange(1.0, 9.0)))(f)
    assert np.all(np.isfinite(np.asarray(grad)))


def test_missing_or_wrong_files_say_how_to_convert(weights, tmp_path):
    for path in (None, str(tmp_path / "lpips_vgg.npz")):
        with pytest.raises(FileNotFoundError) as err:
            load_lpips(path)
        assert CONVERT_COMMAND in str(err.value) and VGG16_URL in str(err.value)
    assert VGG16_URL == "https://download.pytorch.org/models/vgg16-397923af.pth"

    pth = tmp_path / "vgg16-397923af.pth"
    pth.write_bytes(b"")
    with pytest.raises(ValueError, match="convert_lpips"):
        load_lpips(str(pth))

    with np.load(weights[1]) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["vgg/conv2_1/kernel"] = arrays["vgg/conv2_1/kernel"][..., :64]
    arrays["lin4"] = -arrays["lin4"]
    del arrays["vgg/conv1_1/bias"]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError) as err:
        load_lpips(str(tmp_path / "bad.npz"))
    message = str(err.value)
    assert "missing vgg/conv1_1/bias" in message
    assert "vgg/conv2_1/kernel: shape (3, 3, 64, 64) != (3, 3, 64, 128)" in message
    assert "lin4: negative weights" in message
    assert CONVERT_COMMAND in message


def test_converter_rejects_wrong_state_dicts(weights, tmp_path):
    vgg, lin = random_state_dicts()
    del vgg["features.7.bias"]  # vgg16_bn has BatchNorms at 1, 4, ..., so convs move
    vgg["features.0.weight"] = vgg["features.0.weight"][:, :, :1, :1]
    lin["lin1.model.1.weight"] = lin["lin1.model.1.weight"].reshape(128)
    torch.save(vgg, tmp_path / "vgg16.pth")
    torch.save(lin, tmp_path / "lin.pth")
    with pytest.raises(ValueError) as err:
        convert(str(tmp_path / "vgg16.pth"), str(tmp_path / "lin.pth"), str(tmp_path / "o.npz"))
    message = str(err.value)
    assert "features.0.weight: shape (64, 3, 1, 1) != (64, 3, 3, 3)" in message
    assert "missing features.7.bias" in message
    assert "lin1.model.1.weight: shape (128,) != (1, 128, 1, 1)" in message
    assert not os.path.exists(tmp_path / "o.npz")


def test_lin_weights_default_to_the_installed_lpips_package(weights, tmp_path, monkeypatch):
    vgg_path = str(tmp_path / "vgg16.pth")
    torch.save(random_state_dicts()[0], vgg_path)
    out = str(tmp_path / "out.npz")

    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="--lin"):
        convert(vgg_path, None, out)
    monkeypatch.undo()

    # A stand-in package on sys.path, located but never imported (the real one imports
    # torchvision).
    package = tmp_path / "site" / "lpips"
    (package / "weights" / "v0.1").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    torch.save(random_state_dicts()[1], package / "weights" / "v0.1" / "vgg.pth")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert convert(vgg_path, None, out) == 31
    np.testing.assert_array_equal(load_lpips(out)["lin0"], load_lpips(weights[1])["lin0"])
