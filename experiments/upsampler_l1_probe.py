"""How fast can a network learn to beat bicubic on the shapes data? Pure-L1 probes, no GAN.

    python -m experiments.upsampler_l1_probe --model unet [--steps 600] [--lr 1e-3] [--beta1 0.9]
        [--loss multiscale|l1] [--zero-z] [--set model.g.channel_base=2048 ...]
    python -m experiments.upsampler_l1_probe --model cnn [--width 32] [--depth 4]
        [--layers plain|equalized|modulated] [--random-style]

`unet`: the upsampler of configs/upsampler_demo.py (16 -> 64 px), unconditional, no noise
inputs, trained on multi-scale L1 (the demo's perceptual fallback) alone, or on plain L1 with
`--loss l1`. `cnn`: a reference, `depth` 3x3 convs of `width` channels on the bicubic upsample
plus a zero-initialised output conv, trained on L1; `--layers` picks flax's plain convs, the
project's equalized-lr convs (same function, parameters stored at unit scale) or its
modulated/demodulated synthesis layers and a zero-initialised modulated 1x1 toRGB, styled by a
zero vector (every style is the affine's bias, 1) or with `--random-style` a fresh N(0, I) vector
per sample, as the upsampler's w. Both read clean area-downsampled 16 px inputs of the training
shapes set, batch 16. Prints, every 50 steps, the mean L1 to the real 64 px image as a ratio to
bicubic's over the last 50 batches (< 1: better than bicubic). Isolates the regression part of
the upsampler's objective: if this does not drop below 1, neither will the GAN run.
"""

from __future__ import annotations

import argparse
import ast

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.core import meta

from gigagan_jax.config import load_config, validate_config
from gigagan_jax.data.shapes import ShapesSource
from gigagan_jax.losses.perceptual import multiscale_l1
from gigagan_jax.models.build import build_generator
from gigagan_jax.models.generator import init_generator
from gigagan_jax.models.layers import EqualizedConv, SynthesisLayer, ToRGB
from gigagan_jax.pixels import resize_to, to_signed


def set_field(config, assignment: str) -> None:
    """'model.g.channel_base=2048' -> config.model.g.channel_base = 2048 (Python literal or string)."""
    key, _, text = assignment.partition("=")
    *path, leaf = key.split(".")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text
    node = config
    for name in path:
        node = node[name]
    node[leaf] = value


class PlainCnn(nn.Module):
    """Bicubic upsample + a residual from `depth` convs (the reference learner)."""

    size: int
    width: int
    depth: int
    layers: str = "plain"
    style_dim: int = 128  # `modulated`: the style vector the affines read

    @nn.compact
    def __call__(self, lowres, style):  # style [B, style_dim]: zeros, or N(0, I) per sample (--random-style)
        bicubic = resize_to(lowres, self.size)
        y = bicubic
        for _ in range(self.depth):
            if self.layers == "plain":
                y = nn.leaky_relu(nn.Conv(self.width, (3, 3))(y), 0.2)
            elif self.layers == "equalized":
                y = EqualizedConv(self.width, activation="lrelu")(y)
            else:
                y = SynthesisLayer(self.width, 1, use_noise=False, impl="bank")(y, style)
        if self.layers == "plain":
            return bicubic + nn.Conv(3, (3, 3), kernel_init=nn.initializers.zeros)(y)
        if self.layers == "equalized":
            return bicubic + EqualizedConv(3, use_bias=False, kernel_init=nn.initializers.zeros)(y)
        return bicubic + ToRGB(kernel_init=nn.initializers.zeros)(y, style)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("unet", "cnn"), required=True)
    parser.add_argument("--config", default="configs/upsampler_demo.py")
    parser.add_argument("--set", action="append", default=[], help="config override key=value (unet)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--beta1", type=float, default=0.9)
    parser.add_argument("--loss", choices=("multiscale", "l1"), default=None,
                        help="training loss (default: multiscale for unet, as the demo's fallback; l1 for cnn)")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--layers", choices=("plain", "equalized", "modulated"), default="plain",
                        help="cnn: flax convs, equalized-lr convs, or modulated synthesis layers")
    parser.add_argument("--random-style", action="store_true",
                        help="cnn --layers modulated: a fresh N(0, I) style per sample instead of zeros")
    parser.add_argument("--zero-z", action="store_true", help="unet: z = 0 for every sample (a constant w = M(0))")
    args = parser.parse_args()
    if args.random_style and not (args.model == "cnn" and args.layers == "modulated"):
        parser.error("--random-style needs --model cnn --layers modulated")
    if args.zero_z and args.model != "unet":
        parser.error("--zero-z needs --model unet")
    args.loss = args.loss or ("multiscale" if args.model == "unet" else "l1")

    config = load_config(args.config)
    config.model.conditioning = "none"
    config.model.g.cross_attn_resolutions = ()
    config.model.g.use_noise = False
    for assignment in args.set:
        set_field(config, assignment)
    validate_config(config)
    size, batch = config.model.resolution, 16
    if args.model == "unet":
        net = build_generator(config)
        params = meta.unbox(init_generator(net, jax.random.PRNGKey(0), 1)["params"])

        def forward(p, lowres, key):
            shape = (lowres.shape[0], net.spec.z_dim)
            z = jnp.zeros(shape) if args.zero_z else jax.random.normal(key, shape)
            return net.apply({"params": p}, z, lowres, noise_mode="none")[-1]
    else:
        net = PlainCnn(size, args.width, args.depth, args.layers)
        r = config.model.upsampler.input_resolution
        params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, r, r, 3)), jnp.zeros((1, net.style_dim)))

        def forward(p, lowres, key):
            shape = (lowres.shape[0], net.style_dim)
            style = jax.random.normal(key, shape) if args.random_style else jnp.zeros(shape)
            return net.apply(p, lowres, style)

    tx = optax.adam(args.lr, b1=args.beta1, b2=0.99)
    opt = tx.init(params)

    def loss_fn(p, x, key):  # x [B, R, R, 3] in [-1, 1]
        lowres = resize_to(x, config.model.upsampler.input_resolution)  # area down-sampling, as lowres_input
        out = forward(p, lowres, key)
        loss = jnp.mean(multiscale_l1(out, x)) if args.loss == "multiscale" else jnp.mean(jnp.abs(out - x))
        return loss, (jnp.mean(jnp.abs(out - x)), jnp.mean(jnp.abs(resize_to(lowres, size) - x)))

    @jax.jit
    def step(p, o, x, key):
        (_, l1s), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, x, key)
        updates, o = tx.update(grads, o, p)
        return optax.apply_updates(p, updates), o, l1s

    source = ShapesSource(4096, size)
    ours, bicubic = [], []
    for i in range(args.steps):
        lo = i * batch % 4000  # cycles over the first 4000 + batch examples
        x = to_signed(jnp.asarray(source.get_batch(np.arange(lo, lo + batch))["image"]))
        params, opt, (a, b) = step(params, opt, x, jax.random.PRNGKey(i))
        ours.append(float(a))
        bicubic.append(float(b))
        if (i + 1) % 50 == 0:
            print(f"step {i + 1}: L1 / bicubic's over the last 50 batches {sum(ours[-50:]) / sum(bicubic[-50:]):.3f}",
                  flush=True)


if __name__ == "__main__":
    main()
