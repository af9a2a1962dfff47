"""Restore a trained generator (G_ema + its text encoder) from a workdir.

Only G_ema is read from the checkpoint (D and the optimiser states stay on disk), onto one
device or replicated over a sampling mesh: one CPU is enough. The checkpoint's sha256 manifest is verified
first, so a corrupt file is a `CheckpointError` naming it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax
import ml_collections
from flax.core import meta
from jax.sharding import Mesh, NamedSharding, PartitionSpec, SingleDeviceSharding

from gigagan_jax.checkpoint import Checkpointer, CheckpointError
from gigagan_jax.models.build import build_generator
from gigagan_jax.models.generator import Generator, init_generator
from gigagan_jax.pretrained.clip import Clip, load_clip
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


def load_trained_generator(workdir: str, step: Optional[int] = None, mesh: Optional[Mesh] = None) -> TrainedGenerator:
    """G_ema of `step` (default: the newest verified), on the first device, or replicated over
    `mesh` for data-parallel sampling (`generate.sample.sampling_mesh()`)."""
    if not is_dir(workdir):
        raise FileNotFoundError(f"workdir {workdir} does not exist")
    checkpointer = Checkpointer(checkpoint_dir(workdir), read_only=True)
    if not checkpointer.all_steps():
        raise CheckpointError(f"no checkpoints in {checkpointer.directory}")
    if step is None:
        step = checkpointer.latest_verified_step()
        if step is None:
            raise CheckpointError(f"no verified checkpoint in {checkpointer.directory}")
    checkpointer.verify(step)
    config = ml_collections.ConfigDict(checkpointer.restore_config(step))
    generator = build_generator(config)
    sharding = SingleDeviceSharding(jax.local_devices()[0]) if mesh is None else NamedSharding(mesh, PartitionSpec())
    abstract = jax.eval_shape(lambda: meta.unbox(init_generator(generator, jax.random.PRNGKey(0))["params"]))
    abstract = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), abstract)
    params = checkpointer.restore_subtree(step, "g_ema", abstract)
    checkpointer.close()
    clip = None
    if generator.spec.text_conditioned:
        clip = load_clip(config.clip.path or clip_dir(workdir), text_only=True)
    return TrainedGenerator(config, generator, params, clip, step, mesh)
