"""Convert LPIPS-VGG's PyTorch weights (torchvision VGG16 + lpips v0.1 linear layers) to one
.npz, once, so training reads them with numpy and needs no torch.

    python -m gigagan_jax.tools.convert_lpips --vgg16 vgg16-397923af.pth --lin vgg.pth --out lpips_vgg.npz

`--lin` may be left out where the `lpips` package is installed: its shipped
lpips/weights/v0.1/vgg.pth is used.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np

from gigagan_jax.pretrained.lpips import (
    CONVERT_COMMAND,
    VGG16_STAGES,
    array_name,
    expected_params,
    params_from_arrays,
)
from gigagan_jax.pretrained.weights_file import read_weights

LIN_IN_PACKAGE = os.path.join("weights", "v0.1", "vgg.pth")


def torchvision_indices() -> dict[str, int]:
    """conv name -> index in torchvision's `vgg16().features` (conv, ReLU per conv; a max pool
    before each stage after the first): conv1_1 -> 0, conv1_2 -> 2, conv2_1 -> 5, ...,
    conv5_3 -> 28."""
    indices, i = {}, 0
    for s, (_, n) in enumerate(VGG16_STAGES):
        i += 1 if s else 0
        for c in range(n):
            indices[f"conv{s + 1}_{c + 1}"] = i
            i += 2
    return indices


def read_torch(path: str) -> dict[str, np.ndarray]:
    """A PyTorch state dict file -> {key: float32 array}."""
    return read_weights(path, CONVERT_COMMAND)


def lpips_package_lin() -> str:
    """Path of the linear weights shipped in the installed `lpips` package. Found without
    importing it: its __init__ imports torchvision."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "--lin was not given and the lpips package is not installed; pass --lin PATH to "
            "lpips/weights/v0.1/vgg.pth (inside the lpips wheel: `pip download lpips --no-deps`)")
    path = os.path.join(spec.submodule_search_locations[0], LIN_IN_PACKAGE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"the installed lpips package has no {path}; pass --lin PATH")
    return path


def _take(state: dict[str, np.ndarray], key: str, shape: tuple[int, ...], problems: list[str]):
    """state[key] if it is there with `shape`; else None, noting the problem."""
    if key not in state:
        problems.append(f"missing {key}")
    elif state[key].shape != shape:
        problems.append(f"{key}: shape {state[key].shape} != {shape}")
    else:
        return state[key]
    return None


def to_arrays(vgg16: dict[str, np.ndarray], lin: dict[str, np.ndarray],
              source: str = "the state dicts") -> dict[str, np.ndarray]:
    """torchvision VGG16 + lpips linear state dicts -> {.npz key: array} in `LPIPS`'s layout:
    conv weights [O, I, 3, 3] -> kernels [3, 3, I, O], lin{k}.model.1.weight [1, C, 1, 1] -> [C].
    Missing keys and wrong shapes are reported under their PyTorch names; the VGG16 classifier
    is not needed and left out."""
    params = expected_params()
    arrays, problems = {}, []
    for name, i in torchvision_indices().items():
        kh, kw, cin, cout = params["vgg"][name]["kernel"].shape
        weight = _take(vgg16, f"features.{i}.weight", (cout, cin, kh, kw), problems)
        bias = _take(vgg16, f"features.{i}.bias", (cout,), problems)
        if weight is not None and bias is not None:
            arrays[array_name(("vgg", name, "kernel"))] = weight.transpose(2, 3, 1, 0)
            arrays[array_name(("vgg", name, "bias"))] = bias
    for k in range(len(VGG16_STAGES)):
        (c,) = params[f"lin{k}"].shape
        weight = _take(lin, f"lin{k}.model.1.weight", (1, c, 1, 1), problems)
        if weight is not None:
            arrays[array_name((f"lin{k}",))] = weight.reshape(c)
    if problems:
        raise ValueError(f"{source} are not torchvision's vgg16 (not vgg16_bn) and lpips' "
                         "v0.1 vgg.pth: " + "; ".join(problems[:8]))
    return arrays


def convert(vgg16_path: str, lin_path: str | None, out: str) -> int:
    """Write the converted weights to `out`; returns how many arrays (31). They go through the
    loader's own check first, so a wrong file fails here rather than at training time."""
    lin_path = lin_path or lpips_package_lin()
    source = f"{vgg16_path} and {lin_path}"
    arrays = to_arrays(read_torch(vgg16_path), read_torch(lin_path), source)
    params_from_arrays(arrays, source)
    np.savez(out, **arrays)
    return len(arrays)
