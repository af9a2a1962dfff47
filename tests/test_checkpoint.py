"""Checkpoint fault windows, simulated deterministically on small trees (no model compiles).

A "kill" is an exception that no code catches (`Killed`, a BaseException) raised by a patched
function at the exact moment the window opens; the object is then abandoned, as a dead process
would abandon it, and a new Checkpointer opens the folder as the restarted run would.
"""

import logging
import os

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from gigagan_jax import checkpoint
from gigagan_jax.checkpoint import MANIFEST, Checkpointer, CheckpointError, check_same_clip
from gigagan_jax.config import load_config

CONFIG = load_config("configs/tiny.py")


class Killed(BaseException):
    """The process dies here."""


def state(value: float) -> dict:
    return {"w": jnp.full((1000,), value), "step": jnp.array(int(value))}


def save(checkpointer: Checkpointer, step: int) -> None:
    checkpointer.save(step, state(step), {"next": step}, CONFIG)


def restored_value(checkpointer: Checkpointer, step: int) -> float:
    abstract = {"w": jnp.zeros((1000,)), "step": jnp.array(0)}
    restored, data, _ = checkpointer.restore(step, abstract)
    assert data == {"next": step}
    return float(np.asarray(restored["w"])[0])


def flip_a_byte(step_dir: str) -> str:
    victim = max((os.path.join(r, f) for r, _, fs in os.walk(step_dir) for f in fs if f != MANIFEST),
                 key=os.path.getsize)
    data = bytearray(open(victim, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(victim, "wb").write(bytes(data))
    return victim


def verified_2_then_killed_finishing_4(directory: str, keep: int, monkeypatch, target, name: str) -> None:
    """Step 2 saved and verified; step 4 saved, and the process dies in `target.name` while
    finishing it (Orbax has finalised step 4's folder by then)."""
    first = Checkpointer(directory, keep=keep)
    save(first, 2)
    first.finish()
    save(first, 4)
    with monkeypatch.context() as patch:
        def die(*args, **kwargs):
            raise Killed

        patch.setattr(target, name, die)
        with pytest.raises(Killed):
            first.finish()


def test_a_step_killed_before_its_manifest_is_set_aside_and_saved_afresh(tmp_path, monkeypatch, caplog):
    """The window between Orbax finalising step 4 and its manifest; then step 4's bytes are damaged.
    The restarted run must restore step 2, write step 4 again, and restore the new bytes."""
    directory = str(tmp_path / "ckpt")
    verified_2_then_killed_finishing_4(directory, 3, monkeypatch, checkpoint, "write_manifest")
    assert os.path.isdir(os.path.join(directory, "4")) and not os.path.exists(os.path.join(directory, "4", MANIFEST))
    flip_a_byte(os.path.join(directory, "4"))

    second = Checkpointer(directory)
    with caplog.at_level(logging.WARNING):
        assert second.sound_step(set_aside=True) == 2
    assert "checkpoint step 4 skipped: it has no manifest" in caplog.text
    assert second.all_steps() == [2]
    assert [n.split("-")[0] for n in os.listdir(second.set_aside_dir)] == ["4"]
    second.save(4, state(40.0), {"next": 4}, CONFIG)  # the re-run reaches step 4 again, with other numbers
    second.finish()
    assert restored_value(second, 4) == 40.0  # the new bytes, verified; not the damaged ones
    second.close()


def test_keep_one_never_leaves_the_run_without_a_verified_step(tmp_path, monkeypatch):
    directory = str(tmp_path / "ckpt")
    verified_2_then_killed_finishing_4(directory, 1, monkeypatch, checkpoint, "write_manifest")
    second = Checkpointer(directory, keep=1)
    assert second.sound_step(set_aside=True) == 2  # Orbax's keep-1 would have deleted it already
    assert restored_value(second, 2) == 2.0
    second.close()


def test_a_kill_between_save_and_delete_keeps_both_then_catches_up(tmp_path, monkeypatch):
    directory = str(tmp_path / "ckpt")
    verified_2_then_killed_finishing_4(directory, 1, monkeypatch, ocp.CheckpointManager, "delete")
    second = Checkpointer(directory, keep=1)
    assert second.all_steps() == [2, 4] and second.sound_step(set_aside=True) == 4
    save(second, 6)
    second.finish()
    assert second.all_steps() == [6]
    second.close()


def test_steps_beyond_keep_are_deleted_only_after_the_newer_one_is_verified(tmp_path):
    checkpointer = Checkpointer(str(tmp_path / "ckpt"), keep=2)
    for step in (1, 2, 3):
        save(checkpointer, step)
        assert checkpointer.all_steps()[-1] == step  # started, not yet verified: nothing deleted for it
    assert checkpointer.all_steps() == [1, 2, 3]
    checkpointer.finish()
    assert checkpointer.all_steps() == [2, 3]
    checkpointer.close()


def test_a_corrupt_newest_step_falls_back_to_the_newest_sound_one(tmp_path, caplog):
    directory = str(tmp_path / "ckpt")
    writer = Checkpointer(directory)
    for step in (2, 4, 6):
        save(writer, step)
    writer.close()
    victim = flip_a_byte(os.path.join(directory, "6"))
    os.remove(os.path.join(directory, "4", MANIFEST))

    reader = Checkpointer(directory, read_only=True)
    with caplog.at_level(logging.WARNING):
        assert reader.sound_step() == 2
    assert f"checkpoint step 6 skipped: checkpoint file {victim} is corrupt (sha256 mismatch)" in caplog.text
    assert "checkpoint step 4 skipped: it has no manifest" in caplog.text
    assert "restoring checkpoint step 2 instead" in caplog.text
    assert reader.all_steps() == [2, 4, 6]  # sampling moves nothing
    with pytest.raises(CheckpointError, match=f"{victim} is corrupt"):  # asked for by number: refused
        reader.verify(6)
    assert restored_value(reader, 2) == 2.0


def test_no_sound_step_at_all_is_none_and_everything_is_set_aside(tmp_path):
    directory = str(tmp_path / "ckpt")
    writer = Checkpointer(directory)
    save(writer, 2)
    writer.close()
    flip_a_byte(os.path.join(directory, "2"))
    restarted = Checkpointer(directory)
    assert restarted.sound_step(set_aside=True) is None
    assert restarted.all_steps() == [] and len(os.listdir(restarted.set_aside_dir)) == 1
    restarted.close()


def test_a_step_this_run_did_not_write_is_never_saved_over(tmp_path):
    directory = str(tmp_path / "ckpt")
    writer = Checkpointer(directory)
    save(writer, 4)
    writer.close()
    os.remove(os.path.join(directory, "4", MANIFEST))
    careless = Checkpointer(directory)  # did not call sound_step(set_aside=True)
    with pytest.raises(CheckpointError, match="step 4 already exists .* this run did not write it"):
        save(careless, 4)
    assert not os.path.exists(os.path.join(directory, "4", MANIFEST))  # nothing blessed
    careless.close()


def test_saving_the_same_step_twice_in_one_run_is_a_no_op(tmp_path):
    """A stop signal right after the periodic save of the same step."""
    checkpointer = Checkpointer(str(tmp_path / "ckpt"))
    save(checkpointer, 3)
    save(checkpointer, 3)
    checkpointer.close()
    assert checkpointer.all_steps() == [3]
    checkpoint.verify_manifest(checkpointer.step_dir(3))


def test_temporary_folders_of_killed_saves_are_removed(tmp_path):
    directory = tmp_path / "ckpt"
    writer = Checkpointer(str(directory))
    save(writer, 2)
    writer.close()
    leftover = directory / "4.orbax-checkpoint-tmp-1234567"
    (leftover / "state").mkdir(parents=True)
    (leftover / "state" / "partial").write_bytes(b"half")
    restarted = Checkpointer(str(directory))
    save(restarted, 4)  # Orbax finishes its clean-up of the folder before a save
    restarted.close()
    assert sorted(os.listdir(directory)) == ["2", "4"]


@pytest.mark.parametrize("content", ["[1, 2]", '{"a": 3}', "not json"])
def test_a_manifest_that_is_not_an_object_of_digests_is_refused(tmp_path, content):
    directory = str(tmp_path / "ckpt")
    writer = Checkpointer(directory)
    save(writer, 2)
    writer.close()
    with open(os.path.join(directory, "2", MANIFEST), "w") as f:
        f.write(content)
    with pytest.raises(CheckpointError, match="manifest .* (is not a JSON object|is unreadable)"):
        Checkpointer(directory, read_only=True).verify(2)


def test_clip_fingerprints_must_match():
    saved = {"path": "/runs/a/clip", "sha256": "a" * 64}
    check_same_clip(saved, {"path": "/elsewhere/clip", "sha256": "a" * 64}, "step 4")  # moved, same bytes
    check_same_clip(None, {"path": "/x", "sha256": "b" * 64}, "step 4")  # written before fingerprints
    with pytest.raises(CheckpointError, match=r"trained with the CLIP /runs/a/clip \(sha256 aaaaaaaaaaaa...\), "
                                              r"but /x has sha256 bbbbbbbbbbbb"):
        check_same_clip(saved, {"path": "/x", "sha256": "b" * 64}, "step 4")


def test_the_clip_record_is_saved_and_read_back(tmp_path):
    checkpointer = Checkpointer(str(tmp_path / "ckpt"))
    record = {"path": "/runs/a/clip", "sha256": "c" * 64}
    checkpointer.save(2, state(2), {"next": 2}, CONFIG, record)
    checkpointer.save(4, state(4), {"next": 4}, CONFIG)
    checkpointer.close()
    assert checkpointer.restore_clip_record(2) == record
    assert checkpointer.restore_clip_record(4) is None


def test_the_runs_own_clip_is_verified_and_any_clip_is_fingerprinted(tmp_path):
    from clip_fixtures import save_tiny_clip

    from gigagan_jax.generate.restore import clip_record, load_run_clip

    own = save_tiny_clip(str(tmp_path / "clip"), image_size=16)
    checkpoint.write_manifest(own)
    before = clip_record(own)
    load_run_clip(own, own=True, text_only=True)
    weights = os.path.join(own, "flax_model.msgpack")
    data = bytearray(open(weights, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(weights, "wb").write(bytes(data))
    assert clip_record(own)["sha256"] != before["sha256"]  # a user's CLIP: caught by the checkpoint's record
    with pytest.raises(CheckpointError, match=f"{weights} is corrupt"):  # the run's own: caught by its manifest
        load_run_clip(own, own=True, text_only=True)
    open(weights, "wb").write(bytes(data[:100]))
    with pytest.raises(CheckpointError, match=f"{weights} is corrupt"):  # truncated: not a msgpack traceback
        load_run_clip(own, own=True, text_only=True)
    other = save_tiny_clip(str(tmp_path / "other"), image_size=16, seed=1)
    with pytest.raises(CheckpointError, match="trained with the CLIP"):
        check_same_clip(before, clip_record(other), "step 4")


def test_a_failed_background_save_is_an_error_naming_the_step_and_is_never_hashed(tmp_path, monkeypatch):
    """Orbax reports a full disk as a ValueError when the save is awaited (measured on a 200 KB tmpfs)."""
    directory = str(tmp_path / "ckpt")
    checkpointer = Checkpointer(directory)
    save(checkpointer, 2)
    checkpointer.finish()
    save(checkpointer, 4)
    checkpointer._manager.wait_until_finished()  # the real save completes; then pretend it failed
    with monkeypatch.context() as patch:
        def full_disk(*args, **kwargs):
            raise ValueError("RESOURCE_EXHAUSTED: No space left on device [os_error_code='28']")

        patch.setattr(ocp.CheckpointManager, "wait_until_finished", full_disk)
        with pytest.raises(CheckpointError, match=r"saving checkpoint step 4 in .* failed \(RESOURCE_EXHAUSTED"):
            checkpointer.finish()
    checkpointer.close()
    assert not os.path.exists(os.path.join(directory, "4", MANIFEST))
    assert Checkpointer(directory, read_only=True).sound_step() == 2


def test_weights_of_an_older_model_format_are_refused(tmp_path):
    """A checkpoint from before MODEL_FORMAT 2 (no `format` item; intact manifest) has the same
    tree but other meanings (T's standard-parameterised Dense, other L2 attention logits): it must
    not load as the current model, through either restore path."""
    import shutil

    directory = str(tmp_path / "ckpt")
    first = Checkpointer(directory)
    save(first, 2)
    first.close()
    assert restored_value(Checkpointer(directory, read_only=True), 2) == 2.0
    step_dir = os.path.join(directory, "2")
    shutil.rmtree(os.path.join(step_dir, "format"))
    os.remove(os.path.join(step_dir, MANIFEST))
    checkpoint.write_manifest(step_dir)  # a sound checkpoint, just an old one
    old = Checkpointer(directory, read_only=True)
    assert old.sound_step() == 2
    with pytest.raises(CheckpointError, match=r"step 2 in .* holds model format 1; this code reads format 2"):
        restored_value(old, 2)
    with pytest.raises(CheckpointError, match="holds model format 1"):
        old.restore_subtree(2, "w", jnp.zeros((1000,)))
