"""Grouped vs filter-bank adaptive modulated conv: median forward+backward time per shape.

    python benchmarks/modconv_impls.py [--batch 8] [--repeats 20]

Prints, for each (resolution, channels, N) of the bench64 generator, the median seconds of a
jitted forward and of forward+backward for both implementations and their ratio, so the
default `config.model.g.kernel_impl` can be chosen per backend from numbers.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax.core import meta

from gigagan_jax.models.layers import AdaptiveModulatedConv


def _median_seconds(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile + warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--num-kernels", type=int, default=4)
    args = parser.parse_args()
    print(f"backend={jax.default_backend()} batch={args.batch} channels={args.channels} N={args.num_kernels}")
    print(f"{'res':>4} {'grouped fwd':>12} {'bank fwd':>10} {'grouped f+b':>12} {'bank f+b':>10} {'bank/grouped f+b':>17}")
    for res in (4, 8, 16, 32, 64):
        x = jax.random.normal(jax.random.PRNGKey(0), (args.batch, res, res, args.channels))
        w = jax.random.normal(jax.random.PRNGKey(1), (args.batch, 64))
        row = {}
        for impl in ("grouped", "bank"):
            layer = AdaptiveModulatedConv(args.channels, 3, args.num_kernels, impl=impl)
            params = meta.unbox(jax.jit(layer.init)(jax.random.PRNGKey(2), x, w))
            fwd = jax.jit(layer.apply)
            loss = lambda p, x, w, layer=layer: jnp.sum(jnp.square(layer.apply(p, x, w)))  # noqa: E731
            fwd_bwd = jax.jit(jax.grad(loss, argnums=(0, 1)))
            row[impl] = (_median_seconds(fwd, params, x, w, repeats=args.repeats),
                         _median_seconds(fwd_bwd, params, x, w, repeats=args.repeats))
        g, b = row["grouped"], row["bank"]
        print(f"{res:>4} {g[0]*1e3:>10.2f}ms {b[0]*1e3:>8.2f}ms {g[1]*1e3:>10.2f}ms {b[1]*1e3:>8.2f}ms {b[1]/g[1]:>17.2f}")


if __name__ == "__main__":
    main()
