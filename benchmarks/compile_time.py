"""Cold compile time of each executable a training run starts with (issue #23 item 1).

    python -m benchmarks.compile_time --config configs/tiny.py [--devices 8] [--opt-level 0]

Prints, per executable (init, D step, D step with R1, G step), the seconds spent tracing and
lowering it in Python and compiling it in XLA, with no persistent cache, and the sum for step 0
(init + D with R1 + G, all a fresh run needs before its first step) and step 1 (+ the plain D
step). Also the count of fused kernels in each compiled executable: XLA:CPU compiles each on its
own, which is what the compile time follows. Text features are random (no CLIP), as in
benchmarks.step_speed; the CPU model is printed beside the figures, which compare only within
one machine.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

from gigagan_jax.machine import cpu_model


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/tiny.py")
    parser.add_argument("--devices", type=int, default=1, help="simulated CPU devices (data-parallel mesh)")
    parser.add_argument("--opt-level", type=int, default=None,
                        help="XLA backend optimisation level (default: XLA's; the test suite uses 0)")
    parser.add_argument("--kernel-impl", default=None,
                        help="config.model.g.kernel_impl (default: the config's; 'auto' measures on first use)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    flags = [f"--xla_force_host_platform_device_count={args.devices}"]
    if args.opt_level is not None:
        flags.append(f"--xla_backend_optimization_level={args.opt_level}")
    os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *flags]).strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    jax.config.update("jax_enable_compilation_cache", False)  # cold, whatever the user's setting
    from gigagan_jax import cpu_convs
    from gigagan_jax.config import load_config, validate_config
    from gigagan_jax.train.pod_plan import abstract_step_inputs, step_functions
    from gigagan_jax.train.sharding import mesh_from_config
    from gigagan_jax.train.state import jit_init

    config = load_config(args.config)
    config.clip.path = ""  # random text features: compile time does not depend on a CLIP's weights
    if args.kernel_impl:
        config.model.g.kernel_impl = args.kernel_impl
    validate_config(config, num_devices=jax.device_count())
    mesh = mesh_from_config(config)
    inputs = abstract_step_inputs(config, mesh)  # laid out as the input pipeline lays out a batch
    b, r = config.train.batch_size, config.model.resolution
    steps = step_functions(inputs, mesh)
    executables = {"init": (jit_init(inputs.init, inputs.state_shardings), (inputs.key,)),
                   **{name: steps[name] for name in ("D step + R1", "G step", "D step")}}
    print(f"{args.config}: {cpu_model()}, {jax.device_count()} device(s), batch {b}, {r} px, "
          f"kernel_impl {config.model.g.kernel_impl}, convs by {cpu_convs.choice()}, "
          f"XLA flags {os.environ['XLA_FLAGS']!r}", flush=True)
    print(f"{'executable':<14} {'lower s':>8} {'compile s':>10} {'kernels':>8}")
    seconds = {}
    for name, (jitted, example) in executables.items():
        t0 = time.perf_counter()
        lowered = jitted.lower(*example)
        t1 = time.perf_counter()
        compiled = lowered.compile()
        t2 = time.perf_counter()
        kernels = len(re.findall(r"^\s+\S+ = \S+ fusion\(", compiled.as_text(), re.M))
        seconds[name] = t2 - t0
        print(f"{name:<14} {t1 - t0:>8.1f} {t2 - t1:>10.1f} {kernels:>8}", flush=True)
    first = seconds["init"] + seconds["D step + R1"] + seconds["G step"]
    print(f"to step 0: {first:.1f} s; to step 1 (+ the plain D step): {first + seconds['D step']:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
