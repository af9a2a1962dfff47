"""Perceptual distance of the upsampler's output to the real high-res image (paper: LPIPS, weight 10).

With `config.loss.perceptual = "lpips"` (the paper's), LPIPS-VGG from `config.loss.lpips_path`
(gigagan_jax.pretrained.lpips, weights converted by `python -m gigagan_jax.tools.convert_lpips`);
a run without that file refuses to start (`check_perceptual_choice`) rather than train another
loss than the paper's. Where no network pretrained on natural images is at hand,
`config.loss.perceptual = "fallback"` chooses
    multi-scale L1 (full size, 1/2, 1/4; area-downsampled)
  + config.loss.perceptual_clip_weight x the feature distance in the run's frozen CLIP image
    tower (unit-normalised tokens of every layer, squared difference) when the run loaded one,
which keeps the upsampler close to the target at every scale while the GAN loss supplies the
high frequencies. `describe()` says which one a run uses; the trainer prints it.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import ml_collections

from gigagan_jax.pixels import area_downsample
from gigagan_jax.pretrained.lpips import lpips_distance

L1_SCALES = (1, 2, 4)


def multiscale_l1(x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean over scales of the mean absolute difference; [B, H, W, 3] pairs -> [B]."""
    total = jnp.zeros((x.shape[0],), jnp.float32)
    for f in L1_SCALES:
        xs, ys = (x, y) if f == 1 else (area_downsample(x, f), area_downsample(y, f))
        total += jnp.mean(jnp.abs(xs - ys), axis=(1, 2, 3))
    return total / len(L1_SCALES)


def _unit(f: jax.Array) -> jax.Array:
    return f * jax.lax.rsqrt(jnp.sum(jnp.square(f), axis=-1, keepdims=True) + 1e-10)


def feature_distance(feats_x, feats_y) -> jax.Array:
    """Per-layer mean squared difference of channel-normalised tokens, summed over layers -> [B]."""
    total = 0.0
    for fx, fy in zip(feats_x, feats_y):
        d = jnp.square(_unit(fx.astype(jnp.float32)) - _unit(fy.astype(jnp.float32)))
        total = total + jnp.mean(jnp.sum(d, axis=-1).reshape(d.shape[0], -1), axis=1)
    return total


def check_perceptual_choice(config: ml_collections.ConfigDict) -> None:
    """ValueError when an upsampler run would need LPIPS weights it was not given."""
    loss = config.loss
    if (config.task == "upsampler" and loss.perceptual_weight > 0 and loss.perceptual == "lpips"
            and not loss.lpips_path):
        raise ValueError(
            "the upsampler's perceptual loss is LPIPS (config.loss.perceptual='lpips', the paper's) but "
            "config.loss.lpips_path is empty: convert the weights with `python -m gigagan_jax.tools.convert_lpips` "
            "and pass --config.loss.lpips_path=FILE, or choose the offline fallback (multi-scale L1) with "
            "--config.loss.perceptual=fallback")


class PerceptualLoss:
    """Callable (fake, real, clip_params, lpips_params) -> scalar mean distance over the batch.

    Reads no file: the trainer loads the LPIPS weights (`gigagan_jax.pretrained.lpips.load_lpips`)
    and passes them into the jitted step as an argument, so 59 MB of VGG weights are not baked
    into the executable."""

    def __init__(self, config: ml_collections.ConfigDict, clip: Any = None):
        check_perceptual_choice(config)
        self.lpips: Optional[Callable] = lpips_distance if config.loss.perceptual == "lpips" else None
        use_clip = clip is not None and not getattr(clip, "text_only", True) and config.loss.perceptual_clip_weight > 0
        self.clip = clip if use_clip else None
        self.clip_weight = config.loss.perceptual_clip_weight
        self.path = config.loss.lpips_path

    def describe(self) -> str:
        if self.lpips is not None:
            return f"LPIPS-VGG from {self.path}"
        extra = " + frozen-CLIP image features" if self.clip is not None else ""
        return f"fallback: multi-scale L1{extra} (config.loss.perceptual='fallback'; see gigagan_jax/losses/perceptual.py)"

    def __call__(self, fake: jax.Array, real: jax.Array, clip_params=None, lpips_params=None) -> jax.Array:
        real = jax.lax.stop_gradient(real)
        if self.lpips is not None:
            if lpips_params is None:
                raise ValueError(f"the LPIPS loss needs its weights (load_lpips({self.path!r})) as lpips_params")
            return jnp.mean(self.lpips(lpips_params, fake, real))
        distance = multiscale_l1(fake, real)
        if self.clip is not None:
            _, fx = self.clip.encode_image(fake, params=clip_params)
            _, fy = self.clip.encode_image(real, params=clip_params)
            distance = distance + self.clip_weight * feature_distance(fx, jax.lax.stop_gradient(fy))
        return jnp.mean(distance)
