"""benchmarks/compile_time.py's --runs: fresh processes, medians and ranges, a failed run named."""

import json
import sys

import pytest

from benchmarks import compile_time


def record(lower, compile_s, kernels=(10, 20, 30, 40)):
    return {"header": "h", "executables": {name: {"lower": lower, "compile": c, "kernels": k}
                                           for name, c, k in zip(compile_time.EXECUTABLES, compile_s, kernels)}}


def test_summary_gives_medians_and_ranges_and_names_differing_kernel_counts():
    runs = [record(1.0, (2.0, 10.0, 8.0, 6.0)), record(2.0, (4.0, 20.0, 9.0, 7.0)),
            record(3.0, (3.0, 12.0, 10.0, 5.0), kernels=(10, 21, 30, 40))]
    text = compile_time.summarise(runs)
    lines = {line.split("  ")[0].strip(): line for line in text.splitlines()}
    assert text.splitlines()[0] == "3 cold runs, each in a fresh process: median (min-max)"
    assert lines["init"].split() == ["init", "2.0", "(1.0-3.0)", "3.0", "(2.0-4.0)", "10"]
    assert "differ: 20/21" in lines["D step + R1"]
    # to step 0 = init + D + R1 + G, each lower + compile: 23, 39 and 34 s in the three runs; + D: 30, 48, 42.
    assert text.splitlines()[-1] == "to step 0: 34.0 (23.0-39.0) s; to step 1 (+ the plain D step): 42.0 (30.0-48.0) s"


@pytest.mark.parametrize("argv", [["--config", "c.py", "--runs", "5", "--devices", "8"],
                                  ["--runs=5", "--config", "c.py", "--devices", "8"]])
def test_a_child_is_the_same_command_with_one_run(argv):
    command = compile_time.child_command(argv)
    assert command[:3] == [sys.executable, "-m", "benchmarks.compile_time"]
    child = vars(compile_time.parse_args(command[3:]))
    assert child == {**vars(compile_time.parse_args(argv)), "runs": 1, "result_line": True}
    assert child["config"] == "c.py" and child["devices"] == 8


def fake_child(monkeypatch, outputs):
    """Each run's child prints its table line and result (or exits 3 with neither)."""
    scripts = iter(f"print('table {i}')\n" + (f"print({compile_time.RESULT_PREFIX!r} + {json.dumps(json.dumps(r))})"
                                              if r else "raise SystemExit(3)") for i, r in enumerate(outputs))
    monkeypatch.setattr(compile_time, "child_command", lambda argv: [sys.executable, "-c", next(scripts)])


def test_runs_are_collected_from_fresh_processes(monkeypatch, capsys):
    fake_child(monkeypatch, [record(1.0, (2.0, 10.0, 8.0, 6.0)), record(2.0, (4.0, 20.0, 9.0, 7.0))])
    assert compile_time.main(["--runs", "2"]) == 0
    out = capsys.readouterr().out
    assert "table 0\n" in out and "table 1\n" in out and compile_time.RESULT_PREFIX not in out
    assert "2 cold runs" in out and "to step 0: 31.0 (23.0-39.0) s" in out


def test_a_failed_run_is_named_and_fails_the_benchmark(monkeypatch, capsys):
    fake_child(monkeypatch, [record(1.0, (2.0, 10.0, 8.0, 6.0)), None])
    assert compile_time.main(["--runs", "2"]) == 1
    assert "error: run 2 failed (exit code 3)" in capsys.readouterr().err


def test_fewer_than_one_run_is_refused():
    with pytest.raises(SystemExit):
        compile_time.parse_args(["--runs", "0"])
