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

import jax
import jax.numpy as jnp

from benchmarks._timing import matmul_peak, median_seconds
from gigagan_jax.config import load_config, validate_config
from gigagan_jax.models.build import build_discriminator, build_generator
from gigagan_jax.models.generator import Generator
from gigagan_jax.models.kernel_choice import cpu_model
from gigagan_jax.generate.sample import generate
from gigagan_jax.train.pod_plan import flops_of
from gigagan_jax.train.state import jit_init
from gigagan_jax.train.step import GanSteps

REFERENCE = {"D+G (no R1)": 1.52, "D+G (with R1)": 2.43, "sample 64": 0.39}  # PyTorch, DESIGN.md section 13


def main() -> None:
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
    # Not donated: the same state is reused for every timed call.
    d_plain = jax.jit(steps.d_step)
    d_r1 = jax.jit(functools.partial(steps.d_step, with_r1=True))
    g_step = jax.jit(steps.g_step)

    def d_and_g(d_fn):
        s, _ = d_fn(state, batch, rng)
        return g_step(s, batch, rng)

    n = args.sample_batch
    z = jax.random.normal(jax.random.PRNGKey(4), (n, spec.z_dim))
    feats = jax.random.normal(jax.random.PRNGKey(5), (n, spec.text_len, spec.text_encoder_dim))
    eot = jnp.full((n,), 8, jnp.int32)
    sample = lambda: generate(sampler, state.g_ema, z, feats, eot)  # noqa: E731

    results = {
        "D step": median_seconds(lambda: d_plain(state, batch, rng), args.repeats),
        "D step (with R1)": median_seconds(lambda: d_r1(state, batch, rng), args.repeats),
        "G step": median_seconds(lambda: g_step(state, batch, rng), args.repeats),
        "D+G (no R1)": median_seconds(lambda: d_and_g(d_plain), args.repeats),
        "D+G (with R1)": median_seconds(lambda: d_and_g(d_r1), args.repeats),
        f"sample {n}": median_seconds(sample, args.repeats),
    }
    peak = matmul_peak(args.matmul, args.repeats)["float32"] * 1e3  # GFLOP/s
    print(f"{cpu_model()}: f32 matmul peak {peak:.1f} GFLOP/s ({args.matmul}^3 under XLA)")
    print(f"backend={jax.default_backend()} devices={jax.device_count()} batch={b} resolution={r} "
          f"kernel_impl={spec.kernel_impl} (sampling: {sampler.spec.kernel_impl}) repeats={args.repeats}")
    print(f"{'what':<18} {'median s':>9} {'reference s':>12} {'speed-up':>9}")
    for name, seconds in results.items():
        ref = REFERENCE.get(name)
        extra = f"{ref:>12.2f} {ref / seconds:>8.2f}x" if ref else ""
        print(f"{name:<18} {seconds:>9.3f} {extra}")
    # Counted on the loop-free "patches" form of the same computation: XLA's cost analysis
    # counts a loop body once, so "per_sample" (a lax.map over samples) would read n x too low.
    counted = Generator(dataclasses.replace(spec, kernel_impl="patches"))
    counted_steps = GanSteps(config, counted, disc)
    gflop = {
        "D step": gflop_of(jax.jit(counted_steps.d_step), state, batch, rng),
        "D step (with R1)": gflop_of(jax.jit(functools.partial(counted_steps.d_step, with_r1=True)),
                                     state, batch, rng),
        "G step": gflop_of(jax.jit(counted_steps.g_step), state, batch, rng),
        f"sample {n}": gflop_of(generate, counted, state.g_ema, z, feats, eot),
    }
    gflop["D+G (no R1)"] = gflop["D step"] + gflop["G step"]
    gflop["D+G (with R1)"] = gflop["D step (with R1)"] + gflop["G step"]
    print(f"\n{'what':<18} {'GFLOP':>9} {'GFLOP/s':>9} {'of peak':>8}   (XLA cost analysis of the patches form)")
    for name, seconds in results.items():
        print(f"{name:<18} {gflop[name]:>9.1f} {gflop[name] / seconds:>9.1f} {100 * gflop[name] / seconds / peak:>7.0f}%")


def gflop_of(jitted, *args) -> float:
    """Counted after XLA's optimisations (the compiled program), as BENCHMARKS.md's figures are."""
    return flops_of(jitted.lower(*args).compile()) / 1e9


if __name__ == "__main__":
    main()
