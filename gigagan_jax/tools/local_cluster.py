"""Run a command as a multi-host JAX job on this one machine: N processes x D CPU devices each.

    python -m gigagan_jax.tools.local_cluster --processes 2 --devices 2 -- \
        python train.py --config configs/tiny.py --workdir runs/pair --config.train.distributed=True

The pod code path for real, without a pod: every process gets SLURM's environment variables
(job id, node list = localhost, task count, its rank), so `jax.distributed.initialize()` with no
arguments finds the others, and XLA's CPU collectives (gloo) carry the all-reduces between them.
Process 0 writes the files; all print. Exits with the first non-zero exit code; a process that
outlives --timeout (a deadlock) gets every process killed.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Optional, Sequence

CLUSTER_VARS = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")


def process_env(devices: int, cluster: Optional[tuple[int, int, int]] = None, base: Optional[dict] = None) -> dict:
    """The environment of one process with `devices` CPU devices; `cluster` = (job id, rank,
    processes) makes it a member of a SLURM-style job, None a process on its own. Other XLA flags
    of `base` (default: this process's environment) are kept: only the device count is replaced."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in CLUSTER_VARS}
    kept = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")]
    env.update(XLA_FLAGS=" ".join([*kept, f"--xla_force_host_platform_device_count={devices}"]), JAX_PLATFORMS="cpu")
    if cluster is not None:
        job, rank, processes = cluster
        env.update(SLURM_JOB_ID=str(job), SLURM_STEP_NODELIST="localhost", SLURM_NTASKS=str(processes),
                   SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank))
    return env


def free_port() -> int:
    """A TCP port nothing on this machine listens on now: for an explicit coordinator address, or any
    local server a job or test starts."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def start(command: Sequence[str], processes: int, devices: int, job_id: Optional[int] = None,
          **popen_kwargs) -> list[subprocess.Popen]:
    """Start `processes` copies of `command`, one job. JAX derives the coordinator's port from the
    job id: give concurrent jobs different ids (default: from this process's pid and the clock)."""
    job = job_id if job_id is not None else (os.getpid() * 1000 + int(time.time() * 10)) % 10**9
    return [subprocess.Popen(list(command), env=process_env(devices, (job, rank, processes)), **popen_kwargs)
            for rank in range(processes)]


def wait(procs: Sequence[subprocess.Popen], timeout_s: float) -> list[tuple[int, str, str]]:
    """(returncode, stdout, stderr) of each process; all are killed and TimeoutError raised when
    one is still running after timeout_s (the others cannot finish without it). Every process's
    pipes are drained at once, one thread each: read in turn, a process blocked on a full stderr
    pipe would stall the job while the one being read waits for it at a collective."""
    deadline = time.time() + timeout_s
    results: list = [None] * len(procs)

    def drain(rank: int, proc: subprocess.Popen) -> None:
        out, err = proc.communicate()
        results[rank] = (proc.returncode, out, err)

    threads = [threading.Thread(target=drain, args=(rank, p), daemon=True) for rank, p in enumerate(procs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.time()))
    if any(thread.is_alive() for thread in threads):
        for p in procs:
            p.kill()
        for thread in threads:
            thread.join()
        raise TimeoutError(f"a process of the job was still running after {timeout_s:.0f} s (deadlock?)")
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--devices", type=int, default=2, help="CPU devices per process")
    parser.add_argument("--timeout", type=float, default=24 * 3600, help="seconds before every process is killed")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command every process runs")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    if args.processes < 1 or args.devices < 1:
        parser.error("--processes and --devices must be >= 1")
    try:
        results = wait(start(command, args.processes, args.devices), args.timeout)
    except TimeoutError as e:
        print(f"error: {e}", file=sys.stderr)
        return 124
    return next((code for code, _, _ in results if code != 0), 0)


if __name__ == "__main__":
    sys.exit(main())
