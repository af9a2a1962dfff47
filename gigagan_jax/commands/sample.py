"""Sample images from a trained GigaGAN (an exported model or a training workdir), or edit in its
latent space.

    python sample.py --model models/demo --prompt "a red circle" --prompt "a blue square" \
        --seeds 0-7,42 [--truncation 0.7] --outdir imgs/ [--out grid.png]
    python sample.py --workdir runs/demo --prompt "a red circle" --n 8 --seed 0 [--step 2000] \
        [--clip_path DIR] --out grid.png
    python sample.py --workdir runs/demo --prompts_file prompts.txt --n 4 --out grid.png
    python sample.py --model models/demo --mode style_mix --prompt "a red circle" --seed 1 --seed2 2 \
        --crossover 2 --out mix.png
    python sample.py --model models/demo --mode prompt_mix --prompt "a red circle" --prompt "a blue square" \
        --seed 1 --crossover 2 --out prompt_mix.png
    python sample.py --model models/demo --mode interpolate --prompt "a red circle" \
        --prompt "a blue square" --seed 1 --seed2 2 --frames 8 --out strip.png [--gif anim.gif]
    python sample.py --workdir runs/demo --upsampler_workdir runs/upsampler --prompt "a red circle" --n 4 \
        --out big.png
    python sample.py --workdir runs/upsampler --upsample_images photos/ --prompt "a red circle" \
        --out pairs.png --outdir upsampled/

Restores G_ema (and the CLIP text encoder it was trained with) on whatever devices are present:
from --model (`python -m gigagan_jax.export`'s folder) or from --workdir's checkpoint.
  grid:        one row per prompt (or --class_id for class-conditional models), one column per
               seed (--seeds, or --n from --seed); --out writes the grid, --outdir one PNG per image
               (seed0042.png; p01-seed0042.png with several prompts) and prompts.jsonl.
  style_mix:   [coarse seed, fine seed, mix] for each prompt: levels below --crossover from
               --seed, the rest from --seed2.
  prompt_mix:  [first prompt, second prompt, mix] for --seed: levels below --crossover read the
               first prompt (its w and its tokens in cross-attention), the rest the second.
  interpolate: --frames images moving in w and text space from (first prompt, --seed) to
               (last prompt, --seed2), as a strip PNG and optionally an animated GIF.
  --upsampler_workdir UP (grid mode): base images chained through the upsampler UP (a run or an
               export) in one jitted call; the grid and --outdir hold the upsampled images.
  --upsample_images DIR: the model is an upsampler; upsample every image in DIR (centre
               crop, resized to its input size), one --prompt (or none) for all of them.
--noise_mode: G's noise inputs; "const" (default, StyleGAN's gen_images convention) adds one
fixed noise map per layer at its trained strength, "random" fresh noise per batch (as training;
then an image also depends on its batch), "none" no noise. With "const" or "none" the same seed
gives byte-identical images. A missing model or prompts file, a step that does
not exist, a corrupt checkpoint or any other bad flag value is a one-line error with a non-zero
exit code, given before the model is loaded where the flag alone tells.
"""

import codecs
import io
import json
import os

import numpy as np
from absl import flags
from PIL import Image

from gigagan_jax.cli import check_file_flag, check_folder_flag, define_truncation_flag, fail, parse_seeds, run_command
from gigagan_jax.config import MAX_SEED, NOISE_MODES

DEFAULT_OUT = "grid.png"
_MODEL = flags.DEFINE_string("model", None, "Exported model folder (python -m gigagan_jax.export) to sample.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir to restore G_ema from (instead of --model).")
_STEP = flags.DEFINE_integer("step", None, "--workdir's checkpoint step (default: the newest verified one).")
_CLIP = flags.DEFINE_string("clip_path", None, "Read --workdir's CLIP from this folder instead of where the run found "
                            "it (a workdir copied to another machine); the same CLIP byte for byte.")
_MODE = flags.DEFINE_enum("mode", "grid", ["grid", "style_mix", "prompt_mix", "interpolate"], "What to produce.")
_PROMPT = flags.DEFINE_multi_string("prompt", [], "Prompt(s); one grid row each.")
_PROMPTS_FILE = flags.DEFINE_string("prompts_file", None, "One prompt per line, or jsonl with a 'prompt' field.")
_CLASS_ID = flags.DEFINE_multi_integer("class_id", [], "Class id(s), for class-conditional models: 0 .. "
                                       "config.model.num_classes - 1.", lower_bound=0)
_SEEDS = flags.DEFINE_string("seeds", None, "grid mode: the seeds of every row, as a list of seeds and ranges "
                             "(0-7,42); instead of --seed and --n.")
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
_OUT = flags.DEFINE_string("out", None, f"Output PNG: the grid, strip or mix (default {DEFAULT_OUT}; in grid mode "
                           "with --outdir, none unless given).")
_OUTDIR = flags.DEFINE_string("outdir", None, "grid mode: write each image here (seed0042.png, p01-seed0042.png "
                              "when several prompts, class003-seed0042.png) and prompts.jsonl; --upsample_images: "
                              "each output under its input's name.")
_GIF = flags.DEFINE_string("gif", None, "interpolate mode: also write an animated GIF.")
_UPSAMPLER_WORKDIR = flags.DEFINE_string("upsampler_workdir", None, "grid mode: chain this upsampler (a run, or "
                                         "an exported one) after the base model (same prompts and seeds).")
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
    if _OUTDIR.value and not grid:
        fail(f"--outdir writes grid mode's images (or --upsample_images' outputs); --mode is {_MODE.value}")
    if _SEEDS.value is not None and (not grid or _UPSAMPLE_IMAGES.value or flags.FLAGS["seed"].present
                                     or flags.FLAGS["n"].present):
        fail("--seeds lists grid mode's seeds, instead of --seed and --n")
    if _MODEL.value and (_STEP.value is not None or _CLIP.value):
        fail("--model is an exported model: one step, its own text encoder (--step and --clip_path are for "
             "--workdir)")
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


def image_name(row: int, rows: int, seed: int, class_id: int | None = None) -> str:
    """seed0042.png for a single row; p01-seed0042.png (prompt index) or class003-seed0042.png
    when several rows share a seed."""
    if class_id is not None and rows > 1:
        return f"class{class_id:03d}-seed{seed:04d}.png"
    return f"p{row:02d}-seed{seed:04d}.png" if rows > 1 else f"seed{seed:04d}.png"


def write_images(images, rows: list, seeds: list[int], outdir: str, text: bool) -> None:
    """One PNG per (row, seed) of a grid (row-major) and prompts.jsonl ({file, prompt | class_id, seed})."""
    from gigagan_jax.generate.grid import save_png

    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "prompts.jsonl"), "w", encoding="utf-8") as f:
        for i, image in enumerate(images):
            row, seed = divmod(i, len(seeds))
            seed = seeds[seed]
            name = image_name(row, len(rows), seed, None if text else rows[row])
            save_png(image, os.path.join(outdir, name))
            f.write(json.dumps({"file": name, "prompt" if text else "class_id": rows[row], "seed": seed}) + "\n")


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


def upsample_folder(trained, out: str) -> None:
    """--upsample_images: one upsampled PNG per input (under --outdir) and an [input | output] grid."""
    from gigagan_jax.generate.grid import make_grid, nearest_resize, save_png
    from gigagan_jax.generate.sample import upsample_images

    spec = trained.generator.spec
    if trained.config.task != "upsampler":
        fail(f"{source_name()} is not an upsampler (config.task={trained.config.task!r})")
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
    save_png(make_grid(np.stack([shown, images], 1).reshape((-1,) + images.shape[1:]), rows=n), out)
    if _OUTDIR.value:
        os.makedirs(_OUTDIR.value, exist_ok=True)
        with open(os.path.join(_OUTDIR.value, "prompts.jsonl"), "w", encoding="utf-8") as f:
            for name, image in zip(names, images):
                out_name = os.path.splitext(name)[0] + ".png"
                save_png(image, os.path.join(_OUTDIR.value, out_name))
                f.write(json.dumps({"file": out_name, "source": name, "prompt": prompt, "seed": _SEED.value}) + "\n")
    print(f"wrote {out} ([input | output] for {n} images) from step {trained.step} of {source_name()}")


def source_name() -> str:
    return _MODEL.value or _WORKDIR.value


def grid_seeds() -> list[int]:
    """Grid mode's seeds: --seeds, or --seed .. --seed + --n - 1."""
    if _SEEDS.value is not None:
        try:
            return parse_seeds(_SEEDS.value, MAX_SEED)
        except ValueError as e:
            fail(f"--seeds {_SEEDS.value}: {e}")
    if _SEED.value + _N.value > MAX_SEED:
        fail(f"--seed {_SEED.value} with --n {_N.value} reaches seed {_SEED.value + _N.value - 1}; seeds must be "
             f"below 2**32 = {MAX_SEED}")
    return list(range(_SEED.value, _SEED.value + _N.value))


def check_output_flags() -> str | None:
    """The picture to write (None: grid mode's samples with only --outdir), its flags checked."""
    out = _OUT.value
    if out is None and not (_MODE.value == "grid" and _OUTDIR.value and not _UPSAMPLE_IMAGES.value):
        out = DEFAULT_OUT
    if out is not None:
        check_file_flag("--out", out)
    if _GIF.value:
        check_file_flag("--gif", _GIF.value)
    if _OUTDIR.value:
        check_folder_flag("--outdir", _OUTDIR.value)
    return out


def main(argv):
    del argv
    if bool(_MODEL.value) == bool(_WORKDIR.value):
        fail("give the model to sample: --model DIR (an export) or --workdir W (a training run)")
    check_folder_flag("--model" if _MODEL.value else "--workdir", source_name())
    if _UPSAMPLER_WORKDIR.value:
        check_folder_flag("--upsampler_workdir", _UPSAMPLER_WORKDIR.value)
    out = check_output_flags()
    seeds = grid_seeds() if _MODE.value == "grid" and not _UPSAMPLE_IMAGES.value else []
    check_mode_flags()
    prompts = read_prompts()
    if _MODE.value == "prompt_mix" and len(prompts) != 2:
        fail(f"--mode prompt_mix needs exactly two prompts (coarse levels, fine levels), got {len(prompts)}")
    # Imported once the flags are known to be good: the model stack takes seconds.
    from gigagan_jax.checkpoint import CheckpointError
    from gigagan_jax.generate import edit
    from gigagan_jax.generate.grid import make_grid, save_png
    from gigagan_jax.generate.model_folder import load_model
    from gigagan_jax.generate.pipeline import GigaGANPipeline, load_generator
    from gigagan_jax.generate.sample import sampling_mesh

    # Grids and folders of images split each batch over every local device; the edits make a
    # handful of images from one latent pair and stay on one.
    mesh = sampling_mesh() if _MODE.value == "grid" else None
    try:
        if _MODEL.value:
            trained = load_model(_MODEL.value, mesh)
        else:
            trained = load_generator(_WORKDIR.value, mesh, _STEP.value, _CLIP.value)
        upsampler = None
        if _UPSAMPLER_WORKDIR.value:
            upsampler = load_generator(_UPSAMPLER_WORKDIR.value, mesh, _UPSAMPLER_STEP.value, _CLIP.value)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        fail(str(e), code=1)
    # Conditions the model would ignore, refused before anything is compiled.
    if _CLASS_ID.value:
        check_class_ids(trained, source_name())
        if upsampler is not None and upsampler.generator.spec.conditioning == "class":
            check_class_ids(upsampler, _UPSAMPLER_WORKDIR.value)
    conditioning = trained.generator.spec.conditioning
    if conditioning != "text" and prompts:
        fail(f"--prompt / --prompts_file are for text-conditioned models; {source_name()} is conditioned on "
             f"{conditioning!r}")
    if conditioning != "text" and _TRUNCATION.value != 1:
        fail(f"--truncation (toward the per-prompt mean w) needs a text-conditioned model; {source_name()} is "
             f"conditioned on {conditioning!r}")
    if out is not None:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    if _UPSAMPLE_IMAGES.value:
        try:
            upsample_folder(trained, out)
        except ValueError as e:
            fail(str(e))
        return
    if trained.config.task == "upsampler":
        fail(f"{source_name()} is an upsampler: give it as --upsampler_workdir after a base model, "
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
            save_png(make_grid(np.concatenate(images), rows=len(prompts)), out)
        elif _MODE.value == "prompt_mix":
            images = edit.prompt_mix_images(trained, prompts[0], prompts[1], _SEED.value, _CROSSOVER.value)
            save_png(make_grid(images, rows=1), out)
        elif _MODE.value == "interpolate":
            frames = edit.interpolation_frames(trained, prompts[0], prompts[-1], _SEED.value, _SEED2.value,
                                                  _FRAMES.value)
            save_png(make_grid(frames, rows=1), out)
            if _GIF.value:
                os.makedirs(os.path.dirname(os.path.abspath(_GIF.value)), exist_ok=True)
                Image.fromarray(frames[0]).save(_GIF.value, save_all=True, loop=0, duration=120,
                                                append_images=[Image.fromarray(f) for f in frames[1:]])
        else:
            rows = prompts if text else list(_CLASS_ID.value)
            images = GigaGANPipeline(trained, upsampler).sample(
                prompts if text else None, seeds, _TRUNCATION.value, None if text else rows, _NOISE.value,
                progress=True)
            if out is not None:
                save_png(make_grid(images, rows=len(rows)), out)
            if _OUTDIR.value:
                write_images(images, rows, seeds, _OUTDIR.value, text)
    except ValueError as e:
        fail(str(e))
    chained = f" upsampled by step {upsampler.step} of {_UPSAMPLER_WORKDIR.value}" if upsampler is not None else ""
    written = " and ".join(x for x in (out, _OUTDIR.value and f"{len(images)} images in {_OUTDIR.value}") if x)
    print(f"wrote {written} ({_MODE.value}) from step {trained.step} of {source_name()}{chained}")


def run() -> None:
    """Console entry point `gigagan-sample` (and `python sample.py`)."""
    run_command(main, __doc__)
