"""Evaluate a trained workdir: FID, CLIP-FID, precision/recall, CLIP score, sampling speed.

    python -m gigagan_jax.eval --workdir runs/demo [--step N] [--num_images 2000] \
        [--data SPEC] [--inception_path pt_inception-2015-12-05-6726825d.pth] [--fid_resize clean|legacy] \
        [--ref_stats FILE.npz | --save_ref_stats FILE.npz] [--vgg16_path vgg16-397923af.pth] \
        [--score_clip_path DIR] [--score_prompt_prefix "A photo depicts "] [--clip_path DIR] [--out_dir DIR]

Real images and prompts: with --data SPEC (shapes | emoji[:DIR] | folder:DIR | tfds:NAME[:DATA_DIR])
the first --num_images examples of that set in a fixed order (the same for every run), read at the
model's resolution; the generator is conditioned on their captions. Without it, the run's own
training stream: real images from its start, prompts from further on (the report says so).
G_ema is restored from the checkpoint. Each metric's name carries its protocol (fid_clean,
precision_vgg16, clip_score_vit_b32, ...); report.json spells the protocols out and lists what was
skipped and why. Without --inception_path there is no FID (a message says how to get the
weights); without --vgg16_path precision/recall use the Inception's features; without
--score_clip_path the CLIP score uses the CLIP-FID CLIP (--clip_path or the run's). Writes
OUT_DIR/report.json and TensorBoard scalars.
"""

from __future__ import annotations

import os

import jax
from absl import flags

from gigagan_jax.cli import check_file_flag, check_folder_flag, define_truncation_flag, fail, run_command
from gigagan_jax.config import NOISE_MODES, default_config
from gigagan_jax.data.spec import SPEC_SYNTAX, apply_data_spec
from gigagan_jax.eval.clip_score import PAPER_PROMPT_PREFIX, clip_model_name
from gigagan_jax.eval.fid_resize import FID_RESIZES

EVAL_DATA_SEED = 0  # the order of --data's examples: one for every run, so runs share their reals
PROMPT_OFFSET_BATCHES = 10_000  # without --data, prompts start this many batches into the training stream

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir to evaluate.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: newest verified).")
_NUM = flags.DEFINE_integer("num_images", 2000, "Images per side (real and generated).", lower_bound=1)
_BATCH = flags.DEFINE_integer("batch_size", 64, "Sampling / feature batch size.", lower_bound=1)
_DATA = flags.DEFINE_string("data", None, f"Real images and prompts from this data set: {SPEC_SYNTAX} "
                            "(default: the run's training stream).")
_INCEPTION = flags.DEFINE_string("inception_path", None, "FID Inception weights (.pth or converted .npz).")
_FID_RESIZE = flags.DEFINE_enum("fid_resize", "clean", list(FID_RESIZES),
                                "How images reach the Inception's 299 x 299 input: 'clean' (clean-fid: PIL "
                                "bicubic, the protocol of GigaGAN's published FIDs) or 'legacy' (pytorch-fid: "
                                "bilinear inside the network).")
_REF_STATS = flags.DEFINE_string("ref_stats", None, "FID reference statistics (.npz with mu, sigma: ours, "
                                 "pytorch-fid's or clean-fid's) used instead of real images' features.")
_SAVE_REF_STATS = flags.DEFINE_string("save_ref_stats", None, "Write the real images' FID statistics here "
                                      "(.npz, with their count and --fid_resize), for later --ref_stats.")
_VGG16 = flags.DEFINE_string("vgg16_path", None, "torchvision VGG16 weights (vgg16-397923af.pth or converted "
                             ".npz) for precision/recall on VGG16 features (default: Inception features).")
_CLIP = flags.DEFINE_string("clip_path", None, "CLIP folder for CLIP-FID (default: the run's); also the CLIP "
                            "score's when --score_clip_path is not given.")
_SCORE_CLIP = flags.DEFINE_string("score_clip_path", None, "CLIP folder (Hugging Face layout) for the CLIP score, "
                                  "e.g. openai/clip-vit-base-patch32 for the paper protocol (default: the "
                                  "CLIP-FID CLIP, i.e. the one the run trained against).")
_PREFIX = flags.DEFINE_string("score_prompt_prefix", PAPER_PROMPT_PREFIX,
                              "Put before each prompt when scoring it with CLIP (the paper protocol's).")
_OUT = flags.DEFINE_string("out_dir", None, "Report directory (default: WORKDIR/eval/step_N).")
_TRUNCATION = define_truncation_flag("Truncation psi for the generated images (text-conditioned runs).")
_NOISE = flags.DEFINE_enum("noise_mode", "random", NOISE_MODES,
                           "G's noise inputs: 'random' (as in training, so the metrics measure the generator "
                           "that was trained), 'const' (one fixed map, sample.py's default) or 'none'.")


def check_flags():
    """Flag combinations and files decided before anything is loaded; returns the reference
    statistics (None without --ref_stats)."""
    from gigagan_jax.eval.fid import load_stats

    if not _WORKDIR.value:
        fail("--workdir is required")
    check_folder_flag("--workdir", _WORKDIR.value)
    if _OUT.value:
        check_folder_flag("--out_dir", _OUT.value)
    if _DATA.value is not None:
        try:
            apply_data_spec(default_config().data, _DATA.value)
        except ValueError as e:
            fail(f"--data: {e}")
    if _REF_STATS.value and _SAVE_REF_STATS.value:
        fail("--ref_stats reads reference statistics and --save_ref_stats writes them; give one")
    for flag, value in (("--ref_stats", _REF_STATS.value), ("--save_ref_stats", _SAVE_REF_STATS.value)):
        if value and not _INCEPTION.value:
            fail(f"{flag} holds FID Inception statistics: give --inception_path too")
    if _SAVE_REF_STATS.value:
        check_file_flag("--save_ref_stats", _SAVE_REF_STATS.value)
    if not _REF_STATS.value:
        return None
    try:
        return load_stats(_REF_STATS.value, resize=_FID_RESIZE.value)
    except (FileNotFoundError, ValueError) as e:
        fail(f"--ref_stats {e}")


def eval_pipelines(config):
    """(real-image pipeline, prompt pipeline, what the report says about them). `config` is the
    run's; --data reads its own set with a copy of it."""
    from gigagan_jax.data.pipeline import InputPipeline

    if _DATA.value is None:
        config.train.batch_size = _BATCH.value
        config.data.random_flip = False
        real = InputPipeline(config, process_index=0, process_count=1)
        prompts = InputPipeline(config, process_index=0, process_count=1)
        prompts.set_state({**prompts.get_state(), "batch": PROMPT_OFFSET_BATCHES})  # other examples
        where = config.data.path or config.data.name
        return real, prompts, (f"the run's training stream (config.data.kind={config.data.kind!r}"
                               f"{f', {where!r}' if where else ''}): real images from its batch 0, prompts "
                               f"from its batch {PROMPT_OFFSET_BATCHES} on")
    config = config.copy_and_resolve_references()
    apply_data_spec(config.data, _DATA.value)
    config.data.random_flip = False
    config.train.batch_size = _BATCH.value
    config.train.seed = EVAL_DATA_SEED
    real = InputPipeline(config, process_index=0, process_count=1)
    if real.num_examples < _NUM.value:
        real.close()
        fail(f"--data {_DATA.value} holds {real.num_examples} examples, fewer than --num_images "
             f"{_NUM.value} (real images are not repeated)", code=1)
    prompts = InputPipeline(config, process_index=0, process_count=1)  # the same examples, in step
    return real, prompts, (f"--data {_DATA.value}: its first {_NUM.value} of {real.num_examples} examples "
                           f"in a fixed order (seed {EVAL_DATA_SEED}); prompts are their captions")


def main(argv):
    del argv
    ref_stats = check_flags()
    from gigagan_jax.checkpoint import CheckpointError
    from gigagan_jax.eval.report import evaluate
    from gigagan_jax.generate.restore import load_trained_generator
    from gigagan_jax.generate.sample import sample_label_pairs, sample_pairs, sampling_mesh
    from gigagan_jax.pixels import to_signed
    from gigagan_jax.pretrained.clip import load_clip
    from gigagan_jax.pretrained.inception import load_inception
    from gigagan_jax.pretrained.vgg16 import VGG16_URL, WEIGHTS_FILE, load_vgg16
    from gigagan_jax.workdir import clip_dir, eval_dir

    try:
        trained = load_trained_generator(_WORKDIR.value, _STEP.value, sampling_mesh())  # data-parallel
        text = trained.generator.spec.text_conditioned
        if _SCORE_CLIP.value and not text:
            fail("--score_clip_path scores prompts; this run is class-conditional")
        inception = load_inception(_INCEPTION.value) if _INCEPTION.value else None
        vgg16 = load_vgg16(_VGG16.value) if _VGG16.value else None
        clip_path = _CLIP.value or trained.config.clip.path or (clip_dir(_WORKDIR.value) if text else None)
        clip = load_clip(clip_path) if clip_path else None
        score_clip = (load_clip(_SCORE_CLIP.value) if _SCORE_CLIP.value else clip) if text else None
    except (CheckpointError, FileNotFoundError, ImportError, ValueError) as e:
        fail(str(e), code=1)
    if trained.generator.spec.conditioning == "none" or trained.config.task != "t2i":
        fail("gigagan_jax.eval evaluates base models conditioned on text or classes; "
             "for the upsampler use python -m acceptance.upsampler_quality")
    if not text and _TRUNCATION.value != 1:
        fail("--truncation (toward the per-prompt mean w) needs a text-conditioned run; this one is class-conditional")
    if inception is None and vgg16 is None and clip is None:
        fail("a class-conditional run has no CLIP of its own: give --inception_path, --vgg16_path and/or --clip_path")
    if inception is None:
        print("no --inception_path: skipping FID (FID weights: pt_inception-2015-12-05-6726825d.pth from the "
              "pytorch-fid releases on GitHub)")
    if vgg16 is None:
        print(f"no --vgg16_path: precision/recall on Inception features, not the published VGG16 ones "
              f"({WEIGHTS_FILE}: {VGG16_URL})")
    if score_clip is not None and not _SCORE_CLIP.value:
        print("no --score_clip_path: the CLIP score uses the CLIP-FID CLIP, not the paper's ViT-B/32")
    score_name = "train_clip"  # the run's own CLIP: G was trained against it
    if score_clip is not None and (_SCORE_CLIP.value or _CLIP.value):
        score_name = clip_model_name(score_clip.config)  # any other, by its shape

    try:
        real, prompts, reals_from = eval_pipelines(trained.config)
    except (FileNotFoundError, ValueError) as e:  # a --data folder that is not there or holds no images
        fail(str(e), code=1)
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
    conditions = (list(b["caption"]) if text else list(b["label"]) for b in prompts)
    metadata = {"workdir": _WORKDIR.value, "devices": jax.device_count(), "noise_mode": _NOISE.value,
                "truncation": _TRUNCATION.value, "reals": reals_from, "data": _DATA.value,
                "fid_resize": _FID_RESIZE.value, "inception_path": _INCEPTION.value, "vgg16_path": _VGG16.value,
                "clip_path": clip_path, "score_clip_path": _SCORE_CLIP.value or (clip_path if text else None),
                "score_prompt_prefix": _PREFIX.value if text else None, "ref_stats": _REF_STATS.value,
                "save_ref_stats": _SAVE_REF_STATS.value}
    try:
        report = evaluate(None if ref_stats is not None and _DATA.value is None else (b["image"] for b in real),
                          conditions, sample_fn, num_images=_NUM.value, out_dir=out_dir, inception=inception,
                          fid_resize=_FID_RESIZE.value, ref_stats=ref_stats, save_ref_stats=_SAVE_REF_STATS.value,
                          vgg16=vgg16, clip=clip, score_clip=score_clip, score_clip_name=score_name,
                          score_prompt_prefix=_PREFIX.value, step=trained.step, metadata=metadata)
    except ValueError as e:  # a data set that runs out, a class id outside the run's classes
        fail(str(e), code=1)
    finally:
        real.close()
        prompts.close()
    print(f"reals: {reals_from}")
    for name, value in report.metrics.items():
        print(f"{name:>24s}: {value:.4f}" if isinstance(value, float) else f"{name:>24s}: {value}")
    for name, reason in report.skipped.items():
        print(f"{name:>24s}: skipped ({reason})")
    print(f"report -> {os.path.join(out_dir, 'report.json')}")


def run() -> None:
    """Console entry point `gigagan-eval` (and `python -m gigagan_jax.eval`)."""
    run_command(main, __doc__)


if __name__ == "__main__":
    run()
