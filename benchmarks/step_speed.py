"""Train-step and sampling speed at the PyTorch reference's shape (DESIGN.md section 13).

    python -m benchmarks.step_speed --config configs/bench64.py [--repeats 10] [--kernel-impl patches]

Prints the median seconds (after warm-up, compilation excluded) of: the D step without and
with R1, the G step, one D+G iteration, and sampling 64 images; batch and shapes from the
config, fp32, one device. CLIP text features are encoded once outside the timed region (here:
fixed random token features of CLIP-B's shape), as in the reference. Also prints XLA's cost
analysis of each executable as achieved GFLOP/s, beside the machine's f32 matmul peak measured
first (DESIGN §13's target: D+G and sampling at >= 60 % of it).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

from benchmarks._timing import matmul_peak, median_seconds
from gigagan_jax import cpu_convs
from gigagan_jax.host_memory import restart_with_hugepages
from gigagan_jax.config import load_config, validate_config
from gigagan_jax.models.build import build_discriminator, build_generator
from gigagan_jax.models.generator import Generator
from gigagan_jax.machine import cpu_model
from gigagan_jax.generate.sample import generate
from gigagan_jax.train.pod_plan import flops_of
from gigagan_jax.train.state import TrainState, jit_init
from gigagan_jax.train.step import GanSteps

@dataclasses.dataclass
class Bench:
    """The executables DESIGN §13 times, built once: `calls` maps a name to a no-argument callable
    (not donated: the same state is reused by every timed call)."""

    steps: GanSteps
    sampler: Generator
    state: TrainState
    batch: dict
    rng: jax.Array
    sample_inputs: tuple  # (z, text features, eot index) of the sampled batch
    calls: dict[str, Callable[[], Any]]


def build_bench(config: ml_collections.ConfigDict, sample_batch: int) -> Bench:
    """Random init, a random uint8 batch and fixed random CLIP-B token features: the reference
    encodes its text once outside the timed region, so neither side times a CLIP."""
    validate_config(config)
    generator, disc = build_generator(config), build_discriminator(config)
    sampler = build_generator(config, "sample", num_devices=1)  # "auto" may choose another for sampling
    steps = GanSteps(config, generator, disc)
    spec = generator.spec
    b, r = config.train.batch_size, config.model.resolution
    state = jit_init(steps.init_state)(jax.random.PRNGKey(0))
    batch = {
        "image": jax.random.randint(jax.random.PRNGKey(1), (b, r, r, 3), 0, 256).astype(jnp.uint8),
        "text_features": jax.random.normal(jax.random.PRNGKey(2), (b, spec.text_len, spec.text_encoder_dim)),
        "eot_index": jnp.full((b,), 8, jnp.int32),
    }
    rng = jax.random.PRNGKey(3)
    d_plain = cpu_convs.jit(steps.d_step)
    d_r1 = cpu_convs.jit(functools.partial(steps.d_step, with_r1=True))
    g_step = cpu_convs.jit(steps.g_step)

    def d_and_g(d_fn):
        s, _ = d_fn(state, batch, rng)
        return g_step(s, batch, rng)

    n = sample_batch
    sample_inputs = (jax.random.normal(jax.random.PRNGKey(4), (n, spec.z_dim)),
                     jax.random.normal(jax.random.PRNGKey(5), (n, spec.text_len, spec.text_encoder_dim)),
                     jnp.full((n,), 8, jnp.int32))
    calls = {
        "D step": lambda: d_plain(state, batch, rng),
        "D step (with R1)": lambda: d_r1(state, batch, rng),
        "G step": lambda: g_step(state, batch, rng),
        "D+G (no R1)": lambda: d_and_g(d_plain),
        "D+G (with R1)": lambda: d_and_g(d_r1),
        f"sample {n}": lambda: generate(sampler, state.g_ema, *sample_inputs),
    }
    return Bench(steps, sampler, state, batch, rng, sample_inputs, calls)


def main() -> None:
    restart_with_hugepages()  # timed as the commands run (gigagan_jax/host_memory.py)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/bench64.py")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--sample-batch", type=int, default=64)
    parser.add_argument("--kernel-impl", default=None, help="override config.model.g.kernel_impl")
    parser.add_argument("--matmul", type=int, default=2048, help="size of the square matmul that measures the peak")
    args = parser.parse_args()
    config = load_config(args.config)
    if args.kernel_impl:
        config.model.g.kernel_impl = args.kernel_impl
    bench = build_bench(config, args.sample_batch)
    spec, n = bench.steps.generator.spec, args.sample_batch
    results = {name: median_seconds(call, args.repeats) for name, call in bench.calls.items()}
    peak = matmul_peak(args.matmul, args.repeats)["float32"] * 1e3  # GFLOP/s
    print(f"{cpu_model()}: f32 matmul peak {peak:.1f} GFLOP/s ({args.matmul}^3 under XLA); "
          f"convs by {cpu_convs.choice()}")
    print(f"backend={jax.default_backend()} devices={jax.device_count()} batch={config.train.batch_size} "
          f"resolution={config.model.resolution} kernel_impl={spec.kernel_impl} "
          f"(sampling: {bench.sampler.spec.kernel_impl}) repeats={args.repeats}")
    print(f"{'what':<18} {'median s':>9}")
    for name, seconds in results.items():
        print(f"{name:<18} {seconds:>9.3f}")
    # Counted on the loop-free "patches" form of the same computation: XLA's cost analysis
    # counts a loop body once, so "per_sample" (a lax.map over samples) would read n x too low.
    counted = Generator(dataclasses.replace(spec, kernel_impl="patches"))
    counted_steps = GanSteps(config, counted, bench.steps.discriminator)
    state, batch, rng = bench.state, bench.batch, bench.rng
    gflop = {
        "D step": gflop_of(jax.jit(counted_steps.d_step), state, batch, rng),
        "D step (with R1)": gflop_of(jax.jit(functools.partial(counted_steps.d_step, with_r1=True)),
                                     state, batch, rng),
        "G step": gflop_of(jax.jit(counted_steps.g_step), state, batch, rng),
        f"sample {n}": gflop_of(generate, counted, state.g_ema, *bench.sample_inputs),
    }
    gflop["D+G (no R1)"] = gflop["D step"] + gflop["G step"]
    gflop["D+G (with R1)"] = gflop["D step (with R1)"] + gflop["G step"]
    print(f"\n{'what':<18} {'GFLOP':>9} {'GFLOP/s':>9} {'of peak':>8}   (XLA cost analysis of the patches form)")
    for name, seconds in results.items():
        print(f"{name:<18} {gflop[name]:>9.1f} {gflop[name] / seconds:>9.1f} {100 * gflop[name] / seconds / peak:>7.0f}%")
    print("\nThe PyTorch reference, timed interleaved with these on this machine: python -m benchmarks.reference_speed")


def gflop_of(jitted, *args) -> float:
    """Counted after XLA's optimisations (the compiled program), as BENCHMARKS.md's figures are."""
    return flops_of(jitted.lower(*args).compile()) / 1e9


if __name__ == "__main__":
    main()
