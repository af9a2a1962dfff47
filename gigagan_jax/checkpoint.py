"""Checkpoints you can trust: Orbax CheckpointManager + a sha256 manifest per step.

Items per step: `state` (TrainState, restorable onto any mesh via an abstract target carrying
shardings), `data` (the input pipeline's JSON position), `config` (JSON), `clip` (the
fingerprint of the CLIP the run conditions on), `vision_clip` (that of the image backbone the
vision-aided D reads, when it has one) and `format` (MODEL_FORMAT: what the weights mean).
Orbax writes atomically but keeps no checksum, so once a save has finished we hash every file of
the step into `manifest.sha256.json` beside it, and restore verifies the hashes first: a flipped
byte is a `CheckpointError` naming the file, never silently wrong numbers.

The fault windows, and what closes each:
- killed after Orbax finalised a step, before its manifest: the step is unverified. Training
  restores the newest *sound* step and moves every newer one aside (`<dir>_set_aside/`), so
  the re-run writes those steps afresh instead of Orbax skipping "existing" ones and a manifest
  blessing bytes nobody checked. A manifest is only ever written for a save this object made.
- killed between a save and the deletion of old steps: old steps are deleted only after the
  newer one is verified (Orbax's own keep-N would delete first), so a verified step always exists.
- a corrupt or unverified newest step: restore falls back to the newest sound one, naming
  what it skipped and why (a supervisor restarting a job must not crash-loop on it).
- killed mid-save: Orbax's temporary directory is removed when the next run opens the folder.

Multi-host: every host calls every method (saves, deletions and restores are collective);
process 0 alone hashes, writes manifests and moves steps aside, and shares its verdict, so hosts
never disagree about which step to restore or whether it is sound.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any, Optional, Sequence

import jax
import ml_collections
import orbax.checkpoint as ocp
from etils import epath

from gigagan_jax.hosts import all_hosts, is_main, main_host_int, main_host_text

# What the saved weights mean. Raised whenever the same parameter tree starts computing a
# different function, so an older checkpoint is refused instead of loading as another model:
#   1 (no `format` item): up to commit fb5a601.
#   2: text transformers T with equalized-lr Dense layers and a unit-scale position table;
#      L2 self-attention logits scaled to unit variance, with a constant self logit.
MODEL_FORMAT = 2
from gigagan_jax.workdir import absolute, exists, files_under, is_dir, join, make_dirs, open_file, write_text

MANIFEST = "manifest.sha256.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or corrupt; the message says which file."""


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open_file(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files_digest(folder: str, names: Sequence[str]) -> str:
    """One sha256 over the named files of `folder` (names and contents): the fingerprint of a
    model folder whose exact bytes a run depends on (its CLIP)."""
    listing = {name: sha256_file(join(folder, name)) for name in sorted(names)}
    return hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()


def _folder_files(folder: str) -> list[str]:
    return [rel for rel in files_under(folder) if rel != MANIFEST]


def write_manifest(folder: str) -> None:
    """Hash every file below `folder` into `folder/manifest.sha256.json`."""
    manifest = {rel: sha256_file(join(folder, rel)) for rel in _folder_files(folder)}
    write_text(join(folder, MANIFEST), json.dumps(manifest, indent=0, sort_keys=True))


def verify_manifest(folder: str) -> None:
    """Raise CheckpointError naming the first file whose bytes differ from the manifest, or one
    that is missing or not listed."""
    path = join(folder, MANIFEST)
    try:
        with open_file(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"manifest {path} is unreadable: {e}") from None
    if not isinstance(manifest, dict) or not all(isinstance(v, str) for v in manifest.values()):
        raise CheckpointError(f"manifest {path} is not a JSON object of file -> sha256")
    present = set(_folder_files(folder))
    for rel, digest in sorted(manifest.items()):
        full = join(folder, rel)
        if rel not in present:
            raise CheckpointError(f"checkpoint file {full} is missing")
        if sha256_file(full) != digest:
            raise CheckpointError(f"checkpoint file {full} is corrupt (sha256 mismatch)")
    extra = sorted(present - set(manifest))
    if extra:
        raise CheckpointError(f"checkpoint file {join(folder, extra[0])} is not in the manifest")


def _why_unsound(step_dir: str) -> str:
    """'' when the step verifies, else the reason it cannot be restored."""
    if not exists(join(step_dir, MANIFEST)):
        return "it has no manifest (its save was not verified: still in progress, or the run stopped first)"
    try:
        verify_manifest(step_dir)
    except CheckpointError as e:
        return str(e)
    return ""


class Checkpointer:
    """Save / restore (state, data position, config, CLIP fingerprint) under `directory`,
    keeping the newest `keep` verified steps (None: all)."""

    def __init__(self, directory: str, keep: Optional[int] = 3, async_save: bool = True, read_only: bool = False):
        self.directory = absolute(directory)
        self.set_aside_dir = self.directory.rstrip("/") + "_set_aside"
        if read_only and not is_dir(self.directory):
            raise CheckpointError(f"no checkpoints in {self.directory}")
        self._keep = keep
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=None,  # deletion is ours: only once a newer step is verified
                create=not read_only, cleanup_tmp_directories=not read_only,
                enable_async_checkpointing=async_save),
            item_names=("state", "data", "config", "clip", "vision_clip", "format"))
        self._unhashed: list[int] = []  # saved by this object, not yet hashed
        self._saved: set[int] = set()  # saved by this object

    def step_dir(self, step: int) -> str:
        return join(self.directory, str(step))

    # ---- saving -------------------------------------------------------------------------------
    def save(self, step: int, state: Any, data_state: dict, config: ml_collections.ConfigDict,
             clip_record: Optional[dict] = None, vision_clip_record: Optional[dict] = None) -> None:
        """Start an asynchronous save of `step` (finishing and hashing the previous one first)."""
        self.finish()
        if step in self._saved:
            return  # e.g. a stop signal right after the periodic save of this very state
        if step in self._manager.all_steps():
            raise CheckpointError(
                f"checkpoint step {step} already exists in {self.directory} but this run did not write it; "
                "restore with `sound_step(set_aside=True)` first, which moves unverified newer steps aside")
        items = dict(state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state),
                     config=ocp.args.JsonSave(config.to_dict()),
                     format=ocp.args.JsonSave({"model": MODEL_FORMAT}))
        if clip_record is not None:
            items["clip"] = ocp.args.JsonSave(clip_record)
        if vision_clip_record is not None:
            items["vision_clip"] = ocp.args.JsonSave(vision_clip_record)
        if not self._manager.save(step, args=ocp.args.Composite(**items)):
            raise CheckpointError(f"Orbax declined to save step {step} in {self.directory} "
                                  f"(steps there: {self.all_steps()})")
        self._saved.add(step)
        self._unhashed.append(step)

    def write_finished_manifests(self) -> None:
        """Hash the saves that finished in the background, without waiting for one in flight:
        the trainer calls this at every log step so a finished checkpoint is verifiable (readable
        by sample.py) long before the next save. Hosts may see their part of a save finish at
        different moments, so they agree first: hashed only once it has finished on all."""
        if self._unhashed and all_hosts(not self._manager.is_saving_in_progress()):
            self.finish()

    def finish(self) -> None:
        """Wait for the save in flight, write the manifests of this object's finished saves,
        then delete steps beyond `keep` (never before the newer step is verified)."""
        pending, self._unhashed = self._unhashed, []  # a save that failed is never hashed later
        try:
            self._manager.wait_until_finished()
        except (OSError, ValueError) as e:  # a background save failed (Orbax: ValueError on a full disk)
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise CheckpointError(f"saving checkpoint step {', '.join(map(str, pending)) or '?'} in "
                                  f"{self.directory} failed ({reason}); it was not verified, and the newest "
                                  "verified step stays what a restart resumes from") from e
        if not pending:
            return
        if is_main():
            for step in pending:
                if is_dir(self.step_dir(step)):
                    write_manifest(self.step_dir(step))
                else:  # left unverified: restore will skip it
                    logging.error("checkpoint step %d finished without its folder %s", step, self.step_dir(step))
        if self._keep is not None:
            for step in self.all_steps()[:-self._keep]:
                self._manager.delete(step)

    def close(self) -> None:
        self.finish()
        self._manager.close()

    # ---- choosing and restoring ---------------------------------------------------------------
    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def sound_step(self, set_aside: bool = False) -> Optional[int]:
        """The newest step whose files match its manifest (None: none does), warning about each
        newer step skipped and why. `set_aside=True` (training) moves the skipped steps to
        `set_aside_dir`, so the run can write those steps again; sampling leaves them be.
        Process 0 decides; every host gets its answer."""
        found = -1
        if is_main():
            skipped = []
            for step in reversed(self.all_steps()):
                reason = _why_unsound(self.step_dir(step))
                if not reason:
                    found = step
                    break
                skipped.append(step)
                logging.warning("checkpoint step %d skipped: %s", step, reason)
            if set_aside:
                for step in skipped:
                    target = join(self.set_aside_dir, f"{step}-{time.strftime('%Y%m%d-%H%M%S')}")
                    make_dirs(self.set_aside_dir)
                    epath.Path(self.step_dir(step)).rename(target)
                    logging.warning("moved unverified checkpoint step %d to %s", step, target)
            if skipped and found >= 0:
                logging.warning("restoring checkpoint step %d instead", found)
        found = main_host_int(found)  # also a barrier: the moves are done before anyone reloads
        if set_aside:
            self._manager.reload()
        return None if found < 0 else found

    def restore(self, step: int, abstract_state: Any, verify: bool = True) -> tuple[Any, dict, dict]:
        """Verify step's hashes (unless the caller just did), then restore onto `abstract_state`'s
        shapes and shardings."""
        if verify:
            self.verify(step)
        self._check_format(step)
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data=ocp.args.JsonRestore(),
            config=ocp.args.JsonRestore()))
        return restored["state"], restored["data"], restored["config"]

    def restore_subtree(self, step: int, name: str, abstract: Any) -> Any:
        """Read only `state.<name>` (e.g. G_ema for sampling) onto `abstract`'s shapes and
        shardings, without reading D or the optimiser states. Call `verify(step)` first."""
        self._check_format(step)
        restore_args = jax.tree_util.tree_map(lambda a: ocp.ArrayRestoreArgs(sharding=a.sharding), abstract)
        restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
            item={name: abstract}, restore_args={name: restore_args}, partial_restore=True)))
        return restored["state"][name]

    def verify(self, step: int) -> None:
        """Raise CheckpointError unless step's files match its manifest. Process 0 reads and
        hashes them once; every host raises the same error."""
        error = ""
        if is_main():
            try:
                if step not in self.all_steps():
                    raise CheckpointError(f"no checkpoint for step {step} in {self.directory} "
                                          f"(available: {self.all_steps() or 'none'})")
                verify_manifest(self.step_dir(step))
            except CheckpointError as e:
                error = str(e)
        error = main_host_text(error)
        if error:
            raise CheckpointError(error)

    def _check_format(self, step: int) -> None:
        """Refuse weights saved under another MODEL_FORMAT: their tree fits, their meaning does not."""
        found = 1
        if is_dir(join(self.step_dir(step), "format")):
            found = self._manager.restore(step, args=ocp.args.Composite(format=ocp.args.JsonRestore()))["format"]["model"]
        if found != MODEL_FORMAT:
            raise CheckpointError(
                f"checkpoint step {step} in {self.directory} holds model format {found}; this code reads format "
                f"{MODEL_FORMAT} (see gigagan_jax.checkpoint.MODEL_FORMAT): the same weights would compute another "
                "function. Train a new run, or use the gigagan_jax version that wrote it")

    def restore_config(self, step: int) -> dict:
        """The run's config as saved (JSON). Call `verify(step)` first."""
        return self._manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]

    def restore_clip_record(self, step: int, item: str = "clip") -> Optional[dict]:
        """The CLIP fingerprint saved with `step` as `item` ("clip", or "vision_clip": the
        vision-aided D's backbone); None for checkpoints written before it was."""
        if not is_dir(join(self.step_dir(step), item)):
            return None
        return self._manager.restore(step, args=ocp.args.Composite(**{item: ocp.args.JsonRestore()}))[item]


def check_same_clip(saved: Optional[dict], current: dict, step_dir: str, key: str = "config.clip.path") -> None:
    """Refuse a CLIP whose fingerprint differs from the one `step_dir` was trained with: another
    encoder of the same width would load and silently change what every prompt means (or what
    the vision-aided heads see). `key`: the config key that names the folder. Each host checks its
    own copy; the verdict is shared."""
    same = saved is None or saved["sha256"] == current["sha256"]
    if not all_hosts(same):
        raise CheckpointError(
            f"{step_dir} was trained with the CLIP {saved['path'] if saved else ''} (sha256 "
            f"{saved['sha256'][:12] if saved else '?'}...), but {current['path']} has sha256 "
            f"{current['sha256'][:12]}... on {'this host' if not same else 'another host'}: point "
            f"{key} at the CLIP the run was trained with, or start a new --workdir")


def abstract_with_shardings(abstract: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs carrying the target shardings: what `restore` lays the arrays onto."""
    return jax.tree_util.tree_map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
