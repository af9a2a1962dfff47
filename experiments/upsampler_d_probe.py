"""Can the upsampler's discriminator tell real images from bicubic ones? D alone, no G.

    python -m experiments.upsampler_d_probe [--config configs/upsampler_demo.py] [--steps 150]
        [--lr 2e-3] [--beta1 0] [--input-residual 0|1]

Trains only D (unconditional, the MS-I/O GAN loss of every pair) on real shapes images against
their bicubic up-sampling from the upsampler's input size: the upsampler's output at init, and
what it must learn to improve on. Prints every 25 steps the mean real - fake logit on the batch.
If this gap does not open, no adversarial signal reaches G either.
`--input-residual 1` gives D the image minus the bicubic-upsampled input as well
(config.model.d.input_residual).
"""

from __future__ import annotations

import argparse
from typing import Callable, Optional

import jax
import numpy as np
import optax
import jax.numpy as jnp

from gigagan_jax.config import load_config, validate_config
from gigagan_jax.data.shapes import ShapesSource
from gigagan_jax.losses import gan
from gigagan_jax.models.build import build_discriminator, build_generator
from gigagan_jax.models.discriminator import real_pyramid
from gigagan_jax.pixels import resize_to, to_signed
from gigagan_jax.train.step import GanSteps

BATCH = 16


def d_gap_curve(config, steps: int, lr: float, beta1: float,
                report: Optional[Callable[[int, float], None]] = None, every: int = 25) -> float:
    """Train D alone for `steps` batches of 16 (Adam(lr, beta1, 0.99)); return the real - fake
    mean logit on 64 held-out images. `report(step, gap)` gets the training batch's gap every
    `every` steps."""
    config = config.copy_and_resolve_references()
    config.model.conditioning = "none"
    config.model.g.cross_attn_resolutions = ()
    validate_config(config)
    disc = build_discriminator(config)
    resolutions, size = disc.spec.input_resolutions, config.model.resolution
    low = config.model.upsampler.input_resolution
    params = GanSteps(config, build_generator(config), disc).init_state(jax.random.PRNGKey(0)).d_params["main"]
    tx = optax.adam(lr, b1=beta1, b2=0.99)
    opt = tx.init(params)

    def logits(p, images):  # images [B, R, R, 3] in [-1, 1]
        lowres = resize_to(images, low)
        real = disc.apply({"params": p}, real_pyramid(images, resolutions), lowres=lowres)
        fake = disc.apply({"params": p}, {r: resize_to(lowres, r) for r in resolutions}, lowres=lowres)
        return real, fake

    def gap(real, fake):
        return gan.mean_logit(real) - gan.mean_logit(fake)

    def loss(p, images):  # (D's GAN loss, its real - fake gap on the batch)
        real, fake = logits(p, images)
        return gan.d_gan_loss(real, fake), gap(real, fake)

    @jax.jit
    def step(p, o, images):
        (_, batch_gap), grads = jax.value_and_grad(loss, has_aux=True)(p, images)
        updates, o = tx.update(grads, o, p)
        return optax.apply_updates(p, updates), o, batch_gap

    source = ShapesSource(BATCH * steps + 64, size)
    data = to_signed(jnp.asarray(source.get_batch(np.arange(BATCH * steps + 64))["image"]))
    for i in range(steps):
        params, opt, batch_gap = step(params, opt, data[BATCH * i:BATCH * (i + 1)])
        if report is not None and (i + 1) % every == 0:
            report(i + 1, float(batch_gap))
    return float(gap(*jax.jit(logits)(params, data[BATCH * steps:])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/upsampler_demo.py")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--beta1", type=float, default=0.0)
    parser.add_argument("--input-residual", type=int, choices=(0, 1), default=1)
    args = parser.parse_args()
    config = load_config(args.config)
    config.model.d.input_residual = bool(args.input_residual)
    held_out = d_gap_curve(config, args.steps, args.lr, args.beta1,
                           report=lambda s, g: print(f"step {s}: real - fake logit {g:+.3f}", flush=True))
    print(f"held-out real - fake logit after {args.steps} steps: {held_out:+.3f}")


if __name__ == "__main__":
    main()
