"""The frozen CLIPs a run reads: the one it conditions on (a user's local HF folder, or a small
one trained here), and the vision-aided D's own image backbone.

`config.clip.path` set: load it (text tower only when nothing needs the image tower).
Empty: train a small CLIP on the run's own training data once, save it as `WORKDIR/clip` (HF
layout) and reuse it on resume, so sampling and evaluation read the same encoder back. It is
trained into a temporary folder, hashed into its own manifest and renamed into place, so a
killed run never leaves half a CLIP behind, and a flipped byte is refused on the next load.
With `config.clip.reuse_trained` (default), one trained before on the same data with the same
recipe is copied from the machine's cache (`workdir.user_cache_dir("small_clip")`) instead.

Either way the run records the CLIP's fingerprint (`generate.restore.clip_record`) in every
checkpoint: resuming or sampling with another encoder of the same width is refused instead of
silently changing what every prompt means.

`config.loss.vision_aided_clip_path` set (and the vision-aided D on): that folder's image tower
alone is loaded as the D's backbone (paper: CLIP ViT-B/32), fingerprinted the same way; empty:
the heads read the conditioning CLIP's image tower.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import uuid

import ml_collections

from gigagan_jax.checkpoint import write_manifest
from gigagan_jax.config import has_vision_backbone, needs_clip, needs_image_tower
from gigagan_jax.generate.restore import load_run_clip, run_clip_path
from gigagan_jax.hosts import all_hosts, main_first, main_host_int
from gigagan_jax.pretrained.clip import Clip, load_clip
from gigagan_jax.train.small_clip import SmallClipSpec, train_small_clip
from gigagan_jax.workdir import is_url, user_cache_dir


def _train_into_place(config: ml_collections.ConfigDict, path: str, seconds: float | None) -> None:
    """Train the small CLIP (within `seconds`, if given) into a temporary sibling, hash it, then
    rename it to `path`."""
    for stale in glob.glob(f"{path}.partial-*"):  # left by a run killed while training it
        shutil.rmtree(stale, ignore_errors=True)
    partial = f"{path}.partial-{uuid.uuid4().hex[:8]}"
    print(f"config.clip.path is empty: training a small CLIP on the training data -> {path}", flush=True)
    cache = user_cache_dir("small_clip") if config.clip.reuse_trained else None
    metrics = train_small_clip(config, partial, SmallClipSpec.for_run(config), cache_dir=cache, seconds=seconds)
    write_manifest(partial)
    if os.path.isdir(path):  # no config.json: half a CLIP, written non-atomically by an older version
        shutil.rmtree(path)
    os.replace(partial, path)
    print(json.dumps(metrics, indent=2), flush=True)  # held-out retrieval: is the CLIP any good?


def provide_clip(config: ml_collections.ConfigDict, workdir: str, seconds: float | None = None) -> Clip | None:
    """The run's frozen CLIP (None when the model needs none), checked against the config. A small
    CLIP trained here takes at most `seconds` (a time budget's share), when given."""
    if not needs_clip(config):
        return None
    if not config.clip.path and is_url(workdir):
        raise ValueError(f"config.clip.path is empty, and the small CLIP trained in its place lives in WORKDIR/clip, "
                         f"which must be on local disk, not {workdir}: train it once with python -m "
                         "gigagan_jax.tools.train_clip, copy it to every host, and set config.clip.path")
    path = run_clip_path(config, workdir)
    own = not config.clip.path
    if own and main_host_int(not os.path.exists(os.path.join(path, "config.json"))):
        main_first("small_clip_written", lambda: _train_into_place(config, path, seconds))
    clip = load_run_clip(path, own, text_only=not needs_image_tower(config))
    if config.model.conditioning == "text" and clip.text_dim != config.model.text_encoder_dim:
        raise ValueError(f"the CLIP at {path} has {clip.text_dim}-wide text tokens but "
                         f"config.model.text_encoder_dim={config.model.text_encoder_dim}")
    if clip.context_length != config.model.text_len:
        raise ValueError(f"the CLIP at {path} has context length {clip.context_length} but "
                         f"config.model.text_len={config.model.text_len}")
    return clip


def provide_vision_backbone(config: ml_collections.ConfigDict) -> Clip | None:
    """The vision-aided D's own frozen image tower (None when it reads the run's CLIP, or is off).
    A missing folder on any host is refused on every host, before any model is built."""
    if not has_vision_backbone(config):
        return None
    path = config.loss.vision_aided_clip_path
    here = os.path.isdir(path)
    if not all_hosts(here):
        raise FileNotFoundError(f"config.loss.vision_aided_clip_path={path!r} is not a folder on "
                                f"{'this host' if not here else 'another host'}: point it at a local Hugging Face "
                                "CLIP folder on every host (the paper's: clip-vit-base-patch32), or set it to \"\" "
                                "to use the run's own CLIP")
    return load_clip(path, image_only=True)
