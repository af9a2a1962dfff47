"""The training system end to end on the tiny model at 8 px: resume, re-sharding, robustness.

Runs in-process (`train(config, workdir)`) on the 8 simulated CPU devices with a tiny random
CLIP saved in the Hugging Face layout, so the real loading path is used.
"""

import json
import os
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from small_models import at_8px
from train_state import restore_train_state

from gigagan_jax.config import load_config
from gigagan_jax.checkpoint import Checkpointer, CheckpointError
from gigagan_jax.train.loop import train
from gigagan_jax.train.metrics import NonFiniteLossError
from gigagan_jax.workdir import checkpoint_dir, sample_grid_path
from gigagan_jax.train.sharding import batch_sharding, make_mesh, replicated
from gigagan_jax.train.state import jit_init


def tiny_config(clip_path: str, **train):
    config = load_config("configs/tiny.py")
    config.clip.path = clip_path
    config.mesh.shape = (1, -1)  # the loop on an FSDP mesh (configs/tiny.py alone is data parallel)
    at_8px(config)  # what this file checks is the loop's: the 8 px model compiles in ~60 % of the time
    config.train.log_every = 1
    config.train.sample_every = 1000
    config.loss.r1_interval = 2
    config.loss.clip_negatives = 8  # the loop draws the bank (G's step refuses to run without it)
    for key, value in train.items():
        config.train[key] = value
    return config


@pytest.fixture(scope="module")
def unbroken(tiny_clip, tmp_path_factory):
    """4 steps in one run, checkpointing every 2."""
    workdir = str(tmp_path_factory.mktemp("unbroken"))
    summary = train(tiny_config(tiny_clip, num_steps=4, checkpoint_every=2), workdir)
    return workdir, summary


def _assert_trees_equal(a, b):
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))


def test_run_writes_checkpoints_metrics_and_summary(unbroken):
    workdir, summary = unbroken
    assert summary["end_step"] == 4 and summary["checkpoints"] == [2, 4]
    assert all(np.isfinite(v) for v in summary["metrics"].values())
    assert {"d/loss", "d/match", "g/loss", "g/match", "g/clip"} <= set(summary["metrics"])
    assert os.listdir(os.path.join(workdir, "tensorboard"))
    assert os.path.exists(os.path.join(workdir, "samples", "step_0000004.png"))
    assert os.path.exists(os.path.join(checkpoint_dir(workdir), "4", "manifest.sha256.json"))


def test_exact_resume_is_bit_identical(unbroken, tiny_clip, tmp_path):
    workdir, _ = unbroken
    resumed = str(tmp_path / "resumed")
    train(tiny_config(tiny_clip, num_steps=2, checkpoint_every=2), resumed)  # "killed" after 2 steps
    summary = train(tiny_config(tiny_clip, num_steps=4, checkpoint_every=2), resumed)
    assert summary["start_step"] == 2 and summary["end_step"] == 4
    mesh = make_mesh((1, 8), ("data", "fsdp"))
    config = tiny_config(tiny_clip)
    step_a, state_a, data_a = restore_train_state(workdir, config, mesh)
    step_b, state_b, data_b = restore_train_state(resumed, config, mesh)
    assert step_a == step_b == 4 and data_a == data_b
    _assert_trees_equal(state_a, state_b)


def test_checkpoint_saved_on_8_devices_restores_on_1_and_on_2x4(unbroken, tiny_clip):
    workdir, _ = unbroken
    config = tiny_config(tiny_clip)
    _, on_8, _ = restore_train_state(workdir, config, make_mesh((1, 8), ("data", "fsdp")))
    _, on_1, _ = restore_train_state(workdir, config, make_mesh((1, 1), ("data", "fsdp"), jax.devices()[:1]))
    _, on_2x4, _ = restore_train_state(workdir, config, make_mesh((2, 4), ("data", "fsdp")))
    assert len(jax.tree_util.tree_leaves(on_1)[0].sharding.device_set) == 1
    _assert_trees_equal(on_8, on_1)
    _assert_trees_equal(on_8, on_2x4)


def test_resuming_with_another_model_is_refused_before_restoring(unbroken, tiny_clip, tmp_path):
    """A changed shape must not reach Orbax (whose error names arrays, not settings)."""
    workdir = str(tmp_path / "other_model")
    shutil.copytree(unbroken[0], workdir)
    config = tiny_config(tiny_clip, num_steps=6, checkpoint_every=2)
    config.model.g.text_dim = 64
    with pytest.raises(ValueError, match=r"config.model.g.text_dim=32, but this config has 64; use a new --workdir"):
        train(config, workdir)


@pytest.mark.parametrize("fault", ["flipped_byte", "killed_before_manifest"])
def test_a_damaged_newest_step_is_skipped_and_the_rerun_gives_the_unbroken_numbers(unbroken, tiny_clip, tmp_path,
                                                                                  fault, caplog):
    """Step 4's bytes are damaged; with `killed_before_manifest` its manifest is missing too (the
    run died between Orbax's finalise and the hashing), the window where the old code blessed the
    damaged bytes when the re-run reached step 4 again. Either way: resume from step 2, set step
    4 aside, and end with exactly the unbroken run's step 4."""
    workdir = str(tmp_path / fault)
    shutil.copytree(unbroken[0], workdir)
    step_dir = os.path.join(checkpoint_dir(workdir), "4")
    victim = max((os.path.join(r, f) for r, _, fs in os.walk(os.path.join(step_dir, "state")) for f in fs),
                 key=os.path.getsize)
    data = bytearray(open(victim, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(victim, "wb").write(bytes(data))
    if fault == "killed_before_manifest":
        os.remove(os.path.join(step_dir, "manifest.sha256.json"))
    with caplog.at_level("WARNING"):
        summary = train(tiny_config(tiny_clip, num_steps=4, checkpoint_every=2), workdir)
    assert summary["start_step"] == 2 and summary["checkpoints"] == [2, 4]
    reason = f"{victim} is corrupt" if fault == "flipped_byte" else "it has no manifest"
    assert "checkpoint step 4 skipped: " in caplog.text and reason in caplog.text
    assert os.listdir(checkpoint_dir(workdir) + "_set_aside")[0].startswith("4-")
    config, mesh = tiny_config(tiny_clip), make_mesh((1, 8), ("data", "fsdp"))
    _, expected, _ = restore_train_state(unbroken[0], config, mesh)
    _, rerun, _ = restore_train_state(workdir, config, mesh)
    _assert_trees_equal(expected, rerun)


def test_resuming_with_another_clip_of_the_same_width_is_refused(unbroken, tmp_path):
    from clip_fixtures import save_tiny_clip

    workdir = str(tmp_path / "other_clip")
    shutil.copytree(unbroken[0], workdir)
    other = save_tiny_clip(str(tmp_path / "other"), image_size=16, seed=1)
    with pytest.raises(CheckpointError, match=f"was trained with the CLIP .*, but {other} has sha256"):
        train(tiny_config(other, num_steps=6, checkpoint_every=2), workdir)
    assert Checkpointer(checkpoint_dir(workdir), read_only=True).all_steps() == [2, 4]


def test_sampling_refuses_a_clip_whose_weights_changed_after_training(tiny_clip, tmp_path):
    """The run's CLIP is a user folder (no manifest of ours): one flipped byte in its weights is
    caught by the fingerprint the checkpoint recorded, before any prompt is encoded."""
    from gigagan_jax.generate.restore import load_trained_generator

    clip = str(tmp_path / "clip")
    shutil.copytree(tiny_clip, clip)
    workdir = str(tmp_path / "run")
    train(tiny_config(clip, num_steps=1, checkpoint_every=1), workdir)
    assert load_trained_generator(workdir).clip is not None
    weights = os.path.join(clip, "flax_model.msgpack")
    data = bytearray(open(weights, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(weights, "wb").write(bytes(data))
    with pytest.raises(CheckpointError, match=f"was trained with the CLIP {clip} .*, but {clip} has sha256"):
        load_trained_generator(workdir)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(unbroken, tiny_clip, tmp_path):
    workdir = str(tmp_path / "nan")
    shutil.copytree(unbroken[0], workdir)
    config = tiny_config(tiny_clip, num_steps=8, checkpoint_every=1)
    config.optim.d_lr = 1e38  # step 4's D update overflows D, so step 4's G loss is not finite
    with pytest.raises(NonFiniteLossError, match="non-finite .*g/loss.* at step 4"):
        train(config, workdir)
    assert Checkpointer(checkpoint_dir(workdir), read_only=True).all_steps() == [2, 4]


def test_a_budgeted_run_ends_within_its_budget_with_a_checkpoint_and_samples(unbroken, tiny_clip, tmp_path, capsys):
    """config.train.time_budget_minutes on a real run. `unbroken` trained and sampled this config,
    so its executables come from the compilation cache and the minute goes to stepping (compiling
    them cold would take much of it)."""
    config = tiny_config(tiny_clip, num_steps=100_000, time_budget_minutes=1.0, checkpoint_every=10_000)
    workdir = str(tmp_path / "budgeted")
    summary = train(config, workdir)
    budget = summary["time_budget"]
    end = summary["end_step"]
    assert budget["ended_by"] == "time budget" and budget["warm_step"] < end < 100_000
    assert budget["seconds_per_step"] > 0 and 60.0 * 0.5 <= budget["seconds_used"] <= 60.0 * 1.05, budget
    assert Checkpointer(checkpoint_dir(workdir), read_only=True).all_steps() == [end]
    assert os.path.exists(sample_grid_path(workdir, end)) and summary["last_samples"] == sample_grid_path(workdir, end)
    out = capsys.readouterr().out
    assert "time budget: 1 min from now" in out, out[-3000:]
    assert re.search(r"time budget: [\d.]+ s/step measured since step \d+: ending at step \d+ at about", out), out[-3000:]
    with open(os.path.join(workdir, "summary.json")) as f:
        assert json.load(f)["time_budget"]["ended_by"] == "time budget"


def test_a_finished_async_save_gets_its_manifest_before_the_next_save(tmp_path):
    """sample.py can read a checkpoint as soon as its background save is done (the trainer polls
    at every log step) instead of only after the next save."""
    import time

    config = load_config("configs/tiny.py")
    checkpointer = Checkpointer(str(tmp_path / "ckpt"))
    state = {"w": jnp.arange(1000.0), "step": jnp.array(3)}
    checkpointer.save(3, state, {"next": 3}, config)
    deadline = time.time() + 60
    while not os.path.exists(os.path.join(checkpointer.step_dir(3), "manifest.sha256.json")) and time.time() < deadline:
        checkpointer.write_finished_manifests()
        time.sleep(0.05)
    assert checkpointer.sound_step() == 3
    checkpointer.verify(3)
    checkpointer.close()


def test_the_init_compiled_for_one_run_gives_the_optimised_compiles_numbers():
    """jit_init hands XLA the run-once options (no backend optimisations; on CPU, XLA:CPU's
    fast-compile preset too): XLA accepts them, the sharding is kept, and the random draws equal
    an optimised compile's to rounding."""
    def init(key):  # random draws through the same paths as the init: normal, scaled, summed
        a, b = jax.random.normal(key, (2, 64, 64))
        return {"w": jnp.tanh(a @ b) * 0.5 + 1.0, "b": jnp.zeros((64,))}

    mesh = make_mesh((1, 8), ("data", "fsdp"), jax.devices())
    shardings = {"w": batch_sharding(mesh, 2), "b": replicated(mesh)}
    key = jax.random.PRNGKey(3)
    quick = jit_init(init, shardings)(key)
    optimised = jax.jit(init, out_shardings=shardings, compiler_options={"xla_backend_optimization_level": 3})(key)
    assert quick["w"].sharding == shardings["w"]
    np.testing.assert_allclose(np.asarray(quick["w"]), np.asarray(optimised["w"]), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(quick["b"]), 0.0)
