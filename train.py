"""Train GigaGAN.

    python train.py --config configs/demo.py --workdir runs/demo [--config.train.batch_size=16 ...]

Today this validates the config against the devices present and builds the generator
abstractly (printing its size). The training loop, discriminator and checkpoints are not in
the code base yet (issues 4 and 6), so it then stops with exit code 3 instead of pretending.
"""

from absl import app, flags

from gigagan_jax.cli import define_config_flag, fail, parse_flags, validated
from gigagan_jax.tools.param_count import generator_param_counts

_CONFIG = define_config_flag()
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")


def main(argv):
    del argv
    config = validated(_CONFIG)
    if not _WORKDIR.value:
        fail("--workdir is required")
    total = sum(generator_param_counts(config).values())
    print(f"config valid; generator: {total / 1e6:.2f} M parameters at {config.model.resolution} px")
    fail("the training loop is not implemented yet (discriminator: issue 4, trainer: issue 6)", code=3)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
