"""Our D+G steps and sampling against the PyTorch reference, interleaved in one run (#23 item 3).

    python -m benchmarks.reference_speed [--config configs/bench64.py] [--rounds 5] [--calls 2]

Needs gigagan-pytorch 0.3.0 importable (BENCHMARKS.md says how it was installed beside a CPU-only
torch). The reference runs in a child process (`benchmarks.pytorch_reference`); each round times
`--calls` calls of ours, then of the reference, for each of D+G without R1, D+G with R1 and
sampling 64 images (the order alternates between rounds), so a machine whose speed drifts
(a shared host) drifts for both. Prints the medians, the spread and the speed-up, with the CPU
model, the thread counts and the XLA flags: the reference's figures move with the machine, so
only a ratio from one run means anything.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile

import jax

from benchmarks._timing import call_seconds
from benchmarks.step_speed import build_bench
from gigagan_jax import cpu_convs
from gigagan_jax.host_memory import restart_with_hugepages
from gigagan_jax.config import load_config
from gigagan_jax.machine import compiler_flags, cpu_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Reference:
    """The child process that builds and times gigagan-pytorch."""

    def __init__(self, sample_batch: int, threads: int, timeout: float = 600):
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": os.pathsep.join(
            [ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])}
        self.log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a chatty child never blocks on it
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.pytorch_reference", str(sample_batch),
                                      str(threads)], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.info = self._reply(timeout)

    def _reply(self, timeout: float) -> dict:
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            self.proc.kill()
            raise TimeoutError(f"the PyTorch reference did not answer within {timeout:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            self.log.seek(0)
            err = self.log.read()
            raise RuntimeError("the PyTorch reference exited: " + (err.strip().splitlines() or ["(no message)"])[-1])
        return json.loads(line)

    def time(self, what: str, calls: int, timeout: float = 600) -> list[float]:
        self.proc.stdin.write(json.dumps({"what": what, "calls": calls}) + "\n")
        self.proc.stdin.flush()
        return self._reply(timeout)["seconds"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def main() -> int:
    restart_with_hugepages()  # timed as the commands run (gigagan_jax/host_memory.py)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/bench64.py")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2, help="timed calls per side per round")
    parser.add_argument("--sample-batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="PyTorch's intra-op threads (default: the cores this process may use, as XLA)")
    args = parser.parse_args()
    if importlib.util.find_spec("gigagan_pytorch") is None:  # imported in the child only
        print("error: the PyTorch reference is not installed: pip install gigagan-pytorch==0.3.0 and what it needs "
              "without replacing a CPU-only torch (README.md, 'Speed against the PyTorch reference')", file=sys.stderr)
        return 2
    config = load_config(args.config)
    bench = build_bench(config, args.sample_batch)
    n = args.sample_batch
    ours = {"D+G (no R1)": bench.calls["D+G (no R1)"], "D+G (with R1)": bench.calls["D+G (with R1)"],
            "sample": bench.calls[f"sample {n}"]}
    for call in ours.values():
        jax.block_until_ready(call())  # compiles
    reference = Reference(n, args.threads)
    seconds = {name: ([], []) for name in ours}  # (ours, reference)
    try:
        for r in range(args.rounds):
            for name, call in ours.items():
                sides = [(0, lambda: call_seconds(call, args.calls)), (1, lambda: reference.time(name, args.calls))]
                for side, timed in (sides if r % 2 == 0 else sides[::-1]):
                    seconds[name][side].extend(timed())
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    finally:
        reference.close()
    info = reference.info
    print(f"{cpu_model()}; XLA: {jax.device_count()} CPU device, flags {compiler_flags()!r}, "
          f"kernel_impl {bench.steps.generator.spec.kernel_impl} (sampling {bench.sampler.spec.kernel_impl}), "
          f"convs by {cpu_convs.choice()}; "
          f"PyTorch {info['torch']} with {info['threads']} threads, gigagan-pytorch {info['gigagan_pytorch']} "
          f"(trained params G {info['trained_params']['G']:,}, D {info['trained_params']['D']:,})")
    count = lambda tree: sum(x.size for x in jax.tree.leaves(tree))  # noqa: E731
    print(f"ours: trained params G {count(bench.state.g_params):,}, D {count(bench.state.d_params):,}")
    print(f"{args.config}: batch {config.train.batch_size}, fp32; {args.rounds} rounds x {args.calls} calls per side, "
          "interleaved; median s [min-max]")
    print(f"{'what':<16} {'ours':>22} {'reference':>22} {'ours faster by':>15}")
    for name, (mine, theirs) in seconds.items():
        label = f"sample {n}" if name == "sample" else name
        a, b = statistics.median(mine), statistics.median(theirs)
        print(f"{label:<16} {a:>8.3f} [{min(mine):.3f}-{max(mine):.3f}] "
              f"{b:>8.3f} [{min(theirs):.3f}-{max(theirs):.3f}] {b / a:>14.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
