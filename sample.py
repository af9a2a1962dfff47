"""Sample images from a trained GigaGAN workdir.

    python sample.py --workdir runs/demo --prompt "a red circle" --prompt "a blue square" \
        --n 8 --seed 0 [--truncation 0.7] [--step 2000] --out grid.png

Restores G_ema (and the run's CLIP text encoder) on whatever devices are present and writes a
PNG grid, one row per prompt (or per --class-id for class-conditional models). The same seed
gives byte-identical images. A missing workdir, a step that does not exist or a corrupt
checkpoint is a one-line error with a non-zero exit code.
"""

import os

from absl import app, flags

from gigagan_jax.cli import fail, parse_flags
from gigagan_jax.train.checkpoint import CheckpointError

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir to restore G_ema from.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest verified one).")
_PROMPT = flags.DEFINE_multi_string("prompt", [], "Prompt(s) to sample; one grid row each.")
_CLASS_ID = flags.DEFINE_multi_integer("class_id", [], "Class id(s), for class-conditional models.")
_N = flags.DEFINE_integer("n", 8, "Images per prompt.")
_SEED = flags.DEFINE_integer("seed", 0, "First seed; image k of a row uses seed + k.")
_TRUNCATION = flags.DEFINE_float("truncation", 1.0, "Truncation psi toward the per-prompt mean w (1 = none).")
_OUT = flags.DEFINE_string("out", "grid.png", "Output PNG grid.")


def main(argv):
    del argv
    from gigagan_jax.inference import load_trained_generator, sample_classes, sample_prompts
    from gigagan_jax.sampling import make_grid, save_png

    if not _WORKDIR.value:
        fail("--workdir is required")
    if _N.value < 1:
        fail(f"--n must be >= 1, got {_N.value}")
    try:
        trained = load_trained_generator(_WORKDIR.value, _STEP.value)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        fail(str(e), code=1)
    if trained.generator.spec.text_conditioned:
        if not _PROMPT.value:
            fail("this model is text-conditioned: give at least one --prompt")
        images = sample_prompts(trained, _PROMPT.value, _N.value, _SEED.value, _TRUNCATION.value)
        rows = len(_PROMPT.value)
    else:
        if not _CLASS_ID.value:
            fail("this model is class-conditional: give at least one --class_id")
        images = sample_classes(trained, _CLASS_ID.value, _N.value, _SEED.value)
        rows = len(_CLASS_ID.value)
    os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
    save_png(make_grid(images, rows=rows), _OUT.value)
    print(f"wrote {_OUT.value}: {images.shape[0]} images from step {trained.step} of {_WORKDIR.value}")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
