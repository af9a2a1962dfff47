"""Timing helper shared by the speed benchmarks."""

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
