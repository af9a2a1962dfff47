"""An exported model: everything needed to sample a trained generator, and nothing else.

    DIR/gigagan.json                what the folder holds (format, task, step, images seen, sizes)
    DIR/config.json                 the training config (`config.clip.path` cleared: the CLIP is here)
    DIR/g_ema.safetensors           G_ema's parameters, one tensor per leaf, named "module/.../leaf"
    DIR/text_encoder/config.json    the CLIP it was trained with (Hugging Face CLIPConfig) ...
    DIR/text_encoder/flax_model.msgpack   ... its text tower and projection only
    DIR/text_encoder/bpe_simple_vocab_16e6.txt.gz   the tokenizer's merge list (OpenAI BPE)
    DIR/README.md                   a model card
    DIR/manifest.sha256.json        sha256 of every file above, verified before loading

A workdir holds the whole train state (D, both optimisers, ~15 GB for t2i_64) behind Orbax and a
CLIP wherever the run found it; a model folder is G_ema in safetensors (readable by any framework)
plus its own text encoder, so it moves between machines and loads on any device count.

Truncation pulls toward the per-prompt mean w, a deterministic function of G_ema (the mapping
network averaged over 256 fixed latents per prompt, `sample.per_prompt_mean_w`): it has no table
to store, and an exported model truncates exactly as its workdir does.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from typing import Any, Optional

import jax
import ml_collections
import numpy as np
from flax import serialization
from flax.traverse_util import flatten_dict, unflatten_dict
from jax.sharding import Mesh
from safetensors.numpy import load_file, save

from gigagan_jax.checkpoint import (MANIFEST, MODEL_FORMAT, CheckpointError, sha256_file, verify_manifest,
                                    write_manifest)
from gigagan_jax.generate.restore import TrainedGenerator, placed_params_target
from gigagan_jax.models.build import build_generator
from gigagan_jax.pretrained.clip import TEXT_KEYS, Clip, load_clip
from gigagan_jax.pretrained.tokenize import BPE_PATH, BPE_SHA256

FOLDER_FORMAT = 1  # raised whenever the layout above changes meaning
INFO = "gigagan.json"
CONFIG = "config.json"
WEIGHTS = "g_ema.safetensors"
TEXT_ENCODER = "text_encoder"
CARD = "README.md"
SEP = "/"


def is_model_folder(path: str) -> bool:
    return os.path.isfile(os.path.join(path, INFO))


def _flat(params: Any) -> dict[str, np.ndarray]:
    """{"a/b/leaf": array}: safetensors' flat namespace (Flax names never contain '/')."""
    return {SEP.join(path): np.asarray(leaf) for path, leaf in flatten_dict(jax.device_get(params)).items()}


def _save_text_encoder(clip: Clip, folder: str) -> None:
    """The CLIP's text tower in Hugging Face layout (`load_clip(folder, text_only=True)` reads it)."""
    os.makedirs(folder, exist_ok=True)
    clip.config.to_json_file(os.path.join(folder, "config.json"))
    text_params = {k: v for k, v in jax.device_get(clip.params).items() if k in TEXT_KEYS}
    with open(os.path.join(folder, "flax_model.msgpack"), "wb") as f:
        f.write(serialization.msgpack_serialize(text_params))
    shutil.copyfile(BPE_PATH, os.path.join(folder, os.path.basename(BPE_PATH)))


def _model_card(info: dict, config: ml_collections.ConfigDict, metrics: Optional[dict]) -> str:
    lines = [f"# GigaGAN ({info['task']}, {info['resolution']} px, {info['conditioning']}-conditioned)", "",
             "Exported by `python -m gigagan_jax.export` from a gigagan_jax training run "
             "(a JAX/Flax reimplementation of Kang et al., *Scaling up GANs for Text-to-Image Synthesis*, "
             "CVPR 2023).", "",
             "| | |", "|---|---|",
             f"| training steps | {info['step']} |",
             f"| training images seen | {info['images_seen']:,} |",
             f"| generator parameters | {info['num_params']:,} |",
             f"| trained from | `{info['source']}` |",
             f"| exported | {info['exported']} |", ""]
    if metrics:
        lines += ["## Metrics (from the run's evaluation report)", "", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value:.4g} |" if isinstance(value, (int, float)) else f"| {name} | {value} |"
                  for name, value in sorted(metrics.items())]
        lines.append("")
    lines += ["## Use", "", "```python", "from gigagan_jax import GigaGANPipeline",
              "pipe = GigaGANPipeline.from_pretrained(\"THIS_FOLDER\")",
              "images = pipe([\"a prompt\"], seeds=[0, 1], truncation=0.7)  # PIL images", "```", "",
              "or `python sample.py --model THIS_FOLDER --prompt \"a prompt\" --seeds 0-7 --outdir out/`.", "",
              "## Training config", "", "```json", config.to_json(indent=1), "```", ""]
    return "\n".join(lines)


def export_model(trained: TrainedGenerator, out: str, source: str, metrics: Optional[dict] = None) -> dict:
    """Write `trained` (G_ema + its text encoder) as a model folder at `out` (which must not
    exist: an export is never merged into another). Written beside `out` and renamed into place,
    so a crash leaves no half-folder. Returns the folder's `gigagan.json` record."""
    if os.path.exists(out):
        raise FileExistsError(f"{out} already exists; export into a new folder")
    config = ml_collections.ConfigDict(trained.config.to_dict())
    config.clip.path = ""  # the text encoder is part of the folder
    flat = _flat(trained.params)
    info = {"format": FOLDER_FORMAT, "model_format": MODEL_FORMAT, "task": config.task,
            "resolution": int(trained.generator.spec.resolution),
            "conditioning": trained.generator.spec.conditioning, "step": int(trained.step),
            "images_seen": int(trained.step) * int(config.train.batch_size),
            "num_params": int(sum(a.size for a in flat.values())), "source": source,
            "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    tmp = f"{out.rstrip(os.sep)}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    with open(os.path.join(tmp, WEIGHTS), "wb") as f:  # not save_file: it makes the file owner-only
        f.write(save(flat, metadata={"format": str(FOLDER_FORMAT)}))
    with open(os.path.join(tmp, CONFIG), "w", encoding="utf-8") as f:
        f.write(config.to_json(indent=1))
    if trained.clip is not None:
        _save_text_encoder(trained.clip, os.path.join(tmp, TEXT_ENCODER))
    with open(os.path.join(tmp, CARD), "w", encoding="utf-8") as f:
        f.write(_model_card(info, config, metrics))
    with open(os.path.join(tmp, INFO), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1)
    write_manifest(tmp)
    os.rename(tmp, out)
    return info


def read_info(folder: str) -> dict:
    """The folder's `gigagan.json`, after checking it is a model folder this version reads."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"model folder {folder} does not exist")
    if not is_model_folder(folder):
        raise FileNotFoundError(f"{folder} is not an exported model (no {INFO}; a training workdir is "
                                "read with --workdir, or exported with `python -m gigagan_jax.export`)")
    with open(os.path.join(folder, INFO), encoding="utf-8") as f:
        info = json.load(f)
    if info.get("format") != FOLDER_FORMAT or info.get("model_format") != MODEL_FORMAT:
        raise CheckpointError(f"{folder} is model folder format {info.get('format')} / model format "
                              f"{info.get('model_format')}; this gigagan_jax reads {FOLDER_FORMAT} / {MODEL_FORMAT}")
    return info


def load_model(folder: str, mesh: Optional[Mesh] = None) -> TrainedGenerator:
    """The exported generator, on the first device or replicated over `mesh` (as
    `restore.load_trained_generator`, whose samplers it feeds). Every file is verified against
    the manifest first."""
    info = read_info(folder)
    if not os.path.exists(os.path.join(folder, MANIFEST)):
        raise CheckpointError(f"{folder} has no {MANIFEST}: its files cannot be verified")
    verify_manifest(folder)
    with open(os.path.join(folder, CONFIG), encoding="utf-8") as f:
        config = ml_collections.ConfigDict(json.load(f))
    generator = build_generator(config, "sample", num_devices=1 if mesh is None else mesh.size)
    expected = {SEP.join(path): leaf for path, leaf in flatten_dict(placed_params_target(generator, mesh)).items()}
    flat = load_file(os.path.join(folder, WEIGHTS))
    if set(flat) != set(expected):
        missing, extra = sorted(set(expected) - set(flat)), sorted(set(flat) - set(expected))
        raise CheckpointError(f"{folder}/{WEIGHTS} does not match its config.json: "
                              f"missing {missing[:3]}, unexpected {extra[:3]}")
    for name, leaf in expected.items():
        if flat[name].shape != leaf.shape or flat[name].dtype != leaf.dtype:
            raise CheckpointError(f"{folder}/{WEIGHTS}: {name} is {flat[name].dtype}{list(flat[name].shape)}, "
                                  f"the model needs {leaf.dtype}{list(leaf.shape)}")
    params = unflatten_dict({tuple(k.split(SEP)): jax.device_put(v, expected[k].sharding) for k, v in flat.items()})
    clip = None
    if generator.spec.text_conditioned:
        clip = _load_text_encoder(folder)
    return TrainedGenerator(config, generator, params, clip, int(info["step"]), mesh)


def _load_text_encoder(folder: str) -> Clip:
    """The folder's own text tower, with the tokenizer merge list it was trained on checked."""
    own = os.path.join(folder, TEXT_ENCODER)
    bpe = os.path.join(own, os.path.basename(BPE_PATH))
    if sha256_file(bpe) != BPE_SHA256:
        raise CheckpointError(f"{bpe} is not the OpenAI CLIP merge list this gigagan_jax tokenizes with")
    return load_clip(own, text_only=True)
