"""benchmarks.reference_speed without the PyTorch reference installed: one error line saying how to install it."""

import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(importlib.util.find_spec("gigagan_pytorch") is not None, reason="the reference is installed")
def test_without_the_reference_the_benchmark_says_how_to_install_it():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.reference_speed"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the PyTorch reference is not installed: pip install gigagan-pytorch==0.3.0")
    assert "Traceback" not in proc.stderr
