"""Restore a trained generator (G_ema + its text encoder) from a workdir.

Only G_ema is read from the checkpoint (D and the optimiser states stay on disk), onto one
device or replicated over a sampling mesh: one CPU is enough. The checkpoint's sha256 manifest is verified
first, so a corrupt file is a `CheckpointError` naming it; without `step`, a corrupt or
unverified newest step is skipped (with a warning) for the newest sound one. The CLIP is checked
against the fingerprint the checkpoint recorded, so sampling never conditions on another encoder.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Optional

import jax
import ml_collections
from flax.core import meta
from jax.sharding import Mesh, NamedSharding, PartitionSpec, SingleDeviceSharding

from gigagan_jax.checkpoint import (MANIFEST, Checkpointer, CheckpointError, check_same_clip, files_digest,
                                    verify_manifest)
from gigagan_jax.models.build import build_generator
from gigagan_jax.models.generator import Generator, init_generator
from gigagan_jax.pretrained.clip import Clip, load_clip, source_files
from gigagan_jax.workdir import checkpoint_dir, clip_dir, is_dir


@dataclasses.dataclass
class TrainedGenerator:
    """A generator with the params to sample it (usually G_ema) and the CLIP its prompts go through."""

    config: ml_collections.ConfigDict
    generator: Generator
    params: Any  # G_ema
    clip: Optional[Clip]
    step: int
    mesh: Optional[Mesh] = None  # sample with each batch split over its devices; None: one device


def run_clip_path(config: ml_collections.ConfigDict, workdir: str) -> str:
    """Where a run's CLIP lives: config.clip.path, or the small one trained into WORKDIR/clip."""
    return config.clip.path or clip_dir(workdir)


def clip_record(path: str) -> dict:
    """The fingerprint a checkpoint keeps of the CLIP it was trained with: a hash of the files
    `load_clip` reads."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"CLIP folder {path!r} does not exist")
    return {"path": os.path.abspath(path), "sha256": files_digest(path, source_files(path))}


def load_run_clip(path: str, own: bool, text_only: bool) -> Clip:
    """Load a run's CLIP; the run's own small CLIP (WORKDIR/clip) is verified against its
    manifest first, so a flipped or truncated file is refused by name."""
    if own:
        if os.path.exists(os.path.join(path, MANIFEST)):
            verify_manifest(path)
        else:
            logging.warning("%s has no %s (written by an older version): its bytes are not verified", path, MANIFEST)
    return load_clip(path, text_only=text_only)


def placed_params_target(generator: Generator, mesh: Optional[Mesh]) -> Any:
    """G's parameters as ShapeDtypeStructs carrying where sampling wants them: on the first local
    device, or replicated over `mesh`. What a checkpoint or an exported model is restored onto."""
    sharding = SingleDeviceSharding(jax.local_devices()[0]) if mesh is None else NamedSharding(mesh, PartitionSpec())
    abstract = jax.eval_shape(lambda: meta.unbox(init_generator(generator, jax.random.PRNGKey(0))["params"]))
    return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), abstract)


def load_trained_generator(workdir: str, step: Optional[int] = None, mesh: Optional[Mesh] = None,
                           clip_path: Optional[str] = None) -> TrainedGenerator:
    """G_ema of `step` (default: the newest verified), on the first device, or replicated over
    `mesh` for data-parallel sampling (`generate.sample.sampling_mesh()`). `clip_path`: read the
    run's CLIP from there instead of where the run found it (a workdir copied to another machine);
    it must be the same CLIP, byte for byte (the checkpoint's fingerprint is checked)."""
    if not is_dir(workdir):
        raise FileNotFoundError(f"workdir {workdir} does not exist")
    checkpointer = Checkpointer(checkpoint_dir(workdir), read_only=True)
    if not checkpointer.all_steps():
        raise CheckpointError(f"no checkpoints in {checkpointer.directory}")
    if step is None:
        step = checkpointer.sound_step()
        if step is None:
            raise CheckpointError(f"no verified checkpoint in {checkpointer.directory} (steps "
                                  f"{checkpointer.all_steps()} were skipped; the warnings above say why)")
    else:
        checkpointer.verify(step)
    config = ml_collections.ConfigDict(checkpointer.restore_config(step))
    generator = build_generator(config, "sample", num_devices=1 if mesh is None else mesh.size)
    params = checkpointer.restore_subtree(step, "g_ema", placed_params_target(generator, mesh))
    saved_clip = checkpointer.restore_clip_record(step)
    checkpointer.close()
    clip = None
    if generator.spec.text_conditioned:
        path = clip_path or run_clip_path(config, workdir)
        check_same_clip(saved_clip, clip_record(path), checkpointer.step_dir(step),
                        key="--clip_path" if clip_path else "config.clip.path")
        clip = load_run_clip(path, own=not config.clip.path and not clip_path, text_only=True)
    return TrainedGenerator(config, generator, params, clip, step, mesh)
