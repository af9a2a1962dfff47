"""`kernel_impl = "auto"`: the adaptive conv implementation measured fastest here, not looked up.

Which of the four equal computations (layers.AdaptiveModulatedConv) wins depends on the backend,
the CPU, the compiler flags and the layer's shape: a fixed table tuned on one 2-core machine lost
to PyTorch on another (BENCHMARKS.md). So the first build of a shape on a machine times each
candidate on the generator's own top layers, at its per-device batch, and caches the winner in
`$GIGAGAN_JAX_CACHE/kernel_impl/` under a key naming the machine, the software and the shape;
every later build there reads the file. All implementations share one parameter tree, so a model
trained with one is restored and sampled with another.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax.core import meta

from gigagan_jax.hosts import main_host_int
from gigagan_jax.models.layers import MODCONV_IMPLS, AdaptiveModulatedConv
from gigagan_jax.workdir import user_cache_dir

CACHE_NAME = "kernel_impl"
CACHE_FORMAT = 3  # bump when what is measured changes: older choices are measured again
# train: forward + backward (the G/D steps); sample: forward only; shapes: nothing will run (parameter
# shapes, abstract plans), which every implementation gives alike: no measurement.
OBJECTIVES = ("train", "sample", "shapes")
# The probe's bounds keep a first measurement to seconds on a CPU whatever the config: larger layers
# ranked the candidates alike (BENCHMARKS.md's 4-64 px table), while the grouped conv's backward
# alone takes seconds per call at 64 px on a CPU.
PROBE_MAX_RESOLUTION = 32
PROBE_MAX_CHANNELS = 256
PROBE_MAX_BATCH = 8
PROBE_LAYERS = 1  # the generator's top level (up to the cap): most of its FLOPs
REPEATS = 3  # timed calls per candidate at least; more, up to MAX_REPEATS, while under REPEAT_SECONDS
MAX_REPEATS = 15
REPEAT_SECONDS = 0.1
DROP_FACTOR = 3.0  # a candidate this much slower than the best on its first call is not repeated
# Measured in this order; it decides only how soon a slow candidate is dropped (the grouped conv's
# backward is XLA:CPU's slow path: seconds per call at the probe's largest shape).
MEASURE_ORDER = ("per_sample", "patches", "bank", "grouped")
# The grouped conv folds the batch into channels ([1, H, W, B*C]) and per_sample loops over it one
# sample at a time: under a split batch the partitioner gathers the activations whole onto every
# device (tiny's D + R1 step over 8 devices all-gathers a 262 KB activation with either, where bank
# and patches gather only weights; tests/test_kernel_choice checks one layer). At a per-device batch
# of 1 the grouped conv is a plain conv and times fastest, so only this rule keeps it out.
BATCH_WHOLE_IMPLS = ("grouped", "per_sample")

Measure = Callable[["Probe", Sequence[str]], dict]


@dataclasses.dataclass(frozen=True)
class Probe:
    """What is timed: the conv of each probed level, one after another, at the per-device batch."""

    batch: int
    layers: tuple[tuple[int, int], ...]  # (resolution, channels) of each probed level
    num_kernels: int
    dtype: str
    objective: str  # OBJECTIVES
    num_devices: int  # the batch is split over this many devices (BATCH_WHOLE_IMPLS need it whole)

    @classmethod
    def of(cls, levels: Sequence[int], channels: Sequence[int], batch: int, num_kernels: int, dtype: str,
           objective: str, num_devices: int) -> "Probe":
        """The probe for a generator whose synthesis levels are `levels` with `channels`, trained
        (or sampled) at global `batch` over `num_devices`."""
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        pairs = [(r, min(c, PROBE_MAX_CHANNELS)) for r, c in zip(levels, channels)]  # lowest resolution first
        top = ([p for p in pairs if p[0] <= PROBE_MAX_RESOLUTION] or pairs[:1])[-PROBE_LAYERS:]
        per_device = max(1, min(PROBE_MAX_BATCH, batch // max(num_devices, 1)))
        return cls(per_device, tuple(top), num_kernels, dtype, objective, num_devices)

    @property
    def candidates(self) -> tuple[str, ...]:
        """With the batch split over several devices, BATCH_WHOLE_IMPLS are no candidates whatever
        their time on one device: the probe would not see what they cost in collectives."""
        return tuple(i for i in MODCONV_IMPLS if self.num_devices == 1 or i not in BATCH_WHOLE_IMPLS)


def machine() -> dict:
    """What a measured choice depends on besides the shape: backend, device, CPU, software, flags."""
    device = jax.devices()[0]
    return {"backend": jax.default_backend(), "device_kind": device.device_kind, "cpu": cpu_model(),
            "threads": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "jax": jax.__version__, "jaxlib": importlib.metadata.version("jaxlib"),
            "xla_flags": compiler_flags(), "python": sys.version.split()[0]}


def compiler_flags() -> str:
    """XLA_FLAGS without the simulated device count, which changes no generated code."""
    return " ".join(f for f in os.environ.get("XLA_FLAGS", "").split()
                    if not f.startswith("--xla_force_host_platform_device_count"))


def cpu_model() -> str:
    """'<model name> x<logical cores>' (Linux /proc/cpuinfo, else `platform`): machines of one kind
    differ ~3x in speed, so every measurement names the one it was made on."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = re.findall(r"^model name\s*:\s*(.+)$", f.read(), re.M)
        if names:
            return f"{names[0]} x{len(names)}"
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cache_path(probe: Probe, machine_key: dict) -> str:
    key = json.dumps({"format": CACHE_FORMAT, "machine": machine_key, "probe": dataclasses.asdict(probe)},
                     sort_keys=True)
    return os.path.join(user_cache_dir(CACHE_NAME), hashlib.sha256(key.encode()).hexdigest()[:20] + ".json")


def measure(probe: Probe, impls: Sequence[str]) -> dict:
    """{impl: median seconds of one call} over the probe's layers (compilation excluded)."""
    seconds: dict[str, float] = {}
    for impl in sorted(impls, key=MEASURE_ORDER.index):
        call = _probe_call(probe, impl)  # compiled
        jax.block_until_ready(call())  # a fresh executable's first run also allocates and warms up
        first = _timed(call)
        if seconds and first > DROP_FACTOR * min(seconds.values()):
            seconds[impl] = first  # clearly out of the running: not worth its repeats
            continue
        repeats = max(REPEATS, min(MAX_REPEATS, int(REPEAT_SECONDS / max(first, 1e-6))))  # fast calls are noisy
        seconds[impl] = statistics.median([first] + [_timed(call) for _ in range(repeats - 1)])
    return seconds


def choose(probe: Probe, measure_fn: Measure = measure, log: Callable[[str], None] = print) -> str:
    """The candidate measured fastest for `probe` on this machine: read from the cache, or measured
    now and cached. On several hosts, process 0's choice is everyone's (one program for all)."""
    impls, machine_key = probe.candidates, machine()
    path = cache_path(probe, machine_key)
    choice = _read_choice(path, impls)
    if choice is None:
        t0 = time.perf_counter()
        seconds = measure_fn(probe, impls)
        choice = _write_choice(path, {"probe": dataclasses.asdict(probe), "machine": machine_key, "seconds": seconds,
                                      "choice": min(seconds, key=seconds.get)}, impls)
        times = ", ".join(f"{i} {s * 1e3:.2f} ms" for i, s in sorted(seconds.items(), key=lambda kv: kv[1]))
        log(f"kernel_impl auto -> {choice}: measured for {probe.objective} at batch {probe.batch}, "
            f"levels {[r for r, _ in probe.layers]} ({times}) in {time.perf_counter() - t0:.1f} s; cached in {path}")
    return impls[main_host_int(impls.index(choice))]


def resolve(impl: str, probe: Probe, **kwargs) -> str:
    """`impl` itself, or for "auto" the measured choice for `probe`."""
    if impl != "auto":
        return impl
    if probe.objective == "shapes" or not probe.layers:  # no adaptive conv will run
        return probe.candidates[0]
    return choose(probe, **kwargs)


def _read_choice(path: str, impls: Sequence[str]) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as f:
            choice = json.load(f).get("choice")
    except (OSError, ValueError, AttributeError):
        return None  # absent or damaged: measured again
    return choice if choice in impls else None


def _write_choice(path: str, record: dict, impls: Sequence[str]) -> str:
    """Cache `record` (its "choice", and what it was measured on) and return the choice every
    process on this machine will use: the first one written wins (processes measuring at once may
    rank close candidates differently, and two runs
    compared bit for bit must run one program). A damaged file is replaced. A cache that cannot be
    written costs only a measurement next time."""
    record = {"format": CACHE_FORMAT, **record, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
        try:
            os.link(tmp, path)  # fails when another process wrote first
        except FileExistsError:
            if _read_choice(path, impls) is None:
                os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    except OSError:
        return record["choice"]
    return _read_choice(path, impls) or record["choice"]


def _timed(call: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(call())
    return time.perf_counter() - t0


def _probe_call(probe: Probe, impl: str) -> Callable[[], object]:
    """A zero-argument compiled call running `impl` over the probe's layers (forward, or forward and
    backward with respect to the inputs and every parameter)."""
    dtype = jnp.dtype(probe.dtype)
    rng = np.random.default_rng(0)
    layers, inputs = [], []
    w = jnp.asarray(rng.standard_normal((probe.batch, 32)), jnp.float32)  # [B, w_dim]
    for resolution, channels in probe.layers:
        layer = AdaptiveModulatedConv(channels, 3, probe.num_kernels, impl=impl, dtype=dtype)
        x = jnp.asarray(rng.standard_normal((probe.batch, resolution, resolution, channels)), dtype)  # [B, H, W, C]
        layers.append(layer)
        inputs.append((meta.unbox(layer.init(jax.random.PRNGKey(len(layers)), x, w)), x))

    def loss(inputs, w):
        return sum(jnp.sum(jnp.square(layer.apply(p, x, w).astype(jnp.float32)))
                   for layer, (p, x) in zip(layers, inputs))

    fn = jax.jit(loss if probe.objective == "sample" else jax.grad(loss))
    return functools.partial(fn.lower(inputs, w).compile(), inputs, w)
