"""A modulated 1x1 conv three ways: as a convolution, as a dot, as per-sample matmuls.

    python -m benchmarks.conv1x1 [--repeats 20]

Why `layers.conv2d` writes 1x1 kernels as einsums and `AdaptiveModulatedConv` folds a 1x1
kernel's style into each sample's kernel when the image has more pixels than the kernel has
outputs (BENCHMARKS.md, "1x1 convolutions as matmuls"). Median ms of the jitted forward and
forward + backward (gradients of x, kernel and styles), at the shapes of bench64's ToRGB (in
training and in sampling 64 images) and D's 64-channel 1x1 layers.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp

from benchmarks._timing import median_seconds
from gigagan_jax import cpu_convs
from gigagan_jax.machine import cpu_model

SHAPES = ((64, 64, 64, 3), (8, 64, 64, 3), (64, 32, 64, 3), (8, 64, 64, 64), (8, 32, 64, 64), (24, 16, 64, 64))


def as_conv(x, kernel, styles):  # x [B, H, W, Cin], kernel [Cin, Cout], styles [B, Cin]
    return jax.lax.conv_general_dilated(x * styles[:, None, None, :], kernel[None, None], (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def as_dot(x, kernel, styles):
    return jnp.einsum("bhwc,co->bhwo", x * styles[:, None, None, :], kernel)


def as_per_sample(x, kernel, styles):
    return jnp.einsum("bhwc,bco->bhwo", x, styles[:, :, None] * kernel[None])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    forms = {"conv": as_conv, "dot": as_dot, "per-sample": as_per_sample}
    print(f"{cpu_model()}, {jax.default_backend()}; median ms of {args.repeats} calls")
    header = "".join(f"{name + ' fwd':>16}{name + ' fwd+bwd':>20}" for name in forms)
    print(f"{'x [B, H, W, Cin] -> Cout':<26}{header}")
    for b, r, cin, cout in SHAPES:
        keys = jax.random.split(jax.random.key(0), 3)
        x = jax.random.normal(keys[0], (b, r, r, cin))
        kernel, styles = jax.random.normal(keys[1], (cin, cout)), jax.random.normal(keys[2], (b, cin))
        row = f"{f'[{b}, {r}, {r}, {cin}] -> {cout}':<26}"
        for form in forms.values():
            forward = cpu_convs.jit(form)
            backward = cpu_convs.jit(jax.grad(lambda *a, form=form: jnp.sum(jnp.sin(form(*a))), argnums=(0, 1, 2)))
            row += f"{1e3 * median_seconds(lambda: forward(x, kernel, styles), args.repeats):>16.2f}"
            row += f"{1e3 * median_seconds(lambda: backward(x, kernel, styles), args.repeats):>20.2f}"
        print(row, flush=True)


if __name__ == "__main__":
    main()
