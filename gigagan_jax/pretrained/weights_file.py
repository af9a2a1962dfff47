"""Reading a frozen network's weights from a file: a PyTorch state dict (.pth, needs torch) or its
.npz conversion (numpy only). Every loader goes through here, so a wrong file fails the same
way everywhere: one ValueError naming it, never a pickle traceback."""

from __future__ import annotations

import os

import numpy as np


def read_weights(path: str, convert_command: str) -> dict[str, np.ndarray]:
    """{state-dict key: float32 array} of `path`. `convert_command` is how to make the .npz, named
    when torch is missing."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    if path.endswith(".npz"):
        try:
            with np.load(path) as data:
                return {k: np.asarray(data[k], np.float32) for k in data.files}
        except (OSError, ValueError) as e:  # not a zip, or arrays of objects
            raise ValueError(f"{path} is not an .npz of weights ({type(e).__name__})") from None
    try:
        import torch
    except ImportError as e:
        raise ImportError(f"{path} is a PyTorch file and torch is not installed; install torch (CPU) or "
                          f"convert it elsewhere with `{convert_command}` and pass the .npz") from e
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError ... for other files
        raise ValueError(f"{path} is not a PyTorch state dict ({type(e).__name__})") from None
    if not isinstance(state, dict) or not all(hasattr(v, "float") for v in state.values()):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    return {k: v.float().numpy() for k, v in state.items()}


def convert_to_npz(src: str, dst: str, read, check) -> int:
    """Write `read(src)`'s arrays to `dst` (.npz) under their PyTorch names; returns how many.
    `check(state, src)` maps them onto the network first, so a wrong file fails here and not at
    evaluation time."""
    state = read(src)
    check(state, src)
    np.savez(dst, **state)
    return len(state)
