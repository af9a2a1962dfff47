"""Timing helpers shared by the speed benchmarks (the CPU name beside every figure: gigagan_jax.machine.cpu_model)."""

import time

import jax
import numpy as np


def call_seconds(fn, calls: int) -> list[float]:
    """Wall seconds of each of `calls` calls of `fn()`, each waited for (no warm-up)."""
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return times


def median_seconds(fn, repeats: int) -> float:
    """Median wall seconds of `fn()` over `repeats` calls, after one warm-up call (compilation)."""
    jax.block_until_ready(fn())
    return float(np.median(call_seconds(fn, repeats)))


def matmul_peak(n: int, repeats: int) -> dict[str, float]:
    """Measured TFLOP/s of an n x n x n matmul per dtype (f32 at XLA's default precision)."""
    out = {}
    for dtype in ("float32", "bfloat16"):
        a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
        b = jax.random.normal(jax.random.PRNGKey(1), (n, n), dtype)
        mm = jax.jit(lambda x, y: x @ y)
        out[dtype] = 2 * n**3 / median_seconds(lambda: mm(a, b), repeats) / 1e12
    return out
