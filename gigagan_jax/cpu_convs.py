"""Who runs the convolutions on a CPU, XLA:CPU's YNNPACK library or XLA's own kernels: measured.

XLA:CPU hands convolutions (and some reductions) to YNNPACK fusions by default. On a 2-core
AVX2-only AMD EPYC those ran the generator's 3x3 convs at half the speed of XLA's own kernels
(64 px, 64 channels, batch 64: 650 ms against 330 ms), which made sampling slower than the
PyTorch reference there (BENCHMARKS.md). Which wins depends on the CPU, so on the CPU backend the
first program compiled times a few convolutions both ways and caches the faster per machine
(`$GIGAGAN_JAX_CACHE/cpu_convs/`); every jitted model program is compiled with its
`compiler_options()` (`jit` below). `GIGAGAN_JAX_CPU_CONVS=ynnpack|xla` decides instead.
"""

from __future__ import annotations

import functools
import os
import statistics
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from gigagan_jax.hosts import main_host_int
from gigagan_jax.machine import choice_file, machine, read_choice, timed, write_choice
from gigagan_jax.workdir import user_cache_dir

# Each choice's XLA compile options. "ynnpack": XLA:CPU's default; "xla": no YNNPACK fusions.
CHOICES = {"ynnpack": {}, "xla": {"xla_cpu_experimental_ynn_fusion_type": ""}}
ENV = "GIGAGAN_JAX_CPU_CONVS"
CACHE_NAME = "cpu_convs"
CACHE_FORMAT = 1  # bump when what is measured changes: older choices are measured again
# (batch, resolution, channels, with the backward pass): 3x3 convs of a training step's and of
# sampling's top levels; the two sides' ratio moved with the shape (BENCHMARKS.md).
PROBES = ((8, 32, 64, True), (16, 64, 64, False))
REPEATS = 5

_decided: dict[str, str] = {}  # this process's choice, per cache file: one collective per process


def choice(measure_fn: Optional[Callable[[], dict]] = None, log: Callable[[str], None] = print) -> str:
    """"ynnpack" or "xla" for this machine: $GIGAGAN_JAX_CPU_CONVS, else cached, else measured now.
    Off the CPU backend "ynnpack" (its options are XLA's defaults, and nothing is measured)."""
    forced = os.environ.get(ENV, "")
    if forced:
        if forced not in CHOICES:
            raise ValueError(f"{ENV} must be one of {sorted(CHOICES)}, got {forced!r}")
        return forced
    if jax.default_backend() != "cpu":
        return "ynnpack"
    key = machine()
    path = choice_file(user_cache_dir(CACHE_NAME), {"format": CACHE_FORMAT, "machine": key, "probes": PROBES})
    if path not in _decided:
        names = tuple(CHOICES)
        chosen = read_choice(path, names)
        if chosen is None:
            t0 = time.perf_counter()
            seconds = (measure_fn or measure)()
            chosen = write_choice(path, {"format": CACHE_FORMAT, "machine": key, "probes": PROBES,
                                         "seconds": seconds, "choice": min(seconds, key=seconds.get)}, names)
            times = ", ".join(f"{n} {s * 1e3:.1f} ms" for n, s in seconds.items())
            log(f"cpu convs -> {chosen}: {times} (3x3 convs {[p[:3] for p in PROBES]}) measured in "
                f"{time.perf_counter() - t0:.1f} s; cached in {path}")
        _decided[path] = names[main_host_int(names.index(chosen))]
    return _decided[path]


def compiler_options() -> dict:
    """The XLA compile options of this machine's choice (a copy)."""
    return dict(CHOICES[choice()])


def jit(fn: Callable | None = None, **jit_kwargs) -> Any:
    """`jax.jit(fn, **jit_kwargs)` compiled with `compiler_options()`, decided at the first call:
    deciding at import (a module-level decorator) would start the backend before
    `jax.distributed.initialize` can run. Usable as `@jit` or `@functools.partial(jit, ...)`."""
    if fn is None:
        return functools.partial(jit, **jit_kwargs)

    @functools.cache
    def jitted():
        return jax.jit(fn, compiler_options=compiler_options(), **jit_kwargs)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        return jitted()(*args, **kwargs)

    call.lower = lambda *args, **kwargs: jitted().lower(*args, **kwargs)
    return call


def measure() -> dict:
    """{choice: summed median seconds of the probe convs}, compilation excluded; the choices' calls
    alternate, so a machine whose pace drifts (a shared host) drifts for both. A choice whose
    options this jaxlib refuses takes infinite time."""
    rng = np.random.default_rng(0)
    seconds = {name: 0.0 for name in CHOICES}
    for batch, resolution, channels, backward in PROBES:
        x = jnp.asarray(rng.standard_normal((batch, resolution, resolution, channels)), jnp.float32)  # [B, H, W, C]
        w = jnp.asarray(rng.standard_normal((3, 3, channels, channels)) / (3 * channels**0.5), jnp.float32)

        def layer(x, w):  # a synthesis layer's conv and activation, its output kept (not reduced away)
            y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
            return jax.nn.leaky_relu(y, 0.2)

        def backward_pass(x, w, dy):  # the input's and the kernel's gradients
            return jax.vjp(layer, x, w)[1](dy)

        fn, args = (backward_pass, (x, w, x)) if backward else (layer, (x, w))
        calls = {}
        for name, options in CHOICES.items():
            try:
                calls[name] = jax.jit(fn, compiler_options=options).lower(*args).compile()
            except Exception:  # noqa: BLE001  an experimental option another jaxlib no longer knows
                if not options:
                    raise
                seconds[name] = float("inf")
        for call in calls.values():
            jax.block_until_ready(call(*args))  # a fresh executable's first run also allocates
        times = {name: [] for name in calls}
        for _ in range(REPEATS):
            for name, call in calls.items():
                times[name].append(timed(functools.partial(call, *args)))
        for name in calls:
            seconds[name] += statistics.median(times[name])
    return seconds
