"""Does `kernel_impl = "auto"`'s probe pick what the whole step would? Probe vs whole program, per implementation.

    python -m benchmarks.kernel_choice --config configs/bench64.py [--repeats 5] [--sample-batch 64]

For each adaptive conv implementation, prints what the probe times (models/kernel_choice.py:
the generator's top level, measured afresh, the cache untouched) beside the whole D step + G
step and sampling `--sample-batch` images with that implementation (median seconds after
warm-up, one device), and whether the probe's fastest is the whole program's fastest.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

from benchmarks._timing import median_seconds
from gigagan_jax import cpu_convs
from gigagan_jax.config import load_config, validate_config
from gigagan_jax.generate.sample import generate
from gigagan_jax.machine import compiler_flags, cpu_model
from gigagan_jax.models import kernel_choice
from gigagan_jax.models.build import build_discriminator, build_generator, kernel_probe
from gigagan_jax.train.state import jit_init
from gigagan_jax.train.step import GanSteps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/bench64.py")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sample-batch", type=int, default=64)
    args = parser.parse_args()
    config = load_config(args.config)
    validate_config(config)
    probes = {objective: kernel_probe(config, objective, num_devices=1) for objective in ("train", "sample")}
    probed = {objective: kernel_choice.measure(p, p.candidates) for objective, p in probes.items()}

    b, r, n = config.train.batch_size, config.model.resolution, args.sample_batch
    whole = {"train": {}, "sample": {}}
    state = None  # every implementation has the same parameters
    for impl in probes["train"].candidates:
        config.model.g.kernel_impl = impl
        steps = GanSteps(config, build_generator(config), build_discriminator(config))
        spec = steps.generator.spec
        state = jit_init(steps.init_state)(jax.random.PRNGKey(0)) if state is None else state
        batch = {"image": jax.random.randint(jax.random.PRNGKey(1), (b, r, r, 3), 0, 256).astype(jnp.uint8),
                 "text_features": jax.random.normal(jax.random.PRNGKey(2), (b, spec.text_len, spec.text_encoder_dim)),
                 "eot_index": jnp.full((b,), 8, jnp.int32)}
        d_step, g_step, key = cpu_convs.jit(steps.d_step), cpu_convs.jit(steps.g_step), jax.random.PRNGKey(3)

        def d_and_g():
            s, _ = d_step(state, batch, key)
            return g_step(s, batch, key)

        z = jax.random.normal(jax.random.PRNGKey(4), (n, spec.z_dim))
        feats = jax.random.normal(jax.random.PRNGKey(5), (n, spec.text_len, spec.text_encoder_dim))
        eot = jnp.full((n,), 8, jnp.int32)
        whole["train"][impl] = median_seconds(d_and_g, args.repeats)
        whole["sample"][impl] = median_seconds(lambda: generate(steps.generator, state.g_ema, z, feats, eot),
                                               args.repeats)

    print(f"{cpu_model()}, {jax.default_backend()}, {args.config}: batch {b}, {r} px, "
          f"sampling {n}; XLA_FLAGS={compiler_flags()!r}")
    for objective, p in probes.items():
        what = "D step + G step" if objective == "train" else f"sample {n}"
        print(f"\n{objective}: probe = level {p.layers[0][0]} px x {p.layers[0][1]} ch, batch {p.batch}")
        print(f"{'impl':<12} {'probe ms':>9} {what + ' s':>18}")
        for impl in p.candidates:
            print(f"{impl:<12} {probed[objective][impl] * 1e3:>9.2f} {whole[objective][impl]:>18.3f}")
        pick, best = min(probed[objective], key=probed[objective].get), min(whole[objective], key=whole[objective].get)
        print(f"probe picks {pick}; the whole program's fastest is {best}"
              + ("" if pick == best else f" ({whole[objective][pick] / whole[objective][best]:.2f}x slower with the pick)"))


if __name__ == "__main__":
    main()
