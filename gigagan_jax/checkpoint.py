"""Checkpoints you can trust: Orbax CheckpointManager + a sha256 manifest per step.

Items per step: `state` (TrainState, restorable onto any mesh via an abstract target carrying
shardings), `data` (the input pipeline's JSON position) and `config` (JSON). Orbax writes
atomically but keeps no checksum, so after each save completes we hash every file of the step
into `manifest.sha256.json` beside it, and restore verifies the hashes first: a flipped byte is
a `CheckpointError` naming the file, never silently wrong numbers.

Saves are asynchronous; a step's manifest is written once its save has finished on every host
(checked at each log step, at the next save, or at `close`). A step without a manifest (the
process died in between) is skipped on restore in favour of the newest verified one.

Multi-host: every host calls every method (saves and restores are collective); process 0 alone
hashes and writes manifests, and shares its verdict, so hosts never disagree about which step to
restore or whether it is sound.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Optional

import jax
import ml_collections
import orbax.checkpoint as ocp

from gigagan_jax.hosts import all_hosts, is_main, main_host_int, main_host_text
from gigagan_jax.workdir import absolute, exists, files_under, is_dir, join, open_file, write_text

MANIFEST = "manifest.sha256.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or corrupt; the message says which file."""


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open_file(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _step_files(step_dir: str) -> list[str]:
    return [rel for rel in files_under(step_dir) if rel != MANIFEST]


def write_manifest(step_dir: str) -> None:
    manifest = {rel: _sha256(join(step_dir, rel)) for rel in _step_files(step_dir)}
    write_text(join(step_dir, MANIFEST), json.dumps(manifest, indent=0, sort_keys=True))


def verify_manifest(step_dir: str) -> None:
    """Raise CheckpointError naming the first file whose bytes differ from the manifest."""
    path = join(step_dir, MANIFEST)
    try:
        with open_file(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint manifest {path} is unreadable: {e}") from None
    present = set(_step_files(step_dir))
    for rel, digest in sorted(manifest.items()):
        full = join(step_dir, rel)
        if rel not in present:
            raise CheckpointError(f"checkpoint file {full} is missing")
        if _sha256(full) != digest:
            raise CheckpointError(f"checkpoint file {full} is corrupt (sha256 mismatch)")
    extra = sorted(present - set(manifest))
    if extra:
        raise CheckpointError(f"checkpoint file {join(step_dir, extra[0])} is not in the manifest")


class Checkpointer:
    """Save / restore (state, data position, config) under `directory`, keeping the newest N."""

    def __init__(self, directory: str, max_to_keep: int = 3, async_save: bool = True, read_only: bool = False):
        self.directory = absolute(directory)
        if read_only and not is_dir(self.directory):
            raise CheckpointError(f"no checkpoints in {self.directory}")
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=not read_only,
                                                 enable_async_checkpointing=async_save),
            item_names=("state", "data", "config"))
        self._unhashed: list[int] = []

    def step_dir(self, step: int) -> str:
        return join(self.directory, str(step))

    def write_finished_manifests(self) -> None:
        """Hash the saves that finished in the background, without waiting for one in flight:
        the trainer calls this at every log step so a finished checkpoint is verifiable (readable
        by sample.py) long before the next save. Hosts may see their part of a save finish at
        different moments, so they agree first: hashed only once it has finished on all."""
        if self._unhashed and all_hosts(not self._manager.is_saving_in_progress()):
            self._hash_finished()

    def _hash_finished(self) -> None:
        self._manager.wait_until_finished()
        if is_main():
            for step in self._unhashed:
                if is_dir(self.step_dir(step)):
                    write_manifest(self.step_dir(step))
        self._unhashed = []

    def save(self, step: int, state: Any, data_state: dict, config: ml_collections.ConfigDict) -> None:
        self._hash_finished()
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=ocp.args.JsonSave(data_state),
            config=ocp.args.JsonSave(config.to_dict())))
        self._unhashed.append(step)

    def close(self) -> None:
        self._hash_finished()
        self._manager.close()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def latest_verified_step(self) -> Optional[int]:
        """Newest step with a manifest (older ones are only used when newer ones lack it);
        process 0's answer on every host."""
        found = -1
        if is_main():
            for step in reversed(self.all_steps()):
                if exists(join(self.step_dir(step), MANIFEST)):
                    found = step
                    break
                logging.warning("checkpoint step %d has no manifest (interrupted before it was "
                                "verified); looking at older steps", step)
        found = main_host_int(found)
        return None if found < 0 else found

    def restore(self, step: int, abstract_state: Any, verify: bool = True) -> tuple[Any, dict, dict]:
        """Verify step's hashes (unless the caller just did), then restore onto `abstract_state`'s
        shapes and shardings."""
        if verify:
            self.verify(step)
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            data=ocp.args.JsonRestore(),
            config=ocp.args.JsonRestore()))
        return restored["state"], restored["data"], restored["config"]

    def restore_subtree(self, step: int, name: str, abstract: Any) -> Any:
        """Read only `state.<name>` (e.g. G_ema for sampling) onto `abstract`'s shapes and
        shardings, without reading D or the optimiser states. Call `verify(step)` first."""
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

    def restore_config(self, step: int) -> dict:
        """The run's config as saved (JSON). Call `verify(step)` first."""
        return self._manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]


def abstract_with_shardings(abstract: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs carrying the target shardings: what `restore` lays the arrays onto."""
    return jax.tree_util.tree_map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
