"""VGG16 fc2 features for precision/recall: torchvision's state dict through the real .pth and
.npz paths, strict layout checks, the missing-weights message, and parity with PyTorch's
`vgg16.classifier[:5]` output (fc2 after its ReLU).

The real weights cannot be downloaded here: random weights under torchvision's names and shapes
go through the same converter and loader.
"""

import jax
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from gigagan_jax.pretrained.vgg16 import (
    CONVERT_COMMAND,
    FEATURE_DIM,
    WEIGHTS_FILE,
    expected_params,
    load_vgg16,
    params_from_state_dict,
    torch_name,
)
from gigagan_jax.tools.convert_vgg16 import main as convert_main

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

# torchvision's vgg16 configuration: conv widths, "M" = 2x2 max pool.
CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class TorchvisionVGG16(nn.Module):
    """torchvision.models.vgg16's module tree (features / avgpool / classifier), so that a
    state dict loads into it strictly under the same keys; torchvision itself where installed."""

    def __init__(self):
        super().__init__()
        layers, cin = [], 3
        for v in CFG:
            layers += [nn.MaxPool2d(2, 2)] if v == "M" else [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(True)]
            cin = v if v != "M" else cin
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
                                        nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 1000))


def torch_vgg16():
    try:
        import torchvision
    except ImportError:
        return TorchvisionVGG16()
    return torchvision.models.vgg16(weights=None)


def random_state_dict(seed=0):
    """He-scaled random weights (activations stay O(1) through 15 layers) in torchvision's layout."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in TorchvisionVGG16().state_dict().items():
        fan_in = int(np.prod(tensor.shape[1:])) if tensor.ndim > 1 else 1
        scale = (2.0 / fan_in) ** 0.5 if tensor.ndim > 1 else 0.1
        state[name] = torch.randn(tensor.shape, generator=g) * scale
    return state


def torch_fc2(net, images):
    """[-1, 1] images [B, H, W, 3] -> `classifier[:5]` output [B, 4096], preprocessed as the
    module under test documents: [0, 1], antialiased bilinear to 224, ImageNet mean/std."""
    x = (torch.from_numpy(images).permute(0, 3, 1, 2) + 1.0) / 2.0
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    x = (x - IMAGENET_MEAN) / IMAGENET_STD
    with torch.no_grad():
        return net.classifier[:5](torch.flatten(net.avgpool(net.features(x)), 1)).numpy()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """(torch state dict, its .pth, the .npz converted by the CLI)."""
    state = random_state_dict()
    d = tmp_path_factory.mktemp("vgg16")
    torch.save(state, d / WEIGHTS_FILE)
    convert_main([str(d / WEIGHTS_FILE), str(d / "vgg16.npz")])
    return state, str(d / WEIGHTS_FILE), str(d / "vgg16.npz")


def test_names_follow_torchvision():
    names = {torch_name(path) for path in flatten_dict(expected_params())}
    expected = {k for k in TorchvisionVGG16().state_dict() if not k.startswith("classifier.6.")}
    assert names == expected  # 13 convs + fc1 + fc2, weights and biases


def test_features_match_torch_classifier_up_to_fc2(weights):
    state, pth, npz = weights
    from_pth, from_npz = load_vgg16(pth), load_vgg16(npz)
    for a, b in zip(jax.tree.leaves(from_pth.params), jax.tree.leaves(from_npz.params)):
        np.testing.assert_array_equal(a, b)
    net = torch_vgg16().eval()
    net.load_state_dict(state, strict=True)
    rng = np.random.default_rng(1)
    for size in (224, 64, 300):  # as is, upscaled, downscaled (antialiased)
        images = rng.uniform(-1, 1, size=(2, size, size, 3)).astype(np.float32)
        ours = np.asarray(from_npz(images))
        theirs = torch_fc2(net, images)
        assert ours.shape == theirs.shape == (2, FEATURE_DIM)
        assert np.all(ours >= 0) and (ours > 0).mean() > 0.2  # after the ReLU, not dead
        # Observed: within 3.5e-6 of the largest feature; reading fc1's inputs in torch's (C, H, W)
        # order, or shrinking without antialiasing, moves them by 0.97 and 0.36 of it.
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4 * np.abs(theirs).max())


def test_wrong_layout_is_rejected(weights):
    state = {k: v.numpy() for k, v in weights[0].items()}
    del state["features.28.bias"]
    state["features.1.weight"] = np.ones(64, np.float32)  # vgg16_bn's BatchNorm after conv1_1
    state["classifier.3.weight"] = state["classifier.3.weight"][:, :100]
    with pytest.raises(ValueError) as err:
        params_from_state_dict(state, "bad.pth")
    message = str(err.value)
    assert "bad.pth is not torchvision's vgg16 state dict (not vgg16_bn)" in message
    assert "missing features.28.bias" in message
    assert "unexpected features.1.weight" in message
    assert "classifier.3.weight: shape (100, 4096) does not give (4096, 4096)" in message


def test_missing_weights_say_where_to_get_them(tmp_path):
    for path in (None, str(tmp_path / WEIGHTS_FILE)):
        with pytest.raises(FileNotFoundError) as err:
            load_vgg16(path)
        assert "https://download.pytorch.org/models/vgg16-397923af.pth" in str(err.value)
        assert CONVERT_COMMAND in str(err.value)


def test_a_file_that_is_not_weights_is_one_clear_error(tmp_path):
    """Every frozen network's loader reads files through one reader: a wrong file is a ValueError
    naming it, not an unpickling traceback."""
    from gigagan_jax.pretrained.convert_lpips import read_torch
    from gigagan_jax.pretrained.inception import load_inception

    for name in ("notes.pth", "notes.npz"):
        path = tmp_path / name
        path.write_text("not weights")
        for load in (load_inception, load_vgg16, read_torch):
            with pytest.raises(ValueError, match=rf"{path} is not (a PyTorch state dict|an \.npz of weights)"):
                load(str(path))
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="holds a list, not a state dict"):
        load_vgg16(str(tmp_path / "list.pth"))
