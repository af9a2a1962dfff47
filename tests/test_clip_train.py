"""`python -m gigagan_jax.tools.train_clip` (gigagan_jax.train.small_clip) writes a folder the normal loader reads, and (slow)
learns retrieval on held-out shapes far above chance."""

import json
import re

import numpy as np
import pytest

from gigagan_jax.pretrained.clip import load_clip
from gigagan_jax.tools.train_clip import data_config, main, parse_args
from gigagan_jax.train.small_clip import PACE_STEPS, SmallClipSpec, retrieval_top1, training_data_config

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
    assert re.search(rf"small CLIP: {steps} steps of 16 pairs \(100 to train on, 100 held out\), 32 px images", out)
    pace, seconds, left = re.search(rf"small CLIP: ([\d.]+) s/step over steps 1-{PACE_STEPS} .*: about (\d+) s "
                                    r"\([\d.]+ min\) for the (\d+) steps left", out).groups()
    assert int(left) == steps - 1 - PACE_STEPS and float(pace) > 0
    assert int(seconds) == pytest.approx(float(pace) * int(left), abs=0.51 + 0.0005 * int(left))  # printed rounded

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
