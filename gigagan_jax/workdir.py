"""The layout of a run folder (WORKDIR), in one place: training writes it, sampling and
evaluation read it, and none of them needs to import the other to know where things are.

    WORKDIR/checkpoints/<step>/      Orbax steps + manifest.sha256.json (gigagan_jax.checkpoint)
    WORKDIR/clip/                    the small CLIP trained for the run when config.clip.path = ""
    WORKDIR/samples/step_N.png       periodic sample grids, with prompts.txt naming their rows
    WORKDIR/tensorboard/             training scalars
    WORKDIR/eval/step_N/             evaluation reports (gigagan_jax.eval)
    WORKDIR/summary.json             the last training run's summary
"""

from __future__ import annotations

import os


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(workdir, "checkpoints")


def clip_dir(workdir: str) -> str:
    return os.path.join(workdir, "clip")


def samples_dir(workdir: str) -> str:
    return os.path.join(workdir, "samples")


def sample_grid_path(workdir: str, step: int) -> str:
    return os.path.join(samples_dir(workdir), f"step_{step:07d}.png")


def tensorboard_dir(workdir: str) -> str:
    return os.path.join(workdir, "tensorboard")


def eval_dir(workdir: str, step: int) -> str:
    return os.path.join(workdir, "eval", f"step_{step}")


def summary_path(workdir: str) -> str:
    return os.path.join(workdir, "summary.json")
