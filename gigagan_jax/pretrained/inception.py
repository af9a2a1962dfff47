"""Inception-v3 as used by FID: the TF 2015-12-05 graph's 2048-d pool3 features, in Flax.

FID numbers are only comparable across papers when they come from this exact network and
weights, so this follows pytorch-fid's port of the TF graph (not torchvision's Inception-v3):
1008-class weights, average pools in the Inception A/C/E1 blocks that exclude padding from the
mean (TF 'SAME' pooling), and a *max* pool in the last block's pool branch (a quirk of the TF
graph). Images in [-1, 1] are bilinearly resized to 299 x 299 (half-pixel centres, no
antialiasing, like `F.interpolate(..., align_corners=False)` in pytorch-fid); clean-fid's
protocol resizes outside the network instead (`InceptionFeatures.at_input_size`,
gigagan_jax/eval/fid_resize.py).

Weights: pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (a PyTorch state dict, read with
torch when installed) or an `.npz` of the same arrays written by
`python -m gigagan_jax.tools.convert_inception SRC.pth OUT.npz` (read with numpy only).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from gigagan_jax import cpu_convs
from gigagan_jax.pretrained.weights_file import read_weights

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
               + WEIGHTS_FILE)
INPUT_SIZE = 299
FEATURE_DIM = 2048
Variables = dict[str, Any]


class BasicConv(nn.Module):
    """Conv (no bias) -> BatchNorm (inference, eps 1e-3) -> ReLU, TF Inception's unit.

    Convolutions run at full float32 precision: the default on TPU (one bfloat16 pass) or GPU
    (TF32) shifts the features enough to move FID, which must not depend on the backend.
    """

    features: int
    kernel: tuple[int, int]
    stride: int = 1
    padding: tuple[int, int] = (0, 0)

    @nn.compact
    def __call__(self, x):
        ph, pw = self.padding
        x = nn.Conv(self.features, self.kernel, strides=self.stride,
                    padding=((ph, ph), (pw, pw)), use_bias=False,
                    precision=jax.lax.Precision.HIGHEST, name="conv")(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, name="bn")(x)
        return nn.relu(x)


def _avg_pool_same(x):
    """3x3 stride-1 average that ignores padded cells (TF 'SAME' average pooling)."""
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                       count_include_pad=False)


def _max_pool_same(x):
    return nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))


def _max_pool_reduce(x):
    """3x3 stride-2 'VALID' max pool: the grid-size reductions."""
    return nn.max_pool(x, (3, 3), strides=(2, 2))


class BlockA(nn.Module):
    """35x35 block (Mixed_5b/c/d): 1x1, 5x5, double 3x3 and pooled branches."""

    pool_features: int

    @nn.compact
    def __call__(self, x):
        b1 = BasicConv(64, (1, 1), name="branch1x1")(x)
        b5 = BasicConv(48, (1, 1), name="branch5x5_1")(x)
        b5 = BasicConv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
        b3 = BasicConv(64, (1, 1), name="branch3x3dbl_1")(x)
        b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
        b3 = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
        bp = BasicConv(self.pool_features, (1, 1), name="branch_pool")(_avg_pool_same(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)  # [B, 35, 35, 224 + pool_features]


class BlockB(nn.Module):
    """35 -> 17 reduction (Mixed_6a)."""

    @nn.compact
    def __call__(self, x):
        b3 = BasicConv(384, (3, 3), stride=2, name="branch3x3")(x)
        bd = BasicConv(64, (1, 1), name="branch3x3dbl_1")(x)
        bd = BasicConv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = BasicConv(96, (3, 3), stride=2, name="branch3x3dbl_3")(bd)
        return jnp.concatenate([b3, bd, _max_pool_reduce(x)], axis=-1)  # [B, 17, 17, 768]


class BlockC(nn.Module):
    """17x17 block (Mixed_6b..e) with factorised 1x7 / 7x1 convolutions."""

    channels_7x7: int

    @nn.compact
    def __call__(self, x):
        c = self.channels_7x7
        row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
        b1 = BasicConv(192, (1, 1), name="branch1x1")(x)
        b7 = BasicConv(c, (1, 1), name="branch7x7_1")(x)
        b7 = BasicConv(c, **row, name="branch7x7_2")(b7)
        b7 = BasicConv(192, **col, name="branch7x7_3")(b7)
        bd = BasicConv(c, (1, 1), name="branch7x7dbl_1")(x)
        bd = BasicConv(c, **col, name="branch7x7dbl_2")(bd)
        bd = BasicConv(c, **row, name="branch7x7dbl_3")(bd)
        bd = BasicConv(c, **col, name="branch7x7dbl_4")(bd)
        bd = BasicConv(192, **row, name="branch7x7dbl_5")(bd)
        bp = BasicConv(192, (1, 1), name="branch_pool")(_avg_pool_same(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)  # [B, 17, 17, 768]


class BlockD(nn.Module):
    """17 -> 8 reduction (Mixed_7a)."""

    @nn.compact
    def __call__(self, x):
        b3 = BasicConv(192, (1, 1), name="branch3x3_1")(x)
        b3 = BasicConv(320, (3, 3), stride=2, name="branch3x3_2")(b3)
        b7 = BasicConv(192, (1, 1), name="branch7x7x3_1")(x)
        b7 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = BasicConv(192, (3, 3), stride=2, name="branch7x7x3_4")(b7)
        return jnp.concatenate([b3, b7, _max_pool_reduce(x)], axis=-1)  # [B, 8, 8, 1280]


class BlockE(nn.Module):
    """8x8 block (Mixed_7b/c) with split 1x3 / 3x1 outputs; `max_pool` marks the TF graph's
    last block, whose pool branch max-pools instead of averaging."""

    max_pool: bool = False

    @nn.compact
    def __call__(self, x):
        row, col = dict(kernel=(1, 3), padding=(0, 1)), dict(kernel=(3, 1), padding=(1, 0))
        b1 = BasicConv(320, (1, 1), name="branch1x1")(x)
        b3 = BasicConv(384, (1, 1), name="branch3x3_1")(x)
        b3 = [BasicConv(384, **row, name="branch3x3_2a")(b3),
              BasicConv(384, **col, name="branch3x3_2b")(b3)]
        bd = BasicConv(448, (1, 1), name="branch3x3dbl_1")(x)
        bd = BasicConv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
        bd = [BasicConv(384, **row, name="branch3x3dbl_3a")(bd),
              BasicConv(384, **col, name="branch3x3dbl_3b")(bd)]
        pooled = _max_pool_same(x) if self.max_pool else _avg_pool_same(x)
        bp = BasicConv(192, (1, 1), name="branch_pool")(pooled)
        return jnp.concatenate([b1, *b3, *bd, bp], axis=-1)  # [B, 8, 8, 2048]


class FIDInceptionV3(nn.Module):
    """Images [B, H, W, 3] -> pool3 features [B, 2048]. With `resize_inside` (pytorch-fid's
    protocol) any H, W in [-1, 1] are bilinearly resized to 299 x 299 first; without it the input
    must already be the network's [B, 299, 299, 3]."""

    resize_inside: bool = True

    @nn.compact
    def __call__(self, images):
        b, _, _, c = images.shape
        x = images.astype(jnp.float32)
        if self.resize_inside:
            x = jax.image.resize(x, (b, INPUT_SIZE, INPUT_SIZE, c), method="bilinear",
                                 antialias=False)  # [B, 299, 299, 3]
        x = BasicConv(32, (3, 3), stride=2, name="Conv2d_1a_3x3")(x)  # [B, 149, 149, 32]
        x = BasicConv(32, (3, 3), name="Conv2d_2a_3x3")(x)  # [B, 147, 147, 32]
        x = BasicConv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)  # [B, 147, 147, 64]
        x = _max_pool_reduce(x)  # [B, 73, 73, 64]
        x = BasicConv(80, (1, 1), name="Conv2d_3b_1x1")(x)  # [B, 73, 73, 80]
        x = BasicConv(192, (3, 3), name="Conv2d_4a_3x3")(x)  # [B, 71, 71, 192]
        x = _max_pool_reduce(x)  # [B, 35, 35, 192]
        x = BlockA(32, name="Mixed_5b")(x)  # [B, 35, 35, 256]
        x = BlockA(64, name="Mixed_5c")(x)  # [B, 35, 35, 288]
        x = BlockA(64, name="Mixed_5d")(x)  # [B, 35, 35, 288]
        x = BlockB(name="Mixed_6a")(x)  # [B, 17, 17, 768]
        x = BlockC(128, name="Mixed_6b")(x)
        x = BlockC(160, name="Mixed_6c")(x)
        x = BlockC(160, name="Mixed_6d")(x)
        x = BlockC(192, name="Mixed_6e")(x)  # [B, 17, 17, 768]
        x = BlockD(name="Mixed_7a")(x)  # [B, 8, 8, 1280]
        x = BlockE(name="Mixed_7b")(x)  # [B, 8, 8, 2048]
        x = BlockE(max_pool=True, name="Mixed_7c")(x)  # [B, 8, 8, 2048]
        return jnp.mean(x, axis=(1, 2))  # [B, 2048]: pool3


# ----------------------------------------------------------------------------- weights


def expected_variables() -> Variables:
    """Abstract {'params', 'batch_stats'} tree (ShapeDtypeStructs) of `FIDInceptionV3`."""
    images = jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32)
    return jax.eval_shape(FIDInceptionV3().init, jax.random.key(0), images)


def torch_name(collection: str, path: tuple[str, ...]) -> str:
    """Flax variable path -> pytorch-fid state-dict key, e.g.
    ('params', ('Mixed_5b', 'branch1x1', 'conv', 'kernel')) -> 'Mixed_5b.branch1x1.conv.weight'."""
    *prefix, last = path
    last = {("params", "kernel"): "weight", ("params", "scale"): "weight",
            ("params", "bias"): "bias", ("batch_stats", "mean"): "running_mean",
            ("batch_stats", "var"): "running_var"}[(collection, last)]
    return ".".join([*prefix, last])


def _missing_weights_message(path: str | None) -> str:
    where = "no Inception weights were given" if path is None else f"{path!r} does not exist"
    return (f"FID needs the FID Inception-v3 weights, but {where}. Download pytorch-fid's "
            f"{WEIGHTS_FILE} (about 91 MiB) from\n  {WEIGHTS_URL}\n"
            "on a machine with internet access, copy it here and pass its path (evaluation: "
            "--inception_path, i.e. config.eval.inception_path). To read it without PyTorch, "
            "convert it once with\n"
            f"  python -m gigagan_jax.tools.convert_inception {WEIGHTS_FILE} fid_inception.npz\n"
            "and pass the .npz instead.")


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """pytorch-fid's .pth (needs torch) or its .npz conversion -> {torch key: float32 array}."""
    return read_weights(path, f"python -m gigagan_jax.tools.convert_inception {path} OUT.npz")


def variables_from_state_dict(state: dict[str, np.ndarray],
                              source: str = "state dict") -> Variables:
    """Map a pytorch-fid state dict onto `FIDInceptionV3`'s variables, strictly.

    Conv weights go from [out, in, kh, kw] to [kh, kw, in, out]; BatchNorm weight/bias/running
    stats become scale/bias/mean/var. The 1008-way `fc` layer and BatchNorm's
    `num_batches_tracked` counters are not part of the pool3 features and are dropped.
    """
    state = dict(state)
    flat, problems = {}, []
    for collection, tree in expected_variables().items():
        for path, leaf in flatten_dict(tree).items():
            name = torch_name(collection, path)
            if name not in state:
                problems.append(f"missing {name}")
                continue
            value = np.asarray(state.pop(name), np.float32)
            if path[-1] == "kernel" and value.ndim == 4:
                value = value.transpose(2, 3, 1, 0)
            if value.shape != leaf.shape:
                problems.append(f"{name}: shape {value.shape} != {leaf.shape}")
            flat[(collection, *path)] = jnp.asarray(value)
    problems += [f"unexpected {k}" for k in sorted(state)
                 if not (k.startswith("fc.") or k.endswith("num_batches_tracked"))]
    if problems:
        raise ValueError(f"{source} is not pytorch-fid's FID Inception-v3 state dict: "
                         + "; ".join(problems[:8]))
    return unflatten_dict(flat)


@functools.partial(cpu_convs.jit, static_argnames="resize_inside")
def _forward(variables: Variables, images, resize_inside: bool = True):
    return FIDInceptionV3(resize_inside).apply(variables, images)  # [B, 2048]


class InceptionFeatures:
    """Loaded FID Inception: call it on [-1, 1] images [B, H, W, 3] to get [B, 2048] float32
    (pytorch-fid's resize inside). One jitted forward is shared by all instances (compiled once
    per input shape)."""

    def __init__(self, variables: Variables):
        self.variables = variables

    def __call__(self, images) -> jax.Array:
        return _forward(self.variables, jnp.asarray(images))  # [B, 2048]

    def at_input_size(self, x) -> jax.Array:
        """Features [B, 2048] of inputs already resized and scaled for the network:
        [B, 299, 299, 3], about [-1, 1]; nothing is resized."""
        if tuple(np.shape(x)[1:]) != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"the Inception's input is [B, {INPUT_SIZE}, {INPUT_SIZE}, 3], got "
                             f"{tuple(np.shape(x))}")
        return _forward(self.variables, jnp.asarray(x), resize_inside=False)  # [B, 2048]


def load_inception(path: str | None) -> InceptionFeatures:
    """Load the FID Inception from pytorch-fid's .pth or its .npz conversion; a missing path
    raises FileNotFoundError saying where to download the weights."""
    if path is None or not os.path.exists(path):
        raise FileNotFoundError(_missing_weights_message(path))
    return InceptionFeatures(variables_from_state_dict(read_state_dict(path), path))
