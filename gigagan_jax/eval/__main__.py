"""Evaluate a trained workdir: FID, CLIP-FID, precision/recall, CLIP score, sampling speed.

    python -m gigagan_jax.eval --workdir runs/demo [--step N] [--num_images 2000] \
        [--inception_path pt_inception-2015-12-05-6726825d.pth] [--clip_path DIR] [--out_dir DIR]

Real images and prompts come from the run's own data config (its captions drive the
generator); G_ema is restored from the checkpoint. Without --inception_path, FID and
precision/recall are skipped (with a message saying how to get the weights) and the CLIP-space
metrics use the run's CLIP (its own small one, or --clip_path). Writes OUT_DIR/report.json
and TensorBoard scalars.
"""

from __future__ import annotations

import os

import jax
from absl import flags

from gigagan_jax.cli import check_folder_flag, define_truncation_flag, fail, run_command
from gigagan_jax.config import NOISE_MODES

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir to evaluate.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: newest verified).")
_NUM = flags.DEFINE_integer("num_images", 2000, "Images per side (real and generated).", lower_bound=1)
_BATCH = flags.DEFINE_integer("batch_size", 64, "Sampling / feature batch size.", lower_bound=1)
_INCEPTION = flags.DEFINE_string("inception_path", None, "FID Inception weights (.pth or converted .npz).")
_CLIP = flags.DEFINE_string("clip_path", None, "CLIP folder for CLIP-FID / CLIP score (default: the run's).")
_OUT = flags.DEFINE_string("out_dir", None, "Report directory (default: WORKDIR/eval/step_N).")
_TRUNCATION = define_truncation_flag("Truncation psi for the generated images (text-conditioned runs).")
_NOISE = flags.DEFINE_enum("noise_mode", "random", NOISE_MODES,
                           "G's noise inputs: 'random' (as in training, so the metrics measure the generator "
                           "that was trained), 'const' (one fixed map, sample.py's default) or 'none'.")


def main(argv):
    del argv
    if not _WORKDIR.value:
        fail("--workdir is required")
    check_folder_flag("--workdir", _WORKDIR.value)
    if _OUT.value:
        check_folder_flag("--out_dir", _OUT.value)
    from gigagan_jax.checkpoint import CheckpointError
    from gigagan_jax.data.pipeline import InputPipeline
    from gigagan_jax.eval.report import evaluate
    from gigagan_jax.generate.restore import load_trained_generator
    from gigagan_jax.generate.sample import sample_label_pairs, sample_pairs, sampling_mesh
    from gigagan_jax.pixels import to_signed
    from gigagan_jax.pretrained.clip import load_clip
    from gigagan_jax.pretrained.inception import load_inception
    from gigagan_jax.workdir import clip_dir, eval_dir

    try:
        trained = load_trained_generator(_WORKDIR.value, _STEP.value, sampling_mesh())  # data-parallel
        inception = load_inception(_INCEPTION.value) if _INCEPTION.value else None
        text = trained.generator.spec.text_conditioned
        clip_path = _CLIP.value or trained.config.clip.path or (clip_dir(_WORKDIR.value) if text else None)
        clip = load_clip(clip_path) if clip_path else None
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        fail(str(e), code=1)
    if inception is None:
        print("no --inception_path: skipping FID and precision/recall (FID weights: "
              "pt_inception-2015-12-05-6726825d.pth from the pytorch-fid releases on GitHub)")
    if trained.generator.spec.conditioning == "none" or trained.config.task != "t2i":
        fail("gigagan_jax.eval evaluates base models conditioned on text or classes; "
             "for the upsampler use python -m acceptance.upsampler_quality")
    if not text and _TRUNCATION.value != 1:
        fail("--truncation (toward the per-prompt mean w) needs a text-conditioned run; this one is class-conditional")
    if inception is None and clip is None:
        fail("a class-conditional run has no CLIP of its own: give --inception_path and/or --clip_path")

    config = trained.config
    config.train.batch_size = _BATCH.value
    config.data.random_flip = False
    real = InputPipeline(config, process_index=0, process_count=1)
    prompts = InputPipeline(config, process_index=0, process_count=1)
    prompts.set_state({**prompts.get_state(), "batch": 10_000})  # other examples than the real side

    next_seed = [0]

    def sample_fn(conditions):  # image i of the whole evaluation uses seed i
        seeds = list(range(next_seed[0], next_seed[0] + len(conditions)))
        next_seed[0] += len(conditions)
        if text:
            images = sample_pairs(trained, conditions, seeds, _TRUNCATION.value, _BATCH.value, _NOISE.value)
        else:
            images = sample_label_pairs(trained, conditions, seeds, _BATCH.value, _NOISE.value)
        return to_signed(images)

    out_dir = _OUT.value or eval_dir(_WORKDIR.value, trained.step)
    conditions = (list(b["caption"]) if text else list(b["label"]) for b in prompts)  # held-out captions / classes
    metrics = evaluate((b["image"] for b in real), conditions, sample_fn,
                       num_images=_NUM.value, out_dir=out_dir, inception=inception, clip=clip,
                       step=trained.step, metadata={"workdir": _WORKDIR.value, "devices": jax.device_count(),
                                 "noise_mode": _NOISE.value, "truncation": _TRUNCATION.value},
                       with_clip_score=text)
    real.close()
    prompts.close()
    for name, value in metrics.items():
        print(f"{name:>24s}: {value:.4f}" if isinstance(value, float) else f"{name:>24s}: {value}")
    print(f"report -> {os.path.join(out_dir, 'report.json')}")


def run() -> None:
    """Console entry point `gigagan-eval` (and `python -m gigagan_jax.eval`)."""
    run_command(main, __doc__)


if __name__ == "__main__":
    run()
