"""The layout of a run folder (WORKDIR), and the one way the project reads and writes it.

    WORKDIR/checkpoints/<step>/      Orbax steps + manifest.sha256.json (gigagan_jax.checkpoint)
    WORKDIR/checkpoints_set_aside/   steps a restarted run could not verify, moved out of the way
    WORKDIR/clip/                    the small CLIP trained for the run when config.clip.path = ""
                                     (with its own manifest.sha256.json)
    WORKDIR/samples/step_N.png       periodic sample grids, with prompts.txt naming their rows
    WORKDIR/tensorboard/             training scalars
    WORKDIR/eval/step_N/             evaluation reports (gigagan_jax.eval)
    WORKDIR/summary.json             the last training run's summary

Outside any run, `user_cache_dir` holds what runs share on one machine: compiled executables
(`xla/`), small CLIPs keyed by their data and recipe (`small_clip/<key>/`), the adaptive conv
implementation measured fastest per shape (`kernel_impl/`) and the CPU conv library measured
fastest (`cpu_convs/`).

WORKDIR may be a local folder or a bucket URL (`gs://bucket/run`, also s3://, az://): a pod's
hosts share no disk, but they share a bucket. Every file the project writes there goes through
`etils.epath` (as Orbax's do), never through `open` / `os`, so a URL works wherever a folder does;
TensorBoard's event files go through tensorboardX, which writes gs:// and s3:// itself.
"""

from __future__ import annotations

import os
import sys
import uuid
from types import ModuleType

from etils import epath


def tensorboardx() -> ModuleType:
    """The tensorboardX package, imported without PyTorch unless PyTorch is already loaded:
    tensorboardX imports it when installed only to accept its tensors, which we never pass, and
    that import is 3-8 s of a process's start on a 2-core machine. (A None entry in sys.modules
    makes `import torch` raise ImportError, which tensorboardX handles.)"""
    hide = "torch" not in sys.modules
    if hide:
        sys.modules["torch"] = None
    try:
        import tensorboardX
    finally:
        if hide:
            del sys.modules["torch"]
    return tensorboardX


def user_cache_dir(name: str) -> str:
    """$GIGAGAN_JAX_CACHE/name, default ~/.cache/gigagan_jax/name: local to this machine."""
    return os.path.join(os.path.expanduser(os.environ.get("GIGAGAN_JAX_CACHE") or "~/.cache/gigagan_jax"), name)


def checkpoint_dir(workdir: str) -> str:
    return join(workdir, "checkpoints")


def clip_dir(workdir: str) -> str:
    return join(workdir, "clip")


def samples_dir(workdir: str) -> str:
    return join(workdir, "samples")


def sample_grid_path(workdir: str, step: int) -> str:
    return join(samples_dir(workdir), f"step_{step:07d}.png")


def tensorboard_dir(workdir: str) -> str:
    return join(workdir, "tensorboard")


def eval_dir(workdir: str, step: int) -> str:
    return join(workdir, "eval", f"step_{step}")


def summary_path(workdir: str) -> str:
    return join(workdir, "summary.json")


# ---- the path layer: local folders and bucket URLs alike --------------------------------------
def is_url(path: str) -> bool:
    """A bucket URL (gs://, s3://, ...) rather than a local path."""
    return "://" in str(path)


def join(path: str, *parts: str) -> str:
    """`os.path.join` that keeps a URL a URL."""
    return str(epath.Path(path).joinpath(*parts)) if is_url(path) else os.path.join(path, *parts)


def absolute(path: str) -> str:
    return str(path) if is_url(path) else os.path.abspath(path)


def exists(path: str) -> bool:
    return epath.Path(path).exists()


def is_dir(path: str) -> bool:
    return epath.Path(path).is_dir()


def make_dirs(path: str) -> None:
    epath.Path(path).mkdir(parents=True, exist_ok=True)


def open_file(path: str, mode: str = "r"):
    """A file object for `path` (text modes read and write UTF-8); writing creates its folder."""
    target = epath.Path(path)
    if "r" not in mode:
        target.parent.mkdir(parents=True, exist_ok=True)
    return target.open(mode, **({} if "b" in mode else {"encoding": "utf-8"}))


def write_text(path: str, text: str) -> None:
    """`write_bytes` of `text` in UTF-8."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str, data: bytes) -> None:
    """Write `data` in one go, creating the folder: a reader never sees half of it (on a local
    disk a temporary file is renamed over the old one; a bucket object appears whole)."""
    target = epath.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if is_url(path):
        target.write_bytes(data)
        return
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    tmp.replace(target)


def files_under(folder: str) -> list[str]:
    """Every file below `folder`, as sorted paths relative to it."""
    root = epath.Path(folder)
    return sorted(str((directory / name).relative_to(root))
                  for directory, _, names in root.walk() for name in names)


def blocking_file(path: str) -> str | None:
    """The file at local `path` or at its nearest existing ancestor: what stops a folder being made there."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return None if os.path.isdir(path) else path


def folder_problem(path: str) -> str | None:
    """Why a folder cannot be made at local `path` ('is a file, ...' / 'lies under ...'), or None."""
    blocker = blocking_file(path)
    if blocker is None:
        return None
    if blocker == os.path.abspath(path):
        return "is a file, not a folder"
    return f"lies under {blocker}, which is a file, not a folder"
