"""Every adaptive modulated conv implementation: median fwd and fwd+bwd time per shape.

    python -m benchmarks.modconv_impls [--batch 8] [--repeats 20]

Prints, for each resolution of the bench64 generator's layer shape, the median milliseconds of
a jitted forward and of forward+backward for every implementation, so the default
`config.model.g.kernel_impl` can be chosen per backend from numbers.
"""

import argparse
import functools

import jax
import jax.numpy as jnp
from flax.core import meta

from benchmarks._timing import median_seconds
from gigagan_jax import cpu_convs
from gigagan_jax.models.layers import MODCONV_IMPLS, AdaptiveModulatedConv


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--num-kernels", type=int, default=4)
    args = parser.parse_args()
    print(f"backend={jax.default_backend()} batch={args.batch} channels={args.channels} N={args.num_kernels}")
    impls = MODCONV_IMPLS
    print("res  " + "  ".join(f"{i + ' fwd':>13} {i + ' f+b':>13}" for i in impls) + "   (ms)")
    for res in (4, 8, 16, 32, 64):
        x = jax.random.normal(jax.random.PRNGKey(0), (args.batch, res, res, args.channels))
        w = jax.random.normal(jax.random.PRNGKey(1), (args.batch, 64))
        row = []
        for impl in impls:
            layer = AdaptiveModulatedConv(args.channels, 3, args.num_kernels, impl=impl)
            params = meta.unbox(jax.jit(layer.init)(jax.random.PRNGKey(2), x, w))
            fwd = cpu_convs.jit(layer.apply)
            loss = functools.partial(_sum_of_squares, layer)
            fwd_bwd = cpu_convs.jit(jax.grad(loss, argnums=(0, 1)))
            row += [median_seconds(lambda: fwd(params, x, w), args.repeats),
                    median_seconds(lambda: fwd_bwd(params, x, w), args.repeats)]
        print(f"{res:>3}  " + "  ".join(f"{t * 1e3:>13.2f}" for t in row))


def _sum_of_squares(layer, params, x, w):
    return jnp.sum(jnp.square(layer.apply(params, x, w)))


if __name__ == "__main__":
    main()
