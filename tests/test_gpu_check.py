"""benchmarks/gpu_check.py runs end to end in its reduced mode on one CPU device, so the script is
known to work before a GPU is at hand; its figures are checked for consistency, not speed.

The run is `slow` (211 s of the default suite's worker time on a 2-core AMD EPYC: every section
compiles its own tiny steps); how a section's failure is reported stays in the default suite."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import gpu_check
from gigagan_jax.config import load_config
from gigagan_jax.models.layers import MODCONV_IMPLS
from gigagan_jax.tools import local_cluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEMORY_GB = 0.05  # the tiny D + R1 step's peak passes 45 MB (0.9 of it) near per-device batch 14


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("gpu_check") / "report.json")
    # --budget_s well past the run's own time (206 s alone on a 2-core EPYC, ~300 s in the suite):
    # a slower machine must not skip a section, which this test counts as a failure.
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--reduced", "--memory_gb", str(MEMORY_GB),
                           "--budget_s", "1400", "--out", out], cwd=ROOT, env=local_cluster.process_env(1), capture_output=True, text=True,
                          timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out) as f:
        return json.load(f), proc.stdout


@pytest.mark.slow
def test_every_section_ran(report):
    report, stdout = report
    for name in gpu_check.SECTIONS:
        assert "error" not in report[name] and "skipped" not in report[name], report[name]
    assert report["machine"]["backend"] == "cpu" and report["machine"]["devices"] == 1 and report["reduced"]
    assert all(v > 0 for v in report["peak"]["measured_tflops"].values())
    assert "t2i_64 at per-device batch" in stdout and "chain to 32 px" in stdout


@pytest.mark.slow
def test_bench_rows_add_up(report):
    rows = report[0]["bench64"]["rows"]
    assert all(row["seconds"] > 0 and row["tflop"] > 0 for row in rows.values())
    assert rows["D step + R1"]["tflop"] > rows["D step"]["tflop"]  # R1 is a second backward pass
    for total, parts in (("D+G (no R1)", ("D step", "G step")), ("D+G (with R1)", ("D step + R1", "G step"))):
        assert rows[total]["tflop"] == pytest.approx(sum(rows[p]["tflop"] for p in parts))
        assert rows[total]["seconds"] == pytest.approx(sum(rows[p]["seconds"] for p in parts))


@pytest.mark.slow
def test_kernel_impls_and_chain(report):
    impls, chain = report[0]["kernel_impls"], report[0]["chain"]
    assert set(impls["auto"]) == {"train", "sample"}  # measured on this machine (test_kernel_choice)
    assert all(choice in MODCONV_IMPLS for choice in impls["auto"].values())
    assert set(impls["impls"]) == set(gpu_check.REDUCED.impls)
    assert all(t > 0 for row in impls["impls"].values() for t in row.values())
    assert chain["resolution"] == 32  # configs/tiny.py's 16 px -> configs/upsampler_tiny.py
    batch = gpu_check.REDUCED.chain_batch
    assert chain[f"batch {batch}"]["seconds_per_image"] == pytest.approx(chain[f"batch {batch}"]["seconds"] / batch)


@pytest.mark.slow
def test_t2i_batch_is_the_largest_measured_that_fits(report):
    t2i = report[0]["t2i_64"]
    budget = t2i["memory_budget_bytes"]
    assert budget == int(0.9 * MEMORY_GB * 1e9)
    peaks = {int(b): peak for b, peak in t2i["searched_peaks"].items()}
    assert t2i["per_device_batch"] >= 2 and peaks[t2i["per_device_batch"]] == t2i["peak_bytes"] <= budget
    assert all(peak > budget for b, peak in peaks.items() if b > t2i["per_device_batch"])
    assert len(peaks) <= 3  # the search's compile limit
    assert t2i["images_per_second"] == pytest.approx(t2i["per_device_batch"] / t2i["iteration_seconds"])
    steps, r1 = t2i["step_tflop"], load_config("configs/tiny.py").loss.r1_interval  # lazy R1 averaged in
    expected = (steps["D step + R1"] + (r1 - 1) * steps["D step"]) / r1 + steps["G step"]
    assert t2i["iteration_tflop"] == pytest.approx(expected)
    assert 0 < t2i["mfu_of_measured_matmul_peak"] and t2i["mfu_of_nominal_peak"] is None  # a CPU has no datasheet row


def test_a_failed_section_is_reported_and_the_rest_still_run(capsys):
    report, budget = {}, gpu_check.Budget(60)
    gpu_check.run_section("chain", lambda: 1 / 0, report, budget)
    gpu_check.run_section("peak", lambda: {"measured_tflops": {"float32": 1.0}}, report, budget)
    assert report["chain"]["error"] == "ZeroDivisionError: division by zero" and "peak" in report
    spent = gpu_check.Budget(0)
    gpu_check.run_section("t2i_64", lambda: pytest.fail("ran past the budget"), report, spent)
    assert "budget" in report["t2i_64"]["skipped"]
    assert "[chain] FAILED" in capsys.readouterr().out
