"""`kernel_impl = "auto"`: the adaptive conv implementation measured fastest here, not looked up.

Which of the four equal computations (layers.AdaptiveModulatedConv) wins depends on the backend,
the CPU, the compiler flags and the layer's shape: a fixed table tuned on one 2-core machine lost
to PyTorch on another (BENCHMARKS.md). So the first build of a shape on a machine times each
candidate on the generator's own top layers, at its per-device batch, and caches the winner in
`$GIGAGAN_JAX_CACHE/kernel_impl/` under a key naming the machine, the software, who runs its
convolutions (gigagan_jax.cpu_convs) and the shape; every later build there reads the file. All
implementations share one parameter tree, so a model trained with one is restored and sampled
with another.
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax.core import meta

from gigagan_jax import cpu_convs
from gigagan_jax.hosts import main_host_int
from gigagan_jax.machine import choice_file, machine, read_choice, timed, write_choice
from gigagan_jax.models.layers import MODCONV_IMPLS, AdaptiveModulatedConv
from gigagan_jax.workdir import user_cache_dir

CACHE_NAME = "kernel_impl"
CACHE_FORMAT = 4  # bump when what is measured changes: older choices are measured again
# train: forward + backward (the G/D steps); sample: forward only; shapes: nothing will run (parameter
# shapes, abstract plans), which every implementation gives alike: no measurement.
OBJECTIVES = ("train", "sample", "shapes")
# The probe's bounds keep a first measurement to seconds on a CPU whatever the config: the grouped
# conv's backward alone takes seconds per call at 64 px. Sampling's forward-only probe reaches
# 64 px: on a 2-core AVX2 EPYC grouped and per_sample tied at 32 px (15.5 against 15.6 ms, batch 8)
# while per_sample won by 20-25 % at 64 px, and sampling 64 images at 64 px took 1.41 s with it
# against 1.64 s with grouped (BENCHMARKS.md).
PROBE_MAX_RESOLUTION = {"train": 32, "sample": 64, "shapes": 32}
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
        top = ([p for p in pairs if p[0] <= PROBE_MAX_RESOLUTION[objective]] or pairs[:1])[-PROBE_LAYERS:]
        per_device = max(1, min(PROBE_MAX_BATCH, batch // max(num_devices, 1)))
        return cls(per_device, tuple(top), num_kernels, dtype, objective, num_devices)

    @property
    def candidates(self) -> tuple[str, ...]:
        """With the batch split over several devices, BATCH_WHOLE_IMPLS are no candidates whatever
        their time on one device: the probe would not see what they cost in collectives."""
        return tuple(i for i in MODCONV_IMPLS if self.num_devices == 1 or i not in BATCH_WHOLE_IMPLS)


def measured_on() -> dict:
    """The machine, and who runs its convolutions (cpu_convs): the probe is compiled as the model is."""
    return {**machine(), "cpu_convs": cpu_convs.choice()}


def cache_path(probe: Probe, machine_key: dict) -> str:
    return choice_file(user_cache_dir(CACHE_NAME),
                       {"format": CACHE_FORMAT, "machine": machine_key, "probe": dataclasses.asdict(probe)})


def measure(probe: Probe, impls: Sequence[str]) -> dict:
    """{impl: median seconds of one call} over the probe's layers (compilation excluded)."""
    seconds: dict[str, float] = {}
    for impl in sorted(impls, key=MEASURE_ORDER.index):
        call = _probe_call(probe, impl)  # compiled
        jax.block_until_ready(call())  # a fresh executable's first run also allocates and warms up
        first = timed(call)
        if seconds and first > DROP_FACTOR * min(seconds.values()):
            seconds[impl] = first  # clearly out of the running: not worth its repeats
            continue
        repeats = max(REPEATS, min(MAX_REPEATS, int(REPEAT_SECONDS / max(first, 1e-6))))  # fast calls are noisy
        seconds[impl] = statistics.median([first] + [timed(call) for _ in range(repeats - 1)])
    return seconds


def choose(probe: Probe, measure_fn: Measure = measure, log: Callable[[str], None] = print) -> str:
    """The candidate measured fastest for `probe` on this machine: read from the cache, or measured
    now and cached. On several hosts, process 0's choice is everyone's (one program for all)."""
    impls, machine_key = probe.candidates, measured_on()
    path = cache_path(probe, machine_key)
    choice = read_choice(path, impls)
    if choice is None:
        t0 = time.perf_counter()
        seconds = measure_fn(probe, impls)
        choice = write_choice(path, {"format": CACHE_FORMAT, "probe": dataclasses.asdict(probe), "machine": machine_key,
                                     "seconds": seconds, "choice": min(seconds, key=seconds.get)}, impls)
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

    fn = jax.jit(loss if probe.objective == "sample" else jax.grad(loss), compiler_options=cpu_convs.compiler_options())
    return functools.partial(fn.lower(inputs, w).compile(), inputs, w)
