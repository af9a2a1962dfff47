"""Train-step time of one 4-device mesh as 2 processes x 2 devices vs 1 process x 4 devices (CPU).

    python -m benchmarks.multihost_step [--config configs/tiny.py] [--steps 40] [--clip DIR] \
        [--set config.mesh.shape="(4,1)" ...]

Runs `train.py` itself both ways (the pair through `gigagan_jax.tools.local_cluster`), on the
same global batch and mesh shape, and reads each run's `steady_images_per_second` from its
summary.json: measured from the first log step on, so compilation is excluded. What the pair
adds is the cross-process traffic (gloo over localhost) and a second Python host loop sharing
the same cores; on a pod each process has its own host. Needs a CLIP of the config's text
width: --clip DIR, or a random one is made (tests/clip_fixtures.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from gigagan_jax.config import load_config
from gigagan_jax.machine import cpu_model
from gigagan_jax.tools import local_cluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _train(workdir: str, args, processes: int, devices: int) -> dict:
    command = [sys.executable, os.path.join(ROOT, "train.py"), "--config", args.config, "--workdir", workdir,
               f"--config.clip.path={args.clip}", f"--config.train.num_steps={args.steps}",
               f"--config.train.log_every={args.log_every}", "--config.train.checkpoint_every=100000",
               "--config.train.sample_every=100000", "--config.loss.r1_interval=1",
               *(f"--{override}" for override in args.set)]
    pipes = dict(cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if processes == 1:
        procs = [subprocess.Popen(command, env=local_cluster.process_env(devices), **pipes)]
    else:
        procs = local_cluster.start(command + ["--config.train.distributed=True"], processes, devices, **pipes)
    for code, _, err in local_cluster.wait(procs, timeout_s=3600):
        if code != 0:
            raise SystemExit(f"train.py failed:\n{err[-3000:]}")
    with open(os.path.join(workdir, "summary.json")) as f:
        return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/tiny.py")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--clip", default=None)
    parser.add_argument("--set", action="append", default=[], help="a config override for both runs, "
                        "e.g. config.mesh.shape='(4,1)' (pure data parallel)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.clip is None:
            sys.path.insert(0, os.path.join(ROOT, "tests"))
            from clip_fixtures import save_tiny_clip

            args.clip = save_tiny_clip(os.path.join(tmp, "clip"), image_size=16)
        rows = []
        for processes, devices in ((1, 4), (2, 2)):
            summary = _train(os.path.join(tmp, f"run_{processes}x{devices}"), args, processes, devices)
            rows.append((f"{processes} process x {devices} devices", summary["steady_images_per_second"]))
    batch = load_config(os.path.join(ROOT, args.config)).train.batch_size
    print(f"{cpu_model()}, {os.cpu_count()} cores; {args.config} {' '.join(args.set)}, batch {batch}, "
          f"{args.steps} steps (timed after the first {args.log_every})")
    print(f"{'layout':<26} {'images/s':>9} {'s/step':>8}")
    for name, rate in rows:
        print(f"{name:<26} {rate:>9.1f} {batch / rate:>8.3f}")
    print(f"pair / single step time: {rows[0][1] / rows[1][1]:.2f}x")


if __name__ == "__main__":
    main()
