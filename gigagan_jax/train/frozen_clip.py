"""The frozen CLIP a run conditions on: a user's local HF folder, or a small one trained here.

`config.clip.path` set: load it (text tower only when nothing needs the image tower).
Empty: train a small CLIP on the run's own training data once, save it as `WORKDIR/clip` (HF
layout) and reuse it on resume, so sampling and evaluation read the same encoder back.
"""

from __future__ import annotations

import json
import os

import ml_collections

from gigagan_jax.config import needs_clip, needs_image_tower
from gigagan_jax.hosts import main_first, main_host_int
from gigagan_jax.pretrained.clip import Clip, load_clip
from gigagan_jax.train.small_clip import SmallClipSpec, train_small_clip
from gigagan_jax.workdir import clip_dir, is_url


def provide_clip(config: ml_collections.ConfigDict, workdir: str) -> Clip | None:
    """The run's frozen CLIP (None when the model needs none), checked against the config."""
    if not needs_clip(config):
        return None
    if not config.clip.path and is_url(workdir):
        raise ValueError(f"config.clip.path is empty, and the small CLIP trained in its place lives in WORKDIR/clip, "
                         f"which must be on local disk, not {workdir}: train it once with python -m "
                         "gigagan_jax.tools.train_clip, copy it to every host, and set config.clip.path")
    path = config.clip.path or clip_dir(workdir)
    if not config.clip.path and main_host_int(not os.path.exists(os.path.join(path, "config.json"))):
        def train_and_save() -> None:
            print(f"config.clip.path is empty: training a small CLIP on the training data -> {path}", flush=True)
            metrics = train_small_clip(config, path, SmallClipSpec.for_run(config))
            print(json.dumps(metrics, indent=2), flush=True)  # held-out retrieval: is the CLIP any good?

        main_first("small_clip_written", train_and_save)  # multi-host: the others wait, then all load it
    clip = load_clip(path, text_only=not needs_image_tower(config))
    if config.model.conditioning == "text" and clip.text_dim != config.model.text_encoder_dim:
        raise ValueError(f"the CLIP at {path} has {clip.text_dim}-wide text tokens but "
                         f"config.model.text_encoder_dim={config.model.text_encoder_dim}")
    if clip.context_length != config.model.text_len:
        raise ValueError(f"the CLIP at {path} has context length {clip.context_length} but "
                         f"config.model.text_len={config.model.text_len}")
    return clip
