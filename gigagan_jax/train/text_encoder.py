"""The frozen CLIP a run conditions on: a user's local HF folder, or a small one trained here.

`config.clip.path` set: load it (text tower only when nothing needs the image tower).
Empty: train a small CLIP on the run's own training data once, save it as `WORKDIR/clip` (HF
layout) and reuse it on resume, so sampling and evaluation read the same encoder back.
"""

from __future__ import annotations

import os

import ml_collections

from gigagan_jax.models.clip import Clip, load_clip
from gigagan_jax.train.state import uses_vision_aided


def needs_clip(config: ml_collections.ConfigDict) -> bool:
    return config.model.conditioning == "text" or uses_vision_aided(config)


def needs_image_tower(config: ml_collections.ConfigDict) -> bool:
    text = config.model.conditioning == "text"
    upsampler_fallback = (config.task == "upsampler" and config.loss.perceptual_weight > 0
                          and not config.loss.lpips_path and config.loss.perceptual_clip_weight > 0)
    return (text and (config.loss.clip_weight > 0 or upsampler_fallback)) or uses_vision_aided(config)


def data_spec(config: ml_collections.ConfigDict) -> str:
    """config.data as the `--data` argument of gigagan_jax.tools.train_clip."""
    d = config.data
    if d.kind == "shapes":
        return "shapes"
    if d.kind == "tfds":
        return f"tfds:{d.name}" + (f":{d.path}" if d.path else "")
    return f"{d.kind}:{d.path}" if d.path else d.kind


def clip_dir(workdir: str) -> str:
    return os.path.join(workdir, "clip")


def train_small_clip(config: ml_collections.ConfigDict, out: str) -> None:
    """Train the project's small CLIP with text width = config.model.text_encoder_dim."""
    from gigagan_jax.tools import train_clip

    argv = ["--data", data_spec(config), "--out", out, "--steps", str(config.clip.train_steps),
            "--text-width", str(config.model.text_encoder_dim), "--seed", str(config.train.seed),
            "--num-examples", str(config.data.num_examples),
            "--holdout", str(max(100, min(1000, config.data.num_examples // 10))),
            "--batch", str(min(128, config.data.num_examples // 4)),
            "--image-size", str(min(config.model.resolution, 64))]
    if config.data.kind == "shapes":  # the GAN's shapes are drawn this way: the CLIP must know them
        argv += ["--shape-scale", str(config.data.shape_scale),
                 "--shape-positions", ",".join(config.data.shape_positions)]
    print(f"config.clip.path is empty: training a small CLIP on the training data -> {out}", flush=True)
    code = train_clip.main(argv)
    if code:
        raise RuntimeError(f"training the small CLIP failed (exit code {code})")


def provide_clip(config: ml_collections.ConfigDict, workdir: str) -> Clip | None:
    """The run's frozen CLIP (None when the model needs none), checked against the config."""
    if not needs_clip(config):
        return None
    path = config.clip.path or clip_dir(workdir)
    if not config.clip.path and not os.path.exists(os.path.join(path, "config.json")):
        train_small_clip(config, path)
    clip = load_clip(path, text_only=not needs_image_tower(config))
    if config.model.conditioning == "text" and clip.text_dim != config.model.text_encoder_dim:
        raise ValueError(f"the CLIP at {path} has {clip.text_dim}-wide text tokens but "
                         f"config.model.text_encoder_dim={config.model.text_encoder_dim}")
    if clip.context_length != config.model.text_len:
        raise ValueError(f"the CLIP at {path} has context length {clip.context_length} but "
                         f"config.model.text_len={config.model.text_len}")
    return clip
