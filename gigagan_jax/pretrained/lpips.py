"""LPIPS-VGG (Zhang et al. 2018, weights v0.1) in Flax: the frozen perceptual distance of the
GigaGAN upsampler's loss.

A reimplementation of the `lpips` package's VGG variant: inputs in [-1, 1] are shifted and
scaled per RGB channel, torchvision's VGG16 conv stack is tapped after relu1_2, relu2_2,
relu3_3, relu4_3 and relu5_3, each tap is unit-normalised over channels, and the squared
difference of the two images' taps is weighted per channel by non-negative learned weights,
averaged over space and summed over the 5 taps.

Weights: torchvision's `vgg16-397923af.pth` plus the `lpips` package's `weights/v0.1/vgg.pth`,
converted once to an .npz in this module's layout (read with numpy only) by
`python -m gigagan_jax.tools.convert_lpips --vgg16 vgg16-397923af.pth --lin vgg.pth --out lpips_vgg.npz`.
"""

from __future__ import annotations

import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from gigagan_jax import cpu_convs

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
CONVERT_COMMAND = ("python -m gigagan_jax.tools.convert_lpips --vgg16 vgg16-397923af.pth "
                   "--lin vgg.pth --out lpips_vgg.npz")
# (width, convs) per VGG16 stage; stage s ends in the tap relu{s}_{convs}.
VGG16_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
# The lpips package's ScalingLayer: (x - SHIFT) / SCALE per RGB channel, x in [-1, 1].
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
Params = dict[str, Any]


class VGG16Taps(nn.Module):
    """torchvision VGG16 `features` up to relu5_3: [B, H, W, 3] -> the 5 post-ReLU taps
    [B, H / 2^s, W / 2^s, C_s], C = 64, 128, 256, 512, 512 (pools floor odd sizes, as torch's).
    `precision`: the convolutions' (None = the backend's default; a metric passes HIGHEST)."""

    precision: jax.lax.Precision | None = None

    @nn.compact
    def __call__(self, x):
        taps = []
        for s, (width, n) in enumerate(VGG16_STAGES):
            if s:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
            for i in range(n):
                x = nn.relu(nn.Conv(width, (3, 3), padding=((1, 1), (1, 1)), precision=self.precision,
                                    name=f"conv{s + 1}_{i + 1}")(x))
            taps.append(x)
        return taps


def _unit_normalise(f):
    """f / (|f|_channels + 1e-10), as lpips. The norm is taken through a guarded sqrt so that a
    position where every channel is 0 has a finite (zero) gradient rather than 0 * inf."""
    sq = jnp.sum(jnp.square(f), axis=-1, keepdims=True)  # [B, h, w, 1]
    norm = jnp.where(sq > 0, jnp.sqrt(jnp.where(sq > 0, sq, 1.0)), 0.0)
    return f / (norm + 1e-10)


class LPIPS(nn.Module):
    """Perceptual distance of two [-1, 1] image batches [B, H, W, 3] -> [B].

    x and y go through VGG16 as two forwards rather than one [2B] batch so that the usual
    gradient, to x only, back-propagates through x's forward alone. The distance of an image to
    itself is 0 up to rounding (~1e-15: XLA may fuse the subtraction of the two normalised
    features into an FMA). Computed in float32 whatever the input dtype; convolutions use the
    backend's default precision (a training loss, not a metric that must agree across backends).
    """

    @nn.compact
    def __call__(self, x, y):
        vgg = VGG16Taps(name="vgg")

        def taps(images):
            images = images.astype(jnp.float32)  # [B, H, W, 3]
            return vgg((images - jnp.asarray(SHIFT)) / jnp.asarray(SCALE))

        distance = jnp.zeros((x.shape[0],), jnp.float32)
        for k, (fx, fy) in enumerate(zip(taps(x), taps(y))):
            lin = self.param(f"lin{k}", nn.initializers.zeros, (fx.shape[-1],))  # [C]
            d = jnp.square(_unit_normalise(fx) - _unit_normalise(fy)) @ lin  # [B, h, w]
            distance = distance + jnp.mean(d, axis=(1, 2))
        return distance  # [B]


def expected_params() -> Params:
    """Abstract params tree (ShapeDtypeStructs) of `LPIPS`: {'vgg': {conv1_1: {kernel [3, 3,
    3, 64], bias [64]}, ...}, 'lin0': [64], ..., 'lin4': [512]}."""
    images = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    return jax.eval_shape(LPIPS().init, jax.random.key(0), images, images)["params"]


def array_name(path: tuple[str, ...]) -> str:
    """Params path -> .npz key, e.g. ('vgg', 'conv1_1', 'kernel') -> 'vgg/conv1_1/kernel'."""
    return "/".join(path)


def params_from_arrays(arrays: dict[str, np.ndarray], source: str = "arrays") -> Params:
    """{.npz key: array} -> `LPIPS` params, strictly: every array present with its shape, no
    extras, linear weights non-negative (lpips trains them clamped; a negative one means a
    wrong file)."""
    arrays = dict(arrays)
    flat, problems = {}, []
    for path, leaf in flatten_dict(expected_params()).items():
        name = array_name(path)
        if name not in arrays:
            problems.append(f"missing {name}")
            continue
        value = np.asarray(arrays.pop(name), np.float32)
        if value.shape != leaf.shape:
            problems.append(f"{name}: shape {value.shape} != {leaf.shape}")
        elif path[0].startswith("lin") and np.any(value < 0):
            problems.append(f"{name}: negative weights")
        flat[path] = jnp.asarray(value)
    problems += [f"unexpected {k}" for k in sorted(arrays)]
    if problems:
        raise ValueError(f"{source}: not LPIPS-VGG weights in convert_lpips' layout ("
                         + "; ".join(problems[:8]) + f"); make them with\n  {CONVERT_COMMAND}")
    return unflatten_dict(flat)


def _missing_weights_message(path: str | None) -> str:
    where = "no LPIPS weights were given" if path is None else f"{path!r} does not exist"
    return (f"the LPIPS perceptual loss needs LPIPS-VGG weights, but {where}. Get torchvision's "
            f"VGG16 (about 528 MiB) from\n  {VGG16_URL}\nand the lpips package's "
            "lpips/weights/v0.1/vgg.pth (in its wheel: `pip download lpips --no-deps`, or "
            "omit --lin where lpips is installed), then convert them once with\n"
            f"  {CONVERT_COMMAND}\nand pass the .npz.")


def load_lpips(path: str | None) -> Params:
    """Read the .npz written by convert_lpips -> `LPIPS` params for `lpips_distance`. A missing
    file raises FileNotFoundError, a wrong one ValueError, both naming the convert command."""
    if path is None or not os.path.exists(path):
        raise FileNotFoundError(_missing_weights_message(path))
    if not path.endswith(".npz"):
        raise ValueError(f"{path} is not an .npz; convert the PyTorch weights first with\n"
                         f"  {CONVERT_COMMAND}")
    with np.load(path) as data:
        return params_from_arrays({k: data[k] for k in data.files}, path)


@cpu_convs.jit
def lpips_distance(params: Params, x, y) -> jax.Array:
    """LPIPS-VGG distance of [-1, 1] images x, y [B, H, W, 3] -> [B] float32. The weights are
    frozen (stop_gradient); gradients flow to x and y."""
    return LPIPS().apply({"params": jax.lax.stop_gradient(params)}, x, y)
