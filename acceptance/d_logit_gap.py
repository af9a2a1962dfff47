"""Does the discriminator tell real from generated images apart? Its logit gap over a run.

    python -m acceptance.d_logit_gap --workdir runs/upsampler_demo [--window 125]

Reads the run's TensorBoard scalars (`logits/real`, `logits/fake`, logged every
config.train.log_every steps as the mean over those steps) and prints, per window of steps, the
mean real logit, fake logit and their gap, and the R1 penalty. A gap near 0 all run means D's
output does not depend on whether its input is real: the adversarial term then shapes nothing.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from gigagan_jax.train.metrics import read_scalars
from gigagan_jax.workdir import is_dir, tensorboard_dir


def windows(scalars: dict, window: int) -> list[dict]:
    """[{step, real, fake, gap, r1}] per window: means of the points logged in (step - window, step]."""
    real, fake = dict(scalars["logits/real"]), dict(scalars["logits/fake"])
    r1 = dict(scalars.get("d/r1_penalty", []))
    steps = sorted(set(real) & set(fake))
    rows = []
    for end in range(window, steps[-1] + window, window):
        inside = [s for s in steps if end - window < s <= end]
        if not inside:
            continue
        r, f = np.mean([real[s] for s in inside]), np.mean([fake[s] for s in inside])
        penalties = [r1[s] for s in r1 if end - window < s <= end]
        rows.append({"step": min(end, steps[-1]), "real": float(r), "fake": float(f), "gap": float(r - f),
                     "r1": float(np.mean(penalties)) if penalties else float("nan")})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--window", type=int, default=125, help="steps per row")
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error(f"--window must be >= 1, got {args.window}")
    log_dir = tensorboard_dir(args.workdir)
    scalars = read_scalars(log_dir) if is_dir(log_dir) else {}
    if "logits/real" not in scalars:
        print(f"error: no logits/real scalars in {log_dir}", file=sys.stderr)
        return 1
    print("| step | real logit | fake logit | gap | R1 penalty |")
    print("|---:|---:|---:|---:|---:|")
    for row in windows(scalars, args.window):
        print(f"| {row['step']} | {row['real']:+.3f} | {row['fake']:+.3f} | {row['gap']:+.3f} | {row['r1']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
