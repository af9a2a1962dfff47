"""`python -m gigagan_jax.tools.train_clip` (gigagan_jax.train.small_clip) writes a folder the normal loader reads, and (slow)
learns retrieval on held-out shapes far above chance."""

import json
import os
import re
import time
import types

import jax
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from gigagan_jax.checkpoint import MANIFEST, verify_manifest
from gigagan_jax.config import load_config
from gigagan_jax.pretrained.clip import load_clip
from gigagan_jax.tools.train_clip import data_config, main, parse_args, spec_from_args
from gigagan_jax.train import small_clip
from gigagan_jax.train.length_groups import LengthPlan
from gigagan_jax.train.small_clip import (
    PACE_STEPS,
    SmallClipSpec,
    retrieval_top1,
    train_small_clip,
    training_data_config,
)

TINY = ["--text-width", "32", "--text-layers", "2", "--vision-width", "32", "--vision-layers", "1",
        "--projection", "16", "--heads", "2"]


def test_retrieval_top1_counts_diagonal_hits():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(6, 4))
    assert retrieval_top1(e, e, 3) == 1.0
    assert retrieval_top1(e, e[[1, 0, 2, 4, 3, 5]], 3) == pytest.approx(2 / 6)


def test_writes_a_loadable_hf_folder(tmp_path):
    out = tmp_path / "clip"
    assert main(["--data", "shapes", "--out", str(out), "--num-examples", "260", "--holdout", "100",
                 "--batch", "16", "--steps", "2"] + TINY) == 0
    metrics = json.loads((out / "train_clip.json").read_text())
    assert metrics["chance_gallery100"] == 0.01 and 0.0 <= metrics["top1_gallery100"] <= 1.0
    clip = load_clip(str(out), text_only=True)
    tokens, eot, projected = clip.encode_text(clip.tokenize(["a red circle in the center on a black background"]))
    assert tokens.shape == (1, 77, 32) and projected.shape == (1, 16) and int(eot[0]) == 11
    assert np.all(np.isfinite(np.asarray(projected)))



def test_the_time_left_is_estimated_from_the_first_steps(tmp_path, capsys):
    steps = PACE_STEPS + 5
    assert main(["--data", "shapes", "--out", str(tmp_path / "clip"), "--num-examples", "200", "--holdout", "100",
                 "--batch", "16", "--steps", str(steps)] + TINY) == 0
    out = capsys.readouterr().out
    assert re.search(rf"small CLIP: {steps} steps of 16 pairs \(100 to train on, 100 held out\), 32 px images; captions "
                     r"by length: 12 at 16, 4 at 24 tokens", out)
    pace, seconds, left = re.search(rf"small CLIP: ([\d.]+) s/step over steps 1-{PACE_STEPS} .*: about (\d+) s "
                                    r"\([\d.]+ min\) for the (\d+) steps left", out).groups()
    assert int(left) == steps - 1 - PACE_STEPS and float(pace) > 0
    assert int(seconds) == pytest.approx(float(pace) * int(left), abs=0.51 + 0.0005 * int(left))  # printed rounded


def _tiny_clip_run(out, cache, num_examples=200, steps=3):
    args = parse_args(["--data", "shapes", "--out", str(out), "--num-examples", str(num_examples), "--holdout", "100",
                       "--batch", "16", "--steps", str(steps)] + TINY)
    return train_small_clip(data_config(args), str(out), spec_from_args(args), cache_dir=cache and str(cache))


def _folder_bytes(folder) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name not in ("train_clip.json", MANIFEST)}


def test_a_clip_trained_on_the_same_data_and_spec_is_reused_from_the_cache(tmp_path, capsys, monkeypatch):
    cache = tmp_path / "cache"
    first = _tiny_clip_run(tmp_path / "a", cache)
    assert "reused_from" not in first and len(list(cache.iterdir())) == 1
    entry = next(cache.iterdir())
    verify_manifest(str(entry))
    capsys.readouterr()

    monkeypatch.setattr(small_clip, "make_train_step", lambda *a: pytest.fail("trained although cached"))
    second = _tiny_clip_run(tmp_path / "b", cache)
    assert second["reused_from"] == str(entry) and second["top1_gallery100"] == first["top1_gallery100"]
    assert "small CLIP: reusing the one trained on the same data and spec" in capsys.readouterr().out
    assert _folder_bytes(tmp_path / "b") == _folder_bytes(tmp_path / "a")
    assert json.loads((tmp_path / "b" / "train_clip.json").read_text())["reused_from"] == str(entry)


def test_other_data_or_spec_trains_anew_and_a_damaged_entry_is_replaced(tmp_path, capsys):
    cache = tmp_path / "cache"
    _tiny_clip_run(tmp_path / "a", cache)
    assert "reused_from" not in _tiny_clip_run(tmp_path / "b", cache, num_examples=201)  # other pairs
    assert "reused_from" not in _tiny_clip_run(tmp_path / "c", cache, steps=4)  # another spec
    assert len(list(cache.iterdir())) == 3
    recorded = {p: json.loads((p / "train_clip.json").read_text()) for p in cache.iterdir()}
    entry = next(p for p, m in recorded.items() if (m["steps"], m["train_pairs"]) == (3, 100))  # the first run's
    weights = next(p for p in entry.iterdir() if p.suffix in (".msgpack", ".safetensors"))
    damaged = bytearray(weights.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    weights.write_bytes(bytes(damaged))
    capsys.readouterr()
    again = _tiny_clip_run(tmp_path / "d", cache)
    assert "reused_from" not in again and "the cached one is damaged" in capsys.readouterr().out
    verify_manifest(str(entry))  # trained anew and cached again, whole


def test_a_run_without_clip_path_reuses_the_cached_clip_in_a_new_workdir(tmp_path, monkeypatch, capsys):
    from gigagan_jax.train.frozen_clip import provide_clip

    monkeypatch.setenv("GIGAGAN_JAX_CACHE", str(tmp_path / "cache"))
    config = load_config("configs/tiny.py")
    config.clip.path, config.clip.train_steps, config.data.num_examples = "", 2, 300
    provide_clip(config, str(tmp_path / "run1"))
    assert "reusing" not in capsys.readouterr().out
    provide_clip(config, str(tmp_path / "run2"))
    assert "small CLIP: reusing the one trained on the same data and spec" in capsys.readouterr().out
    assert _folder_bytes(tmp_path / "run2" / "clip") == _folder_bytes(tmp_path / "run1" / "clip")
    verify_manifest(str(tmp_path / "run2" / "clip"))  # the workdir's own manifest, written after the copy
    config.clip.reuse_trained = False
    provide_clip(config, str(tmp_path / "run3"))
    assert "reusing" not in capsys.readouterr().out



def test_a_time_limit_cuts_the_steps_to_what_fits_and_is_cached_under_it(tmp_path, capsys, monkeypatch):
    """20 s for 100000 steps: the steps are cut after the timed ones, the schedule ends at the new
    count (lr back to 0), the whole call ends on time, and a second call with the same limit
    reuses it; it is cached under the limit's key, not the whole spec's."""
    args = parse_args(["--data", "shapes", "--out", str(tmp_path / "a"), "--num-examples", "200", "--holdout", "100",
                       "--batch", "16", "--steps", "100000"] + TINY)
    config, spec, cache = data_config(args), spec_from_args(args), str(tmp_path / "cache")
    lrs = []
    make_step = small_clip.make_train_step

    def recording_step(*a):
        step = make_step(*a)
        return lambda params, opt, ids, pixels, lr: (lrs.append(float(lr)), step(params, opt, ids, pixels, lr))[1]

    monkeypatch.setattr(small_clip, "make_train_step", recording_step)
    metrics = train_small_clip(config, str(tmp_path / "a"), spec, cache_dir=cache, seconds=20.0)
    steps = metrics["steps"]
    assert PACE_STEPS + 1 <= steps < 100000 and len(lrs) == steps
    assert metrics["seconds_with_loading"] <= 20.0 * 1.1 and metrics["time_limit_seconds"] == 20.0
    assert lrs[-1] == pytest.approx(float(small_clip.lr_schedule(spec, steps)(steps - 1)))
    assert lrs[-1] < 0.5 * float(small_clip.lr_schedule(spec, 100000)(steps - 1))  # decayed over the cut schedule
    assert f"of {steps} (the time limit's; 100000 asked)" in capsys.readouterr().out

    images, captions = small_clip.load_pairs(training_data_config(config, spec))
    assert os.listdir(cache) == [small_clip.training_key(spec, images, captions, 20.0)]  # not the whole spec's key
    assert small_clip.training_key(spec, images, captions) != os.listdir(cache)[0]
    again = train_small_clip(config, str(tmp_path / "b"), spec, cache_dir=cache, seconds=20.0)
    assert again["reused_from"] == os.path.join(cache, os.listdir(cache)[0]) and again["steps"] == steps


@pytest.mark.slow
def test_learns_held_out_retrieval(tmp_path):
    out = tmp_path / "clip"
    main(["--data", "shapes", "--out", str(out), "--num-examples", "6000", "--holdout", "500",
          "--batch", "64", "--steps", "300"] + TINY)
    metrics = json.loads((out / "train_clip.json").read_text())
    assert metrics["top1_gallery100"] > 0.2  # chance is 0.01


def test_small_clip_of_a_run_sees_the_runs_shapes():
    """The GAN's CLIP loss only carries shape if its CLIP learned shapes drawn like the run's
    (scale and positions); one trained on the default draw reads 2.2x centred shapes at chance."""
    from gigagan_jax.config import default_config
    from gigagan_jax.data import open_source

    config = default_config()
    config.model.resolution = 32
    config.data.num_examples = 300
    config.data.shape_scale = 1.5
    config.data.shape_positions = ("center", "top left")
    spec = SmallClipSpec.for_run(config)
    assert (spec.text_width, spec.image_size, spec.holdout, spec.batch) == (768, 32, 100, 75)
    run_images = open_source(config).get_batch(np.arange(300))["image"]
    clip_images = open_source(training_data_config(config, spec)).get_batch(np.arange(300))["image"]
    np.testing.assert_array_equal(clip_images, run_images)
    default_draw = training_data_config(data_config(parse_args(["--out", "x", "--num-examples", "300"])), spec)
    assert not np.array_equal(open_source(default_draw).get_batch(np.arange(300))["image"], run_images)


def test_a_re_plan_that_leaves_no_steps_still_ends_on_the_final_schedule(tmp_path, monkeypatch):
    """On a clock the steps themselves advance (1 s each until the pace is timed, then 3 s), the
    first plan fits 280 steps and the re-plan at step REPLAN_EVERY finds time for just one more:
    that step, the last, must take its lr from the 101-step schedule, not the 280-step one (a
    re-plan made after a step used to leave the last step on the old schedule)."""
    args = parse_args(["--data", "shapes", "--out", str(tmp_path / "a"), "--num-examples", "200", "--holdout", "100",
                       "--batch", "16", "--steps", "100000"] + TINY)
    config, spec = data_config(args), spec_from_args(args)
    now, lrs = [1000.0], []
    monkeypatch.setattr(small_clip, "time", types.SimpleNamespace(time=lambda: now[0]))
    make_step = small_clip.make_train_step

    def clocked_step(*a):
        step = make_step(*a)

        def timed(params, opt, ids, pixels, lr):
            lrs.append(float(lr))
            now[0] += 1.0 if len(lrs) <= PACE_STEPS + 1 else 3.0
            return step(params, opt, ids, pixels, lr)
        return timed

    monkeypatch.setattr(small_clip, "make_train_step", clocked_step)
    # 90 % of 311.1 s (the rest is the evaluation's) = 280 s: after 11 steps at 1 s, 269 more fit;
    # at step 100 the 89 steps at 3 s have used 278 s, and 2 s is less than one more 3 s step.
    metrics = train_small_clip(config, str(tmp_path / "a"), spec, seconds=280 / (1 - small_clip.EVAL_SHARE))
    assert small_clip.REPLAN_EVERY == 100 and metrics["steps"] == len(lrs) == 101
    assert lrs[-1] == pytest.approx(float(small_clip.lr_schedule(spec, 101)(100)))
    assert lrs[-1] < 0.01 * float(small_clip.lr_schedule(spec, 280)(100))  # the 280-step schedule was mid-way


def test_a_pessimistic_first_pace_is_corrected_by_the_re_plan(tmp_path, capsys, monkeypatch):
    """The first PACE_STEPS steps run slow (as compilation's aftermath does): the count fitted to
    them is too small, and the re-plan at step REPLAN_EVERY, from the steady pace, raises it so the
    time limit is used; the schedule still ends at the final count."""
    args = parse_args(["--data", "shapes", "--out", str(tmp_path / "a"), "--num-examples", "200", "--holdout", "100",
                       "--batch", "16", "--steps", "100000"] + TINY)
    config, spec = data_config(args), spec_from_args(args)
    lrs = []
    make_step = small_clip.make_train_step

    def slow_start_step(*a):
        step = make_step(*a)

        def timed(params, opt, ids, pixels, lr):
            lrs.append(float(lr))
            if len(lrs) <= PACE_STEPS + 1:
                time.sleep(0.05)
            return step(params, opt, ids, pixels, lr)
        return timed

    monkeypatch.setattr(small_clip, "make_train_step", slow_start_step)
    metrics = train_small_clip(config, str(tmp_path / "a"), spec, seconds=20.0)
    out = capsys.readouterr().out
    first = int(re.search(r"for the \d+ steps left of (\d+) \(the time limit's", out).group(1))
    assert f"small CLIP: re-planned at step {small_clip.REPLAN_EVERY} (" in out
    assert metrics["steps"] > 1.5 * first and len(lrs) == metrics["steps"]
    assert lrs[-1] == pytest.approx(float(small_clip.lr_schedule(spec, metrics["steps"])(metrics["steps"] - 1)))
    assert 0.8 * 20.0 <= metrics["seconds_with_loading"] <= 20.0 * 1.1


def test_training_on_the_data_s_tokens_only_saves_what_the_whole_table_would(tmp_path, monkeypatch):
    """The token table trained compact (only the rows the captions use) and expanded on saving
    equals the whole 49,408-row table trained as is: used rows as trained, the others decayed by
    AdamW alone; every other parameter the same."""
    compact = _tiny_clip_run(tmp_path / "compact", None, steps=4)
    monkeypatch.setattr(small_clip, "compact_vocabulary", lambda ids: (np.arange(49408), ids))
    whole = _tiny_clip_run(tmp_path / "whole", None, steps=4)
    assert compact["top1_gallery100"] == whole["top1_gallery100"]
    trained = [load_clip(str(tmp_path / name)).params for name in ("compact", "whole")]
    spec = spec_from_args(parse_args(["--out", "x"] + TINY))
    initial = small_clip.init_params(small_clip.clip_config(spec), jax.random.key(spec.seed))
    table = [flatten_dict(p)[small_clip.TOKEN_EMBEDDING] for p in (trained[1], initial)]
    moved = np.abs(np.asarray(table[0]) - np.asarray(table[1]))  # [49408, width]
    assert moved.max() > 1e-3 and np.median(moved) > 0  # the rows the data uses trained; all others decayed
    flat = [flatten_dict(p) for p in trained]
    for path in flat[0]:
        if path[-2:] != ("k_proj", "bias"):  # its exact gradient is 0 (softmax ignores a shift of every
            # key's score): Adam steps by the sign of rounding noise, in either run
            np.testing.assert_allclose(flat[0][path], flat[1][path], rtol=1e-5, atol=1e-7, err_msg=str(path))


def test_batches_the_length_plan_cannot_hold_are_encoded_whole_and_counted(tmp_path, monkeypatch):
    """A plan with room for no caption over 8 tokens (every shapes caption needs 9-17): each batch
    falls back to one group at the longest length, trains, and is counted in the metrics."""
    seen = []
    make_step = small_clip.make_train_step

    def recording_step(*a):
        step = make_step(*a)
        return lambda params, opt, id_groups, pixels, lr: (seen.append([g.shape for g in id_groups]),
                                                          step(params, opt, id_groups, pixels, lr))[1]

    monkeypatch.setattr(small_clip, "make_train_step", recording_step)
    monkeypatch.setattr(small_clip, "plan_lengths", lambda needed, batch: LengthPlan((batch - 1, 1), (8, 24)))
    metrics = _tiny_clip_run(tmp_path / "clip", None, steps=3)
    assert seen == [[(16, 24)]] * 3
    assert metrics["batches_over_the_plan"] == 3 and metrics["caption_lengths"] == "15 at 8, 1 at 24 tokens"
