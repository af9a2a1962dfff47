"""Sample images from a trained GigaGAN workdir, or edit in its latent space.

    python sample.py --workdir runs/demo --prompt "a red circle" --prompt "a blue square" \
        --n 8 --seed 0 [--truncation 0.7] [--step 2000] --out grid.png [--out_dir imgs/]
    python sample.py --workdir runs/demo --prompts_file prompts.txt --n 4 --out grid.png
    python sample.py --workdir runs/demo --mode style_mix --prompt "a red circle" --seed 1 --seed2 2 \
        --crossover 2 --out mix.png
    python sample.py --workdir runs/demo --mode prompt_mix --prompt "a red circle" --prompt "a blue square" \
        --seed 1 --crossover 2 --out prompt_mix.png
    python sample.py --workdir runs/demo --mode interpolate --prompt "a red circle" \
        --prompt "a blue square" --seed 1 --seed2 2 --frames 8 --out strip.png [--gif anim.gif]
    python sample.py --workdir runs/demo --upsampler_workdir runs/upsampler --prompt "a red circle" --n 4 \
        --out big.png
    python sample.py --workdir runs/upsampler --upsample_images photos/ --prompt "a red circle" \
        --out pairs.png --out_dir upsampled/

Restores G_ema (and the run's CLIP text encoder) on whatever devices are present.
  grid:        one row per prompt (or --class_id for class-conditional models), --n seeds each;
               --out_dir also writes one PNG per image and prompts.jsonl ({file, prompt, seed}).
  style_mix:   [coarse seed, fine seed, mix] for each prompt: levels below --crossover from
               --seed, the rest from --seed2.
  prompt_mix:  [first prompt, second prompt, mix] for --seed: levels below --crossover read the
               first prompt (its w and its tokens in cross-attention), the rest the second.
  interpolate: --frames images moving in w and text space from (first prompt, --seed) to
               (last prompt, --seed2), as a strip PNG and optionally an animated GIF.
  --upsampler_workdir UP (grid mode): base images chained through the upsampler run UP in one
               jitted call; the grid and --out_dir hold the upsampled images.
  --upsample_images DIR: --workdir is an upsampler run; upsample every image in DIR (centre
               crop, resized to its input size), one --prompt (or none) for all of them.
--noise_mode: G's noise inputs; "const" (default, StyleGAN's gen_images convention) adds one
fixed noise map per layer at its trained strength, "random" fresh noise per batch (as training;
then an image also depends on its batch), "none" no noise. With "const" or "none" the same seed
gives byte-identical images. A missing workdir or prompts file, a step that does
not exist, a corrupt checkpoint or any other bad flag value is a one-line error with a non-zero
exit code, given before the model is loaded where the flag alone tells.
"""

import codecs
import io
import json
import os

import numpy as np
from absl import app, flags
from PIL import Image

from gigagan_jax.cli import check_file_flag, check_folder_flag, define_truncation_flag, fail, parse_flags
from gigagan_jax.config import MAX_SEED, NOISE_MODES

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir to restore G_ema from.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest verified one).")
_MODE = flags.DEFINE_enum("mode", "grid", ["grid", "style_mix", "prompt_mix", "interpolate"], "What to produce.")
_PROMPT = flags.DEFINE_multi_string("prompt", [], "Prompt(s); one grid row each.")
_PROMPTS_FILE = flags.DEFINE_string("prompts_file", None, "One prompt per line, or jsonl with a 'prompt' field.")
_CLASS_ID = flags.DEFINE_multi_integer("class_id", [], "Class id(s), for class-conditional models: 0 .. "
                                       "config.model.num_classes - 1.", lower_bound=0)
_N = flags.DEFINE_integer("n", 8, "Images per prompt (grid mode).", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "First seed; image k of a row uses seed + k.", lower_bound=0,
                             upper_bound=MAX_SEED - 1)
_SEED2 = flags.DEFINE_integer("seed2", 1, "Second seed (style_mix: fine levels; interpolate: end point).",
                              lower_bound=0, upper_bound=MAX_SEED - 1)
_CROSSOVER = flags.DEFINE_integer("crossover", 2, "style_mix / prompt_mix: levels below this come from --seed / "
                                  "the first prompt.", lower_bound=0)
_FRAMES = flags.DEFINE_integer("frames", 8, "interpolate: number of frames.", lower_bound=2)
_TRUNCATION = define_truncation_flag("Truncation psi toward the per-prompt mean w (1 = none).")
_NOISE = flags.DEFINE_enum("noise_mode", "const", NOISE_MODES, "G's noise inputs (grid mode, --upsample_images): "
                           "one fixed map per layer (const), fresh per batch as in training (random), or none.")
_OUT = flags.DEFINE_string("out", "grid.png", "Output PNG.")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "grid mode: also write each image and prompts.jsonl here.")
_GIF = flags.DEFINE_string("gif", None, "interpolate mode: also write an animated GIF.")
_UPSAMPLER_WORKDIR = flags.DEFINE_string("upsampler_workdir", None, "grid mode: chain this upsampler run after "
                                         "the base model (same prompts and seeds).")
_UPSAMPLER_STEP = flags.DEFINE_integer("upsampler_step", None, "Checkpoint step of --upsampler_workdir.")
_UPSAMPLE_IMAGES = flags.DEFINE_string("upsample_images", None, "Upsample the images (png/jpg/webp) in this folder "
                                       "with the upsampler in --workdir instead of sampling; --prompt (one, or "
                                       "none for an empty prompt) or --class_id conditions all of them.")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def read_prompts() -> list[str]:
    """The --prompt values (an empty one included), then the --prompts_file lines: text or jsonl with a
    'prompt' field. Blank lines are skipped (an editor's trailing newline is no empty-prompt row) and
    a UTF-8 BOM (Windows editors) is dropped."""
    prompts = list(_PROMPT.value)
    path = _PROMPTS_FILE.value
    if path:
        if not os.path.isfile(path):
            fail(f"prompts file {path} {'is a folder' if os.path.isdir(path) else 'does not exist'}")
        try:
            with open(path, "rb") as f:
                data = f.read().removeprefix(codecs.BOM_UTF8)
            text = data.decode("utf-8")
        except OSError as e:
            fail(f"cannot read prompts file {path}: {e.strerror}")
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            fail(f"{path}:{line}: not UTF-8 text; save the prompts file as UTF-8")
        found = 0
        for number, line in enumerate(io.StringIO(text, newline=None), 1):  # \n, \r\n or \r
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if line.lstrip().startswith("{"):
                try:
                    line = json.loads(line)["prompt"]
                except (ValueError, KeyError, TypeError):
                    fail(f"{path}:{number}: a jsonl line needs a string 'prompt' field")
                if not isinstance(line, str):
                    fail(f"{path}:{number}: 'prompt' must be a string")
            prompts.append(line)
            found += 1
        if not found:
            fail(f"prompts file {path} holds no prompts (blank lines are skipped)")
    return prompts


def check_mode_flags() -> None:
    """Flags the chosen mode would silently ignore are refused: the user expects them to act."""
    grid = _MODE.value == "grid"
    if _GIF.value and _MODE.value != "interpolate":
        fail(f"--gif writes the interpolate mode's frames; --mode is {_MODE.value}")
    if _OUT_DIR.value and not grid:
        fail(f"--out_dir writes grid mode's images (or --upsample_images' outputs); --mode is {_MODE.value}")
    if _TRUNCATION.value != 1 and (not grid or _UPSAMPLE_IMAGES.value):
        fail("--truncation acts on grid mode's samples (the edits and --upsample_images draw untruncated w); "
             f"--mode is {_MODE.value}{' with --upsample_images' if _UPSAMPLE_IMAGES.value else ''}")
    if _UPSAMPLE_IMAGES.value and (not grid or _UPSAMPLER_WORKDIR.value or flags.FLAGS["n"].present):
        fail("--upsample_images is its own mode (one output per input, --workdir is the upsampler): "
             "no --mode, --upsampler_workdir or --n")
    for holder, mode in ((_N, "grid"), (_NOISE, "grid"), (_FRAMES, "interpolate"), (_SEED2, "style_mix or interpolate"),
                         (_CROSSOVER, "style_mix or prompt_mix")):
        if flags.FLAGS[holder.name].present and _MODE.value not in mode.split(" or "):
            fail(f"--{holder.name} is for --mode {mode}; --mode is {_MODE.value}")


def check_class_ids(trained, workdir: str) -> None:
    """--class_id must name a class of the model: a text model would ignore it, and an id past
    num_classes one-hot encodes to zeros, no class at all."""
    if trained.generator.spec.conditioning != "class":
        fail(f"--class_id is for class-conditional models; {workdir} is conditioned on "
             f"{trained.generator.spec.conditioning!r}")
    num_classes = trained.config.model.num_classes
    for class_id in _CLASS_ID.value:
        if class_id >= num_classes:
            fail(f"--class_id {class_id} is not a class of {workdir}: its ids are 0 .. {num_classes - 1} "
                 f"(config.model.num_classes={num_classes})")


def write_images(images, prompts, seeds, out_dir: str) -> None:
    from gigagan_jax.generate.grid import save_png

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "prompts.jsonl"), "w", encoding="utf-8") as f:
        for i, (image, prompt, seed) in enumerate(zip(images, prompts, seeds)):
            name = f"{i:05d}.png"
            save_png(image, os.path.join(out_dir, name))
            f.write(json.dumps({"file": name, "prompt": prompt, "seed": int(seed)}) + "\n")


def read_lowres_images(folder: str, size: int) -> tuple[list[str], np.ndarray]:
    """(file names, uint8 [N, size, size, 3]): each image centre-cropped to a square and resized."""
    from gigagan_jax.data.imageops import DECODE_ERRORS, load_image

    if not os.path.isdir(folder):
        fail(f"--upsample_images folder {folder} does not exist")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_SUFFIXES))
    if not names:
        fail(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    images = []
    for name in names:  # decoded, cropped and resized exactly as training data is
        try:
            images.append(load_image(os.path.join(folder, name), size))
        except DECODE_ERRORS as e:
            fail(f"cannot read {os.path.join(folder, name)}: {e}")
    return names, np.stack(images)


def upsample_folder(trained) -> None:
    """--upsample_images: one upsampled PNG per input (under --out_dir) and an [input | output] grid."""
    from gigagan_jax.generate.grid import make_grid, nearest_resize, save_png
    from gigagan_jax.generate.sample import upsample_images

    spec = trained.generator.spec
    if trained.config.task != "upsampler":
        fail(f"{_WORKDIR.value} is not an upsampler run (config.task={trained.config.task!r})")
    prompts = read_prompts()
    if len(prompts) > 1:
        fail(f"--upsample_images conditions every image on one prompt, got {len(prompts)}")
    names, lowres = read_lowres_images(_UPSAMPLE_IMAGES.value, spec.input_resolution)
    n = len(names)
    labels = None
    if spec.conditioning == "class":
        if len(_CLASS_ID.value) != 1:
            fail("this upsampler is class-conditional: give exactly one --class_id")
        labels = [_CLASS_ID.value[0]] * n
    prompt = prompts[0] if prompts else ""
    images = upsample_images(trained, lowres, [prompt] * n, [_SEED.value] * n, labels, noise_mode=_NOISE.value)
    shown = np.asarray(nearest_resize(lowres, spec.resolution))
    save_png(make_grid(np.stack([shown, images], 1).reshape((-1,) + images.shape[1:]), rows=n), _OUT.value)
    if _OUT_DIR.value:
        os.makedirs(_OUT_DIR.value, exist_ok=True)
        with open(os.path.join(_OUT_DIR.value, "prompts.jsonl"), "w", encoding="utf-8") as f:
            for name, image in zip(names, images):
                out_name = os.path.splitext(name)[0] + ".png"
                save_png(image, os.path.join(_OUT_DIR.value, out_name))
                f.write(json.dumps({"file": out_name, "source": name, "prompt": prompt, "seed": _SEED.value}) + "\n")
    print(f"wrote {_OUT.value} ([input | output] for {n} images) from step {trained.step} of {_WORKDIR.value}")


def main(argv):
    del argv
    if not _WORKDIR.value:
        fail("--workdir is required")
    check_folder_flag("--workdir", _WORKDIR.value)
    if _UPSAMPLER_WORKDIR.value:
        check_folder_flag("--upsampler_workdir", _UPSAMPLER_WORKDIR.value)
    check_file_flag("--out", _OUT.value)
    if _GIF.value:
        check_file_flag("--gif", _GIF.value)
    if _OUT_DIR.value:
        check_folder_flag("--out_dir", _OUT_DIR.value)
    if _MODE.value == "grid" and not _UPSAMPLE_IMAGES.value and _SEED.value + _N.value > MAX_SEED:
        fail(f"--seed {_SEED.value} with --n {_N.value} reaches seed {_SEED.value + _N.value - 1}; seeds must be "
             f"below 2**32 = {MAX_SEED}")
    check_mode_flags()
    prompts = read_prompts()
    if _MODE.value == "prompt_mix" and len(prompts) != 2:
        fail(f"--mode prompt_mix needs exactly two prompts (coarse levels, fine levels), got {len(prompts)}")
    # Imported once the flags are known to be good: the model stack takes seconds.
    from gigagan_jax.checkpoint import CheckpointError
    from gigagan_jax.generate import edit
    from gigagan_jax.generate.grid import make_grid, save_png
    from gigagan_jax.generate.restore import load_trained_generator
    from gigagan_jax.generate.sample import sample_and_upsample, sample_classes, sample_pairs, sampling_mesh

    # Grids and folders of images split each batch over every local device; the edits make a
    # handful of images from one latent pair and stay on one.
    mesh = sampling_mesh() if _MODE.value == "grid" else None
    try:
        trained = load_trained_generator(_WORKDIR.value, _STEP.value, mesh)
        upsampler = None
        if _UPSAMPLER_WORKDIR.value:
            upsampler = load_trained_generator(_UPSAMPLER_WORKDIR.value, _UPSAMPLER_STEP.value, mesh)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        fail(str(e), code=1)
    # Conditions the model would ignore, refused before anything is compiled.
    if _CLASS_ID.value:
        check_class_ids(trained, _WORKDIR.value)
        if upsampler is not None and upsampler.generator.spec.conditioning == "class":
            check_class_ids(upsampler, _UPSAMPLER_WORKDIR.value)
    conditioning = trained.generator.spec.conditioning
    if conditioning != "text" and prompts:
        fail(f"--prompt / --prompts_file are for text-conditioned models; {_WORKDIR.value} is conditioned on "
             f"{conditioning!r}")
    if conditioning != "text" and _TRUNCATION.value != 1:
        fail(f"--truncation (toward the per-prompt mean w) needs a text-conditioned model; {_WORKDIR.value} is "
             f"conditioned on {conditioning!r}")
    os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
    if _UPSAMPLE_IMAGES.value:
        try:
            upsample_folder(trained)
        except ValueError as e:
            fail(str(e))
        return
    if trained.config.task == "upsampler":
        fail(f"{_WORKDIR.value} is an upsampler run: give it as --upsampler_workdir after a base model, "
             "or upsample images with --upsample_images")
    if upsampler is not None and (_MODE.value != "grid" or upsampler.config.task != "upsampler"):
        fail("--upsampler_workdir needs --mode grid and an upsampler run")
    text = trained.generator.spec.text_conditioned
    if text and not prompts:
        fail("this model is text-conditioned: give --prompt or --prompts_file")
    if not text and (_MODE.value != "grid" or not _CLASS_ID.value):
        fail("this model is class-conditional: use --mode grid with at least one --class_id")

    try:
        if _MODE.value == "style_mix":
            images = [edit.style_mix_images(trained, p, _SEED.value, _SEED2.value, _CROSSOVER.value)
                      for p in prompts]
            save_png(make_grid(np.concatenate(images), rows=len(prompts)), _OUT.value)
        elif _MODE.value == "prompt_mix":
            images = edit.prompt_mix_images(trained, prompts[0], prompts[1], _SEED.value, _CROSSOVER.value)
            save_png(make_grid(images, rows=1), _OUT.value)
        elif _MODE.value == "interpolate":
            frames = edit.interpolation_frames(trained, prompts[0], prompts[-1], _SEED.value, _SEED2.value,
                                                  _FRAMES.value)
            save_png(make_grid(frames, rows=1), _OUT.value)
            if _GIF.value:
                os.makedirs(os.path.dirname(os.path.abspath(_GIF.value)), exist_ok=True)
                Image.fromarray(frames[0]).save(_GIF.value, save_all=True, loop=0, duration=120,
                                                append_images=[Image.fromarray(f) for f in frames[1:]])
        elif text:
            all_prompts = [p for p in prompts for _ in range(_N.value)]
            seeds = [_SEED.value + k for _ in prompts for k in range(_N.value)]
            if upsampler is not None:
                _, images = sample_and_upsample(trained, upsampler, all_prompts, seeds, truncation=_TRUNCATION.value,
                                                noise_mode=_NOISE.value)
            else:
                images = sample_pairs(trained, all_prompts, seeds, _TRUNCATION.value, noise_mode=_NOISE.value)
            save_png(make_grid(images, rows=len(prompts)), _OUT.value)
            if _OUT_DIR.value:
                write_images(images, all_prompts, seeds, _OUT_DIR.value)
        elif upsampler is not None:
            labels = [c for c in _CLASS_ID.value for _ in range(_N.value)]
            seeds = [_SEED.value + k for _ in _CLASS_ID.value for k in range(_N.value)]
            _, images = sample_and_upsample(trained, upsampler, [""] * len(seeds), seeds, labels,
                                            noise_mode=_NOISE.value)
            save_png(make_grid(images, rows=len(_CLASS_ID.value)), _OUT.value)
        else:
            images = sample_classes(trained, _CLASS_ID.value, _N.value, _SEED.value, noise_mode=_NOISE.value)
            save_png(make_grid(images, rows=len(_CLASS_ID.value)), _OUT.value)
    except ValueError as e:
        fail(str(e))
    chained = f" upsampled by step {upsampler.step} of {_UPSAMPLER_WORKDIR.value}" if upsampler is not None else ""
    print(f"wrote {_OUT.value} ({_MODE.value}) from step {trained.step} of {_WORKDIR.value}{chained}")


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
