"""VGG16's fc2 features in Flax: the feature space of improved precision/recall as published
(Kynkäänniemi et al. 2019 embed images with VGG16 and compare them in its second fully connected
layer, 4096-d after the ReLU).

torchvision's VGG16: the conv stack LPIPS also uses (`lpips.VGG16Taps`, to relu5_3), its last
max pool, then the classifier's fc1 and fc2 with their ReLUs (`vgg16().classifier[:5]`; the
dropouts are identities at inference and the 1000-way fc3 is dropped). At 224 x 224 the stack ends
in 7 x 7 x 512, so torchvision's adaptive average pool to 7 x 7 is the identity and is left out.

Input: [-1, 1] images [B, H, W, 3] of any size are mapped to [0, 1], resized to 224 x 224 with
an antialiased bilinear filter (its triangle kernel widens when shrinking, as PIL's BILINEAR in
torchvision's ImageNet transforms, so large images are not aliased; smaller ones are interpolated),
whole (no crop: generated and real images are square), then normalised with torchvision's ImageNet
mean/std, the statistics these weights were trained with. Convolutions and matmuls run at full
float32 precision so that the k-NN radii do not depend on the backend. The published metric used
another VGG16 (NVIDIA's conversion of the original network, with its own preprocessing): the
layer and the method are the same, the numbers close but not identical.

Weights: torchvision's `vgg16-397923af.pth` (a PyTorch state dict, read with torch when
installed) or an `.npz` of the same arrays written by
`python -m gigagan_jax.tools.convert_vgg16 vgg16-397923af.pth vgg16.npz` (read with numpy only).
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
from gigagan_jax.pretrained.convert_lpips import torchvision_indices
from gigagan_jax.pretrained.lpips import VGG16_URL, VGG16Taps
from gigagan_jax.pretrained.weights_file import read_weights

WEIGHTS_FILE = "vgg16-397923af.pth"
CONVERT_COMMAND = f"python -m gigagan_jax.tools.convert_vgg16 {WEIGHTS_FILE} vgg16.npz"
INPUT_SIZE = 224
FEATURE_DIM = 4096
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The classifier's Linear layers in torchvision's `vgg16().classifier` (ReLU, Dropout between them).
CLASSIFIER_INDEX = {"fc1": 0, "fc2": 3}
POOLED = (512, 7, 7)  # torch's (C, H, W) of the flattened conv output
FEATURES = ("torchvision VGG16 fc2 (4096-d, after ReLU) of [0, 1] images resized to 224 x 224 "
            "(bilinear, antialiased) and normalised with ImageNet's mean/std")  # for reports
Params = dict[str, Any]


class VGG16FC2(nn.Module):
    """[-1, 1] images [B, H, W, 3] -> VGG16 fc2 features [B, 4096] (post-ReLU)."""

    @nn.compact
    def __call__(self, images):
        b = images.shape[0]
        x = (images.astype(jnp.float32) + 1.0) * 0.5  # [B, H, W, 3] in [0, 1]
        x = jax.image.resize(x, (b, INPUT_SIZE, INPUT_SIZE, 3), method="bilinear", antialias=True)
        x = (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)  # [B, 224, 224, 3]
        x = VGG16Taps(precision=jax.lax.Precision.HIGHEST, name="vgg")(x)[-1]  # relu5_3 [B, 14, 14, 512]
        x = nn.max_pool(x, (2, 2), strides=(2, 2)).reshape(b, -1)  # [B, 7 * 7 * 512], (H, W, C) order
        for name in CLASSIFIER_INDEX:
            x = nn.relu(nn.Dense(FEATURE_DIM, precision=jax.lax.Precision.HIGHEST, name=name)(x))
        return x  # [B, 4096]


def expected_params() -> Params:
    """Abstract params tree (ShapeDtypeStructs) of `VGG16FC2`."""
    images = jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32)
    return jax.eval_shape(VGG16FC2().init, jax.random.key(0), images)["params"]


def torch_name(path: tuple[str, ...]) -> str:
    """Params path -> torchvision state-dict key: ('vgg', 'conv1_2', 'kernel') ->
    'features.2.weight', ('fc2', 'bias') -> 'classifier.3.bias'."""
    *layer, leaf = path
    index = (f"features.{torchvision_indices()[layer[1]]}" if layer[0] == "vgg"
             else f"classifier.{CLASSIFIER_INDEX[layer[0]]}")
    return f"{index}.{'weight' if leaf == 'kernel' else 'bias'}"


def _to_flax(path: tuple[str, ...], value: np.ndarray) -> np.ndarray:
    """A torch weight in Flax layout: conv [O, I, kh, kw] -> [kh, kw, I, O]; fc [O, I] -> [I, O],
    fc1's input axis reordered from torch's flattened (C, H, W) to this module's (H, W, C)."""
    if path[-1] != "kernel":
        return value
    if value.ndim == 4:
        return value.transpose(2, 3, 1, 0)
    if path[0] == "fc1" and value.shape == (FEATURE_DIM, int(np.prod(POOLED))):
        value = value.reshape(value.shape[0], *POOLED).transpose(0, 2, 3, 1).reshape(value.shape[0], -1)
    return value.T


def params_from_state_dict(state: dict[str, np.ndarray], source: str = "state dict") -> Params:
    """torchvision VGG16 state dict -> `VGG16FC2` params, strictly: every array present with its
    shape, nothing unexpected except the 1000-way classifier.6 (not part of fc2's features)."""
    state = dict(state)
    flat, problems = {}, []
    for path, leaf in flatten_dict(expected_params()).items():
        name = torch_name(path)
        if name not in state:
            problems.append(f"missing {name}")
            continue
        value = _to_flax(path, np.asarray(state.pop(name), np.float32))
        if value.shape != leaf.shape:
            problems.append(f"{name}: shape {value.shape} does not give {leaf.shape}")
        flat[path] = jnp.asarray(value)
    problems += [f"unexpected {k}" for k in sorted(state) if not k.startswith("classifier.6.")]
    if problems:
        raise ValueError(f"{source} is not torchvision's vgg16 state dict (not vgg16_bn): "
                         + "; ".join(problems[:8]))
    return unflatten_dict(flat)


def _missing_weights_message(path: str | None) -> str:
    where = "no VGG16 weights were given" if path is None else f"{path!r} does not exist"
    return (f"precision/recall on VGG16 features needs torchvision's VGG16, but {where}. Download "
            f"{WEIGHTS_FILE} (about 528 MiB) from\n  {VGG16_URL}\non a machine with internet "
            "access, copy it here and pass its path (evaluation: --vgg16_path). To read it without "
            f"PyTorch, convert it once with\n  {CONVERT_COMMAND}\nand pass the .npz instead.")


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """torchvision's .pth (needs torch) or its .npz conversion -> {torch key: float32 array}."""
    return read_weights(path, CONVERT_COMMAND)


@cpu_convs.jit
def _forward(params: Params, images):
    return VGG16FC2().apply({"params": params}, images)  # [B, 4096]


class VGG16Features:
    """Loaded VGG16: call it on [-1, 1] images [B, H, W, 3] to get fc2 features [B, 4096] float32."""

    def __init__(self, params: Params):
        self.params = params

    def __call__(self, images) -> jax.Array:
        return _forward(self.params, jnp.asarray(images))  # [B, 4096]


def load_vgg16(path: str | None) -> VGG16Features:
    """Load VGG16 from torchvision's .pth or its .npz conversion; a missing path raises
    FileNotFoundError saying where to download the weights, a wrong file ValueError."""
    if path is None or not os.path.exists(path):
        raise FileNotFoundError(_missing_weights_message(path))
    return VGG16Features(params_from_state_dict(read_state_dict(path), path))
