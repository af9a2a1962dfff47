"""GigaGAN upsampler (paper §3.4): an asymmetric U-Net built from the generator's own layers.

    low-res x [B, r, r, 3] -> fromRGB -> `down_blocks` residual down blocks (r -> r / 2^k)
    -> one up block per decoder level (r / 2^(k-1), ..., R), each:
         adaptive conv (upsamples, kernel selection + modulation by w) [+ U-Net skip at equal size]
         -> adaptive convs -> L2 self-attention -> cross-attention on t_local,
         residual around the block, then toRGB
       levels above r are image-first: fromImage(resize(x)) + gain * that up-sampling conv, with
       the gain and the residual's shortcut starting at zero (see UpBlock)
    w = M(z, t_global) as in the base generator; noise inputs in every adaptive conv.

Output pyramid: level l's image is `resize(x, l) + toRGB_l`, with resize = area down-sampling
below r and bicubic up-sampling above it: every level is a complete image for the MS-I/O
discriminator, and each level's toRGB predicts only what the resized input lacks. The decoder
levels above r start from resize(x, l) itself, so edges are placed from full-resolution input,
not from up-sampled r-px features. The toRGB kernels start at zero, so at init
every level is exactly the resized input and each kernel's gradient (features x output error)
is informative from the first step. Measured alternatives (pure L1 probes, BENCHMARKS.md): a
learned scalar gate on the residual closed to ~0 within 150 steps; StyleGAN2-style accumulation
of the upsampled lower-level residuals added their (unsupervised) noise to the top level.

Text conditioning, class conditioning and no conditioning (plain super-resolution) reuse
`Generator`'s conditioning and latent-space methods unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from gigagan_jax.models.attention import CrossAttention, L2SelfAttention
from gigagan_jax.models.generator import Generator, GeneratorSpec, TextConditioning
from gigagan_jax.models.layers import (EqualizedConv, SynthesisLayer, ToRGB, rematerialised, residual_down,
                                       split_over_batch)
from gigagan_jax.models.resample import upsample2d
from gigagan_jax.pixels import resize_to

SKIP_GAIN = 1.0 / math.sqrt(2.0)  # keeps the variance of a sum of two unit-variance branches at 1


@dataclasses.dataclass(frozen=True)
class UpsamplerSpec(GeneratorSpec):
    """GeneratorSpec whose `levels`/`channels` are the decoder's, plus the encoder's shape."""

    input_resolution: int
    encoder_channels: tuple[int, ...]  # at input_resolution, /2, ..., the bottom
    blur_sigma_max: float
    noise_std_max: float

    @property
    def levels(self) -> list[int]:
        return [self.resolution // 2**i for i in range(len(self.channels))][::-1]

    @property
    def down_blocks(self) -> int:
        return len(self.encoder_channels) - 1

    def dummy_inputs(self, batch: int) -> dict:
        r = self.input_resolution
        return {**super().dummy_inputs(batch), "lowres": jnp.zeros((batch, r, r, 3), jnp.float32)}


class ResidualDown(nn.Module):
    """Encoder block r -> r/2 (the discriminator's residual block, without attention)."""

    features: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return split_over_batch(residual_down(x, self.features, self.dtype))


class UpBlock(nn.Module):
    """Decoder level: r/2 -> r, adaptive convs + attention, residual, U-Net skip, toRGB.

    Above the input size the level is image-first: its first features come from the resized input
    image alone, and the features from the level below join through zero-initialised paths (a
    per-channel gain on the up-sampling conv, a zero 1x1 shortcut). Adding them at full strength
    from the start drowned the image's edges in unit-variance features that carry no sub-pixel
    information yet: pure-L1 probes sat above the bicubic error for 700 steps; with image-first
    levels they beat it after ~450 (BENCHMARKS.md)."""

    spec: UpsamplerSpec
    resolution: int
    features: int

    def _synthesis_layer(self, name: str, up: bool = False) -> SynthesisLayer:
        s = self.spec
        return SynthesisLayer(self.features, s.num_kernels, up=up, use_noise=s.use_noise, impl=s.kernel_impl,
                              dtype=s.compute_dtype, name=name)

    @nn.compact
    def __call__(self, x, encoder_skip: Optional[jax.Array], image: Optional[jax.Array], w,
                 text: Optional[TextConditioning], noise_mode: str) -> tuple[jax.Array, jax.Array]:
        s, dtype = self.spec, self.spec.compute_dtype
        below = self._synthesis_layer("conv0", up=True)(x, w, noise_mode)  # [B, r, r, C]
        if image is None:  # at or below the input size: the U-Net's usual level
            shortcut_kwargs = {}
            y = below
            if encoder_skip is not None:
                y = (y + EqualizedConv(self.features, kernel_size=1, dtype=dtype, name="unet_skip")(encoder_skip)) * SKIP_GAIN
        else:  # above it: image-first, the level below joins through zero-initialised paths
            shortcut_kwargs = {"kernel_init": nn.initializers.zeros}
            gain = self.param("below_gain", nn.with_logical_partitioning(nn.initializers.zeros, ("conv_out",)),
                              (self.features,), jnp.float32)
            y = EqualizedConv(self.features, activation="lrelu", dtype=dtype, name="from_image")(image)
            y = y + below * gain.astype(dtype)
        for j in range(1, s.convs_per_level):
            y = self._synthesis_layer(f"conv{j}")(y, w, noise_mode)
        if self.resolution in s.self_attn_resolutions:
            y = L2SelfAttention(s.attn_heads, s.attn_head_dim, s.attn_residual_gain, dtype=dtype,
                                name="self_attn")(y, w)
        if self.resolution in s.cross_attn_resolutions and text is not None:
            y = CrossAttention(s.attn_heads, s.attn_head_dim, s.attn_residual_gain, dtype=dtype,
                               name="cross_attn")(y, text.t_local, text.t_mask)
        # A 1x1 conv commutes with upsample2d exactly (borders too), so it runs at the lower resolution.
        shortcut = upsample2d(EqualizedConv(self.features, kernel_size=1, use_bias=False, dtype=dtype,
                                            name="shortcut", **shortcut_kwargs)(x))
        y = (y + shortcut) * SKIP_GAIN
        rgb = ToRGB(dtype=dtype, kernel_init=nn.initializers.zeros, name="to_rgb")(y, w)
        return split_over_batch(y), split_over_batch(rgb)  # [B, r, r, C], [B, r, r, 3]


class UpsamplerSynthesis(nn.Module):
    spec: UpsamplerSpec

    @nn.compact
    def __call__(self, ws: jax.Array, lowres: jax.Array, text: Optional[TextConditioning],
                 noise_mode: str) -> list[jax.Array]:
        s, dtype = self.spec, self.spec.compute_dtype
        x = EqualizedConv(s.encoder_channels[0], kernel_size=1, activation="lrelu", dtype=dtype,
                          name="from_rgb")(lowres)
        skips = {s.input_resolution: x}
        down = rematerialised(ResidualDown, s.remat)
        for i, ch in enumerate(s.encoder_channels[1:]):
            x = down(ch, dtype=dtype, name=f"down{i}")(x)
            skips[x.shape[1]] = x
        pyramid = []
        block = rematerialised(UpBlock, s.remat, static_argnums=(6,))  # noise_mode
        for i, (res, ch) in enumerate(zip(s.levels, s.channels)):
            level_text = None if text is None else text.at_level(i)  # per-level text: prompt mixing
            image = resize_to(lowres, res)  # [B, res, res, 3]
            x, rgb = block(s, res, ch, name=f"up{res}")(x, skips.get(res), image if res > s.input_resolution else None,
                                                        ws[:, i], level_text, noise_mode)
            pyramid.append(image + rgb)
        return pyramid


class Upsampler(Generator):
    """G(z, low-res image, condition) -> image pyramid up to config.model.resolution.

    Shares the base generator's text path, mapping network and latent tricks (mean_w,
    truncation, per-level ws for style mixing); only the synthesis network differs.
    """

    spec: UpsamplerSpec

    def make_synthesis_network(self) -> nn.Module:
        return UpsamplerSynthesis(self.spec)

    def synthesis(self, ws: jax.Array, lowres: jax.Array, text: Optional[TextConditioning] = None,
                  noise_mode: str = "random") -> list[jax.Array]:
        """ws [B, w_dim] or [B, num_levels, w_dim]; lowres [B, r, r, 3] in [-1, 1]."""
        s = self.spec
        r = s.input_resolution
        if lowres.ndim != 4 or lowres.shape[1:] != (r, r, 3):
            raise ValueError(f"lowres must have shape [B, {r}, {r}, 3] (config.model.upsampler.input_resolution), "
                             f"got {tuple(lowres.shape)}")
        num_levels = len(s.levels)
        if ws.ndim == 2:
            ws = jnp.repeat(ws[:, None], num_levels, axis=1)
        if ws.ndim != 3 or ws.shape[1:] != (num_levels, s.w_dim) or ws.shape[0] != lowres.shape[0]:
            raise ValueError(f"ws must have shape [B, {s.w_dim}] or [B, {num_levels}, {s.w_dim}] with the "
                             f"batch of lowres ({lowres.shape[0]}), got {tuple(ws.shape)}")
        return self.synthesis_network(ws, lowres.astype(jnp.float32), text, noise_mode)

    def __call__(self, z: jax.Array, lowres: jax.Array, text_features: Optional[jax.Array] = None,
                 eot_index: Optional[jax.Array] = None, labels: Optional[jax.Array] = None,
                 truncation_psi: float = 1.0, w_avg: Optional[jax.Array] = None,
                 noise_mode: str = "random") -> list[jax.Array]:
        """z [B, z_dim] + lowres [B, r, r, 3] + condition -> pyramid of the decoder levels."""
        w, text = self.latent(z, text_features, eot_index, labels, truncation_psi, w_avg)
        return self.synthesis(w, lowres, text, noise_mode)
