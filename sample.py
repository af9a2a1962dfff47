"""Sample images from a trained GigaGAN workdir.

    python sample.py --workdir runs/demo --prompt "a red circle" --n 16 --seed 0 --out grid.png

Restoring a workdir needs the checkpoint format of the trainer (issue 6), which is not in the
code base yet; until then this checks its arguments and stops with exit code 3.
"""

import os

from absl import app, flags

from gigagan_jax.cli import fail, parse_flags

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir to restore G_ema from.")
_PROMPT = flags.DEFINE_multi_string("prompt", [], "Prompt(s) to sample.")
_N = flags.DEFINE_integer("n", 16, "Images per prompt.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")
_OUT = flags.DEFINE_string("out", "grid.png", "Output PNG grid.")


def main(argv):
    del argv
    if not _WORKDIR.value or not os.path.isdir(_WORKDIR.value):
        fail(f"--workdir {_WORKDIR.value!r} is not a directory")
    fail("restoring checkpoints is not implemented yet (trainer and checkpoints: issue 6)", code=3)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
