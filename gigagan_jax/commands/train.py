"""Train GigaGAN.

    python train.py --config configs/demo.py --workdir runs/demo [--config.train.num_steps=100 ...]

Resumes from the newest verified checkpoint in WORKDIR/checkpoints; SIGTERM/Ctrl-C save a
checkpoint and exit cleanly. Bad input (config, data, devices, a corrupt checkpoint) is a
one-line error with a non-zero exit code, raised before anything is compiled.
"""

import importlib.util

from absl import flags

from gigagan_jax.cli import check_folder_flag, define_config_flag, fail, run_command, validated

_CONFIG = define_config_flag()
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard logs and samples.")


def main(argv):
    del argv
    config = validated(_CONFIG)
    if not _WORKDIR.value:
        fail("--workdir is required")
    check_folder_flag("--workdir", _WORKDIR.value)
    if config.train.wandb_project and importlib.util.find_spec("wandb") is None:
        fail(f"config.train.wandb_project={config.train.wandb_project!r} needs wandb: pip install wandb")
    # The training stack (TFDS, transformers, torch for TensorBoard) takes seconds to import: not
    # before the flags are known to be good.
    from gigagan_jax.checkpoint import CheckpointError
    from gigagan_jax.train.loop import train
    from gigagan_jax.train.metrics import NonFiniteLossError

    try:
        train(config, _WORKDIR.value)
    except (CheckpointError, NonFiniteLossError, ValueError, FileNotFoundError) as e:
        fail(str(e), code=1)


def run() -> None:
    """Console entry point `gigagan-train` (and `python train.py`)."""
    run_command(main, __doc__)
