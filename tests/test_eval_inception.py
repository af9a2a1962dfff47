"""FID Inception-v3: weight loading through the real .pth / .npz paths, strict layout checks,
the missing-weights message, and numerical parity with an independent PyTorch forward.

The real weights cannot be downloaded here; random weights in pytorch-fid's state-dict layout
go through the same loader. Set GIGAGAN_FID_INCEPTION=/path/to/pt_inception-...pth to also
check that the real file loads strictly.
"""

import os

import jax
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from gigagan_jax.pretrained.inception import (
    FEATURE_DIM,
    WEIGHTS_FILE,
    WEIGHTS_URL,
    expected_variables,
    load_inception,
    torch_name,
    variables_from_state_dict,
)
from gigagan_jax.pretrained.convert_inception import convert


def torch_layout_state_dict(seed=0):
    """Random arrays under pytorch-fid's names and PyTorch shapes (conv [out, in, kh, kw]), plus
    the fc layer and BatchNorm counters that the real file also carries. Scaled so activations
    stay O(1) through the 94 conv layers."""
    rng = np.random.default_rng(seed)
    state = {}
    for collection, tree in expected_variables().items():
        for path, leaf in flatten_dict(tree).items():
            shape = leaf.shape
            if path[-1] == "kernel":
                kh, kw, cin, cout = shape
                shape = (cout, cin, kh, kw)
                value = rng.normal(size=shape) * np.sqrt(1.0 / (cin * kh * kw))
            elif path[-1] == "var":
                value = rng.uniform(0.5, 1.5, size=shape)
            elif path[-1] == "scale":
                value = rng.uniform(0.8, 1.2, size=shape)
            else:  # BatchNorm bias and running mean
                value = rng.normal(size=shape) * 0.1
            state[torch_name(collection, path)] = value.astype(np.float32)
            if path[-1] == "mean":
                state[".".join(path[:-1]) + ".num_batches_tracked"] = np.array(0, np.int64)
    state["fc.weight"] = (rng.normal(size=(1008, 2048)) * 0.01).astype(np.float32)
    state["fc.bias"] = np.zeros(1008, np.float32)
    return state


@pytest.fixture(scope="module")
def state():
    return torch_layout_state_dict()


@pytest.fixture(scope="module")
def npz_path(state, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("inception") / "fid_inception.npz")
    np.savez(path, **state)
    return path


def test_layout_is_pool3_of_the_fid_graph():
    variables = expected_variables()
    params = flatten_dict(variables["params"])
    n_params = sum(v.size for v in params.values())
    n_stats = sum(v.size for v in jax.tree.leaves(variables["batch_stats"]))
    # 94 conv+BN units; with the 1008-way fc (2048 * 1008 + 1008) this is the 23.9 M floats
    # (~95.5 MB) of pt_inception-2015-12-05-6726825d.pth.
    assert sum(1 for p in params if p[-1] == "kernel") == 94
    assert n_params + n_stats + 2048 * 1008 + 1008 == 23_885_392
    assert params[("Conv2d_1a_3x3", "conv", "kernel")].shape == (3, 3, 3, 32)
    assert params[("Mixed_6b", "branch7x7_2", "conv", "kernel")].shape == (1, 7, 128, 128)
    assert params[("Mixed_7c", "branch_pool", "conv", "kernel")].shape == (1, 1, 2048, 192)


def test_npz_loads_and_gives_2048_features(state, npz_path):
    inception = load_inception(npz_path)
    kernel = inception.variables["params"]["Mixed_5b"]["branch5x5_2"]["conv"]["kernel"]
    np.testing.assert_array_equal(  # [out, in, kh, kw] -> [kh, kw, in, out]
        kernel, state["Mixed_5b.branch5x5_2.conv.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(inception.variables["batch_stats"]["Mixed_7c"]["branch_pool"]
                                  ["bn"]["var"], state["Mixed_7c.branch_pool.bn.running_var"])
    images = np.random.default_rng(0).uniform(-1, 1, size=(2, 64, 64, 3)).astype(np.float32)
    features = np.asarray(inception(images))
    assert features.shape == (2, FEATURE_DIM)
    assert np.all(np.isfinite(features)) and np.all(features >= 0)  # mean of ReLU outputs
    assert not np.allclose(features[0], features[1])  # the image matters


def test_missing_weights_say_where_to_get_them(tmp_path):
    for path in (None, str(tmp_path / WEIGHTS_FILE)):
        with pytest.raises(FileNotFoundError) as err:
            load_inception(path)
        assert WEIGHTS_URL in str(err.value)
        assert "convert_inception" in str(err.value)
    assert WEIGHTS_URL == ("https://github.com/mseitzer/pytorch-fid/releases/download/"
                           "fid_weights/pt_inception-2015-12-05-6726825d.pth")


def test_wrong_layout_is_rejected(state):
    broken = dict(state)
    del broken["Mixed_6e.branch7x7dbl_5.bn.running_var"]
    broken["AuxLogits.fc.weight"] = np.zeros((1000, 768), np.float32)
    broken["Mixed_5b.branch1x1.conv.weight"] = np.zeros((64, 192, 3, 3), np.float32)
    broken["Mixed_5c.branch1x1.conv.weight"] = np.zeros((64, 256), np.float32)  # not a conv
    with pytest.raises(ValueError) as err:
        variables_from_state_dict(broken)
    message = str(err.value)
    assert "missing Mixed_6e.branch7x7dbl_5.bn.running_var" in message
    assert "unexpected AuxLogits.fc.weight" in message
    assert "Mixed_5b.branch1x1.conv.weight: shape (3, 3, 192, 64)" in message
    assert "Mixed_5c.branch1x1.conv.weight: shape (64, 256)" in message


@pytest.mark.skipif(not os.environ.get("GIGAGAN_FID_INCEPTION"),
                    reason="set GIGAGAN_FID_INCEPTION to the real pt_inception-2015-12-05 file")
def test_real_weights_load_strictly():
    inception = load_inception(os.environ["GIGAGAN_FID_INCEPTION"])
    features = np.asarray(inception(np.zeros((1, 299, 299, 3), np.float32)))
    assert features.shape == (1, FEATURE_DIM) and np.all(np.isfinite(features))


# ----------------------------------------------------------------------------- PyTorch parity


def torch_reference(state_dict):
    """An independent PyTorch FID Inception (NCHW, torch pooling / interpolation semantics),
    written from the architecture description, loaded strictly from the same state dict."""
    torch = pytest.importorskip("torch")
    nn, F = torch.nn, torch.nn.functional

    class Unit(nn.Module):
        def __init__(self, cin, cout, kernel, stride=1, padding=0):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
            self.bn = nn.BatchNorm2d(cout, eps=0.001)

        def forward(self, x):
            return F.relu(self.bn(self.conv(x)))

    def avg(x):
        return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)

    class A(nn.Module):
        def __init__(self, cin, pool):
            super().__init__()
            self.branch1x1 = Unit(cin, 64, 1)
            self.branch5x5_1, self.branch5x5_2 = Unit(cin, 48, 1), Unit(48, 64, 5, padding=2)
            self.branch3x3dbl_1 = Unit(cin, 64, 1)
            self.branch3x3dbl_2 = Unit(64, 96, 3, padding=1)
            self.branch3x3dbl_3 = Unit(96, 96, 3, padding=1)
            self.branch_pool = Unit(cin, pool, 1)

        def forward(self, x):
            return torch.cat([
                self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                self.branch_pool(avg(x))], 1)

    class B(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.branch3x3 = Unit(cin, 384, 3, stride=2)
            self.branch3x3dbl_1 = Unit(cin, 64, 1)
            self.branch3x3dbl_2 = Unit(64, 96, 3, padding=1)
            self.branch3x3dbl_3 = Unit(96, 96, 3, stride=2)

        def forward(self, x):
            return torch.cat([
                self.branch3x3(x),
                self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                F.max_pool2d(x, 3, stride=2)], 1)

    class C(nn.Module):
        def __init__(self, cin, c):
            super().__init__()
            self.branch1x1 = Unit(cin, 192, 1)
            self.branch7x7_1 = Unit(cin, c, 1)
            self.branch7x7_2 = Unit(c, c, (1, 7), padding=(0, 3))
            self.branch7x7_3 = Unit(c, 192, (7, 1), padding=(3, 0))
            self.branch7x7dbl_1 = Unit(cin, c, 1)
            self.branch7x7dbl_2 = Unit(c, c, (7, 1), padding=(3, 0))
            self.branch7x7dbl_3 = Unit(c, c, (1, 7), padding=(0, 3))
            self.branch7x7dbl_4 = Unit(c, c, (7, 1), padding=(3, 0))
            self.branch7x7dbl_5 = Unit(c, 192, (1, 7), padding=(0, 3))
            self.branch_pool = Unit(cin, 192, 1)

        def forward(self, x):
            d = x
            for i in range(1, 6):
                d = getattr(self, f"branch7x7dbl_{i}")(d)
            return torch.cat([
                self.branch1x1(x), self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
                d, self.branch_pool(avg(x))], 1)

    class D(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.branch3x3_1, self.branch3x3_2 = Unit(cin, 192, 1), Unit(192, 320, 3, stride=2)
            self.branch7x7x3_1 = Unit(cin, 192, 1)
            self.branch7x7x3_2 = Unit(192, 192, (1, 7), padding=(0, 3))
            self.branch7x7x3_3 = Unit(192, 192, (7, 1), padding=(3, 0))
            self.branch7x7x3_4 = Unit(192, 192, 3, stride=2)

        def forward(self, x):
            s = x
            for i in range(1, 5):
                s = getattr(self, f"branch7x7x3_{i}")(s)
            return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), s,
                              F.max_pool2d(x, 3, stride=2)], 1)

    class E(nn.Module):
        def __init__(self, cin, max_pool):
            super().__init__()
            self.max_pool = max_pool
            self.branch1x1 = Unit(cin, 320, 1)
            self.branch3x3_1 = Unit(cin, 384, 1)
            self.branch3x3_2a = Unit(384, 384, (1, 3), padding=(0, 1))
            self.branch3x3_2b = Unit(384, 384, (3, 1), padding=(1, 0))
            self.branch3x3dbl_1 = Unit(cin, 448, 1)
            self.branch3x3dbl_2 = Unit(448, 384, 3, padding=1)
            self.branch3x3dbl_3a = Unit(384, 384, (1, 3), padding=(0, 1))
            self.branch3x3dbl_3b = Unit(384, 384, (3, 1), padding=(1, 0))
            self.branch_pool = Unit(cin, 192, 1)

        def forward(self, x):
            a = self.branch3x3_1(x)
            b = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else avg(x)
            return torch.cat([self.branch1x1(x), self.branch3x3_2a(a), self.branch3x3_2b(a),
                              self.branch3x3dbl_3a(b), self.branch3x3dbl_3b(b),
                              self.branch_pool(pooled)], 1)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.Conv2d_1a_3x3 = Unit(3, 32, 3, stride=2)
            self.Conv2d_2a_3x3 = Unit(32, 32, 3)
            self.Conv2d_2b_3x3 = Unit(32, 64, 3, padding=1)
            self.Conv2d_3b_1x1 = Unit(64, 80, 1)
            self.Conv2d_4a_3x3 = Unit(80, 192, 3)
            self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = A(192, 32), A(256, 64), A(288, 64)
            self.Mixed_6a = B(288)
            self.Mixed_6b, self.Mixed_6c = C(768, 128), C(768, 160)
            self.Mixed_6d, self.Mixed_6e = C(768, 160), C(768, 192)
            self.Mixed_7a = D(768)
            self.Mixed_7b, self.Mixed_7c = E(1280, max_pool=False), E(2048, max_pool=True)
            self.fc = nn.Linear(2048, 1008)

        def forward(self, x):  # [B, 3, H, W] in [-1, 1]
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
            x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, stride=2)))
            x = F.max_pool2d(x, 3, stride=2)
            for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
                x = getattr(self, f"Mixed_{name}")(x)
            return x.mean(dim=(2, 3))  # [B, 2048]

    net = Net().eval()
    net.load_state_dict({k: torch.as_tensor(v) for k, v in state_dict.items()}, strict=True)
    return net


def test_pth_and_npz_paths_match_an_independent_pytorch_forward(state, tmp_path):
    torch = pytest.importorskip("torch")
    reference = torch_reference(state)
    pth = str(tmp_path / WEIGHTS_FILE)
    torch.save(reference.state_dict(), pth)

    npz = str(tmp_path / "converted.npz")
    assert convert(pth, npz) == len(state)
    from_pth, from_npz = load_inception(pth), load_inception(npz)
    for a, b in zip(jax.tree.leaves(from_pth.variables), jax.tree.leaves(from_npz.variables)):
        np.testing.assert_array_equal(a, b)

    # 80 x 352: the resize upsamples the height and downsamples the width.
    images = np.random.default_rng(1).uniform(-1, 1, size=(2, 80, 352, 3)).astype(np.float32)
    ours = np.asarray(from_pth(images))
    with torch.no_grad():
        theirs = reference(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()
    assert ours.shape == theirs.shape == (2, FEATURE_DIM)
    # Observed error ~2e-7 of the scale; pooling over padding or an antialiased resize move
    # features by 6e-4 to 2e-2 of it.
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5 * np.abs(theirs).max())
