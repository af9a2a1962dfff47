"""Timing helpers shared by the speed benchmarks, and the CPU name written beside every figure."""

import re
import time

import jax
import numpy as np


def median_seconds(fn, repeats: int) -> float:
    """Median wall seconds of `fn()` over `repeats` calls, after one warm-up call (compilation)."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def cpu_model() -> str:
    """'<model name> x<logical cores>' from /proc/cpuinfo: machines of one kind differ ~3x in speed."""
    try:
        with open("/proc/cpuinfo") as f:
            names = re.findall(r"^model name\s*:\s*(.+)$", f.read(), re.M)
        return f"{names[0]} x{len(names)}" if names else "unknown CPU"
    except OSError:
        return "unknown CPU"


def matmul_peak(n: int, repeats: int) -> dict[str, float]:
    """Measured TFLOP/s of an n x n x n matmul per dtype (f32 at XLA's default precision)."""
    out = {}
    for dtype in ("float32", "bfloat16"):
        a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
        b = jax.random.normal(jax.random.PRNGKey(1), (n, n), dtype)
        mm = jax.jit(lambda x, y: x @ y)
        out[dtype] = 2 * n**3 / median_seconds(lambda: mm(a, b), repeats) / 1e12
    return out
