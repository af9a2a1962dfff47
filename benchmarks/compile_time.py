"""Cold compile time of each executable a training run starts with (issue #23 item 1).

    python -m benchmarks.compile_time --config configs/tiny.py [--devices 8] [--opt-level 0] [--runs 5]

Prints, per executable (init, D step, D step with R1, G step), the seconds spent tracing and
lowering it in Python and compiling it in XLA, with no persistent cache, and the sum for step 0
(init + D with R1 + G, all a fresh run needs before its first step) and step 1 (+ the plain D
step). Also the count of fused kernels in each compiled executable: XLA:CPU compiles each on its
own, which is what the compile time follows. Text features are random (no CLIP), as in
benchmarks.step_speed; the CPU model is printed beside the figures, which compare only within
one machine.

`--runs N` measures N times, each in a fresh process (a process compiles an executable once), one
after another, and prints each figure's median and range: a shared 2-core machine's pace moves by
±15-25 % between runs, so one run says little about a change of a few seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

from gigagan_jax.machine import cpu_model

EXECUTABLES = ("init", "D step + R1", "G step", "D step")
RESULT_PREFIX = "compile_time result: "  # a child's one JSON line for the parent (--runs)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/tiny.py")
    parser.add_argument("--devices", type=int, default=1, help="simulated CPU devices (data-parallel mesh)")
    parser.add_argument("--opt-level", type=int, default=None,
                        help="XLA backend optimisation level (default: XLA's; the test suite uses 0)")
    parser.add_argument("--kernel-impl", default=None,
                        help="config.model.g.kernel_impl (default: the config's; 'auto' measures on first use)")
    parser.add_argument("--runs", type=int, default=1,
                        help="cold measurements, each in a fresh process: medians and ranges when above 1")
    parser.add_argument("--result-line", action="store_true", help=argparse.SUPPRESS)  # a --runs child's
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs must be at least 1, got {args.runs}")
    return args


def to_steps(executables: dict[str, dict]) -> tuple[float, float]:
    """(to step 0, to step 1): the lower + compile seconds a fresh run spends before its first and
    second step, from measure_once's {name: {"lower", "compile", ...}}."""
    seconds = {name: e["lower"] + e["compile"] for name, e in executables.items()}
    first = seconds["init"] + seconds["D step + R1"] + seconds["G step"]
    return first, first + seconds["D step"]


def measure_once(args: argparse.Namespace) -> dict:
    """Compile every executable cold in this process; print the table and return
    {"header": str, "executables": {name: {"lower", "compile", "kernels"}}}."""
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
                   **{name: steps[name] for name in EXECUTABLES[1:]}}
    header = (f"{args.config}: {cpu_model()}, {jax.device_count()} device(s), batch {b}, {r} px, "
              f"kernel_impl {config.model.g.kernel_impl}, convs by {cpu_convs.choice()}, "
              f"XLA flags {os.environ['XLA_FLAGS']!r}")
    print(header, flush=True)
    print(f"{'executable':<14} {'lower s':>8} {'compile s':>10} {'kernels':>8}")
    record = {}
    for name, (jitted, example) in executables.items():
        t0 = time.perf_counter()
        lowered = jitted.lower(*example)
        t1 = time.perf_counter()
        compiled = lowered.compile()
        t2 = time.perf_counter()
        kernels = len(re.findall(r"^\s+\S+ = \S+ fusion\(", compiled.as_text(), re.M))
        record[name] = {"lower": t1 - t0, "compile": t2 - t1, "kernels": kernels}
        print(f"{name:<14} {t1 - t0:>8.1f} {t2 - t1:>10.1f} {kernels:>8}", flush=True)
    first, second = to_steps(record)
    print(f"to step 0: {first:.1f} s; to step 1 (+ the plain D step): {second:.1f} s", flush=True)
    return {"header": header, "executables": record}


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def summarise(runs: list[dict]) -> str:
    """Median (min-max) of each figure over `runs` (measure_once's records). Kernel counts are
    the compiler's, the same in every run: a run that differs is named, not averaged away."""
    lines = [f"{len(runs)} cold runs, each in a fresh process: median (min-max)",
             f"{'executable':<14} {'lower s':>16} {'compile s':>18} {'kernels':>8}"]
    for name in EXECUTABLES:
        rows = [run["executables"][name] for run in runs]
        counts = sorted({row["kernels"] for row in rows})
        kernels = str(counts[0]) if len(counts) == 1 else "differ: " + "/".join(map(str, counts))
        lines.append(f"{name:<14} {_spread([r['lower'] for r in rows]):>16} "
                     f"{_spread([r['compile'] for r in rows]):>18} {kernels:>8}")
    totals = [to_steps(run["executables"]) for run in runs]
    lines.append(f"to step 0: {_spread([t[0] for t in totals])} s; "
                 f"to step 1 (+ the plain D step): {_spread([t[1] for t in totals])} s")
    return "\n".join(lines)


def child_command(argv: list[str]) -> list[str]:
    """This benchmark as one cold run in a fresh process: `argv` with --runs 1 after it (argparse
    keeps an option's last value), its record printed as one JSON line for the parent."""
    return [sys.executable, "-m", "benchmarks.compile_time", *argv, "--runs", "1", "--result-line"]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.runs == 1:
        record = measure_once(args)
        if args.result_line:
            print(RESULT_PREFIX + json.dumps(record), flush=True)
        return 0
    runs = []
    for i in range(args.runs):
        print(f"-- run {i + 1} of {args.runs}", flush=True)
        results = []
        with subprocess.Popen(child_command(argv), stdout=subprocess.PIPE, text=True) as proc:
            for line in proc.stdout:  # the child's table as it comes, its result line kept apart
                if line.startswith(RESULT_PREFIX):
                    results.append(line[len(RESULT_PREFIX):])
                else:
                    print(line, end="", flush=True)
        if proc.returncode != 0 or not results:
            print(f"error: run {i + 1} failed (exit code {proc.returncode}); its stderr is above", file=sys.stderr)
            return 1
        runs.append(json.loads(results[-1]))
    print(runs[0]["header"])
    print(summarise(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
