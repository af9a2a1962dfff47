"""Test helper: read a run's whole train state back from its checkpoints, onto a given mesh."""

import functools
from typing import Optional

import jax

from gigagan_jax.checkpoint import Checkpointer, abstract_with_shardings
from gigagan_jax.models.build import build_discriminator, build_generator
from gigagan_jax.train.sharding import param_shardings
from gigagan_jax.train.step import GanSteps
from gigagan_jax.workdir import checkpoint_dir


def restore_train_state(workdir: str, config, mesh, step: Optional[int] = None):
    """(step, TrainState, data position) of `step` (default: the newest verified), verified first."""
    init = GanSteps(config, build_generator(config), build_discriminator(config)).init_state
    shardings = param_shardings(jax.eval_shape(functools.partial(init, boxed=True), jax.random.PRNGKey(0)), mesh)
    checkpointer = Checkpointer(checkpoint_dir(workdir), read_only=True)
    step = checkpointer.sound_step() if step is None else step
    abstract = abstract_with_shardings(jax.eval_shape(init, jax.random.PRNGKey(0)), shardings)
    state, data, _ = checkpointer.restore(step, abstract)
    checkpointer.close()
    return step, state, data
