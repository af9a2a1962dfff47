"""TensorBoard scalars read back without tensorboard (a resumed run's two files), and the D logit
gap per window that acceptance.d_logit_gap prints from them."""

import time

import pytest
from tensorboardX import SummaryWriter

from acceptance import d_logit_gap
from gigagan_jax.train.metrics import read_scalars


def write_run(log_dir):
    """Two writers on one folder, as a run and its resume: logged every 25 steps to 250."""
    for steps in (range(25, 150, 25), range(150, 275, 25)):
        writer = SummaryWriter(str(log_dir))
        for step in steps:
            writer.add_scalar("logits/real", 0.01 * step, step)
            writer.add_scalar("logits/fake", -0.01 * step, step)
            if step % 50 == 0:
                writer.add_scalar("d/r1_penalty", 0.5, step)
        writer.close()
        time.sleep(1.1)  # tensorboardX names files by the second


def test_scalars_of_every_event_file_are_read_in_order(tmp_path):
    write_run(tmp_path)
    scalars = read_scalars(str(tmp_path))
    assert [s for s, _ in scalars["logits/real"]] == list(range(25, 275, 25))
    assert scalars["logits/fake"][-1] == (250, pytest.approx(-2.5))


def test_the_gap_is_averaged_per_window(tmp_path, capsys):
    write_run(tmp_path / "tensorboard")
    rows = d_logit_gap.windows(read_scalars(str(tmp_path / "tensorboard")), 125)
    # Window (0, 125]: steps 25..125, mean real 0.75; (125, 250]: 150..250, mean real 2.0.
    assert [r["step"] for r in rows] == [125, 250]
    assert rows[0]["gap"] == pytest.approx(1.5) and rows[1]["gap"] == pytest.approx(4.0)
    assert rows[0]["r1"] == pytest.approx(0.5)
    assert d_logit_gap.main(["--workdir", str(tmp_path), "--window", "125"]) == 0
    assert "| 250 | +2.000 | -2.000 | +4.000 | 0.5000 |" in capsys.readouterr().out


def test_a_run_without_logits_is_an_error(tmp_path, capsys):
    assert d_logit_gap.main(["--workdir", str(tmp_path)]) == 1
    assert "no logits/real scalars" in capsys.readouterr().err
