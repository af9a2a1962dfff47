"""GigaGAN discriminator: text branch t_D, shared multi-scale image branch, MS-I/O predictions.

Image branch: each input scale i gets its own fromRGB (1x1 conv); the residual down-sampling
stages (conv + stride-2 conv, then L2 self-attention at configured resolutions) are shared
across inputs wherever resolutions coincide, so phi_{i->j} for a 32 px input reuses the stages
the 64 px input passes through from 32 px on. A last stage maps 4x4 to a 1x1 feature.

Prediction at every (input i, output j < i) pair, paper eq. 7:
    D_ij(x, c) = psi_j(phi_{i->j}(x_i), t_D) + Conv1x1(phi_{i->j}(x_i))
where psi_j is a `head_layers`-deep 1x1 conv modulated by t_D, shared across inputs. Every
logit therefore sees the text (no text-blind prediction reaches the losses).

Image features and t_D are separate methods so the losses can reuse one image pass with several
conditionings (the matching-aware loss pairs each image with a shuffled caption).

Every call of a head is a copy of its ops in the compiled step, and XLA:CPU compiles each fused
op on its own (tens of ms apiece): `predict` runs each head once, on the features of every input
that reads it stacked into one batch, and the losses stack real, fake and mismatched pairs the
same way (`stack_batches`). Nothing here couples samples, so the logits are those of separate calls.

An upsampler's D may also read its generator's low-res input (`input_residual`): each scale's
fromRGB then sees [x_i, x_i - bicubic(lowres)], the detail above that input. For a real
image that residual is its high frequencies; for a bicubic output it is exactly zero. Without it
D must learn to pull a few edge pixels' difference out of the whole image: against fixed
bicubic fakes its logit gap stayed below 0.04 for 200 steps, against 0.64 at step 150 with the
residual (BENCHMARKS.md), and an unconditional D cannot tell an output that ignores its input.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp

from gigagan_jax.config import level_resolutions
from gigagan_jax.models.attention import L2SelfAttention
from gigagan_jax.models.layers import (AdaptiveModulatedConv, EqualizedConv, EqualizedDense, add_bias, batch_shards,
                                       lrelu, rematerialised, residual_down, split_over_batch)
from gigagan_jax.pixels import area_downsample, resize_to
from gigagan_jax.models.text import TextTransformer

Pair = tuple[int, int]  # (input resolution i, prediction resolution j)


@dataclasses.dataclass(frozen=True)
class DiscriminatorSpec:
    """Hashable, typed view of `config.model` for the discriminator (made by models.build.discriminator_spec)."""

    resolution: int
    conditioning: str
    num_classes: int
    text_encoder_dim: int
    text_len: int
    channels: tuple[int, ...]  # per level, 4 px first
    input_resolutions: tuple[int, ...]  # descending, full resolution first
    self_attn_resolutions: tuple[int, ...]
    text_dim: int
    text_layers: int
    text_heads: int
    attn_heads: int
    attn_head_dim: int
    head_layers: int
    input_residual: bool
    dtype: str
    remat: str  # "none" | "blocks": each down-sampling stage recomputed in the backward pass (config.train.remat)

    def channels_at(self, res: int) -> int:
        """Feature channels at resolution res (the 1x1 output uses the 4 px width)."""
        return self.channels[level_resolutions(self.resolution).index(max(res, 4))]

    @property
    def pairs(self) -> list[Pair]:
        """Every (i, j) of MS-I/O: each input scale predicts at each lower level and at 1x1."""
        out = []
        for i in self.input_resolutions:
            out += [(i, j) for j in level_resolutions(i)[:-1][::-1]] + [(i, 1)]
        return out

    @property
    def prediction_resolutions(self) -> list[int]:
        return sorted({j for _, j in self.pairs}, reverse=True)

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)


class DownBlock(nn.Module):
    """Residual StyleGAN2 D block, res -> res/2, optionally followed by L2 self-attention."""

    features: int
    attention: bool
    spec: DiscriminatorSpec

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = self.spec.compute_dtype
        y = residual_down(x, self.features, dtype)
        if self.attention:
            y = L2SelfAttention(self.spec.attn_heads, self.spec.attn_head_dim, dtype=dtype, name="self_attn")(y)
        return split_over_batch(y)


class Epilogue(nn.Module):
    """4x4 features -> a 1x1 feature map (conv, flatten, dense)."""

    features: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = EqualizedConv(x.shape[-1], activation="lrelu", dtype=self.dtype, name="conv")(x)
        y = y.reshape(y.shape[0], -1)  # [B, 16*C]
        y = EqualizedDense(self.features, activation="lrelu", dtype=self.dtype, name="fc")(y)
        return y[:, None, None, :]  # [B, 1, 1, C]


class PredictionHead(nn.Module):
    """psi_j(f, t_D) + Conv1x1(f): a t_D-modulated 1x1 conv stack plus an unconditional skip."""

    layers: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, f: jax.Array, t_d: jax.Array) -> jax.Array:
        c = f.shape[-1]
        h = f
        for k in range(self.layers - 1):
            h = AdaptiveModulatedConv(c, kernel_size=1, impl="bank", dtype=self.dtype, name=f"psi{k}")(h, t_d)
            bias = self.param(f"psi{k}_bias", nn.with_logical_partitioning(nn.initializers.zeros, ("conv_out",)),
                              (c,), jnp.float32)
            h = lrelu(add_bias(h, bias.astype(h.dtype)))
        psi = AdaptiveModulatedConv(1, kernel_size=1, demodulate=False, impl="bank", dtype=self.dtype,
                                    name=f"psi{self.layers - 1}")(h, t_d)
        skip = EqualizedConv(1, kernel_size=1, dtype=self.dtype, name="skip")(f)
        return (psi + skip)[..., 0].astype(jnp.float32)  # [B, j, j]


class Discriminator(nn.Module):
    spec: DiscriminatorSpec

    def setup(self):
        s = self.spec
        dtype = s.compute_dtype
        if s.conditioning == "text":
            self.text_transformer = TextTransformer(s.text_dim, s.text_layers, s.text_heads, dtype=dtype)
        elif s.conditioning == "class":
            self.class_embed = EqualizedDense(s.text_dim, name="class_embed")
        self.from_rgb = {str(r): EqualizedConv(s.channels_at(r), kernel_size=1, activation="lrelu", dtype=dtype)
                         for r in s.input_resolutions}
        stage = rematerialised(DownBlock, s.remat)
        self.stages = {str(r): stage(s.channels_at(r // 2), (r // 2) in s.self_attn_resolutions, s)
                       for r in level_resolutions(s.resolution)[1:]}
        self.epilogue = Epilogue(s.channels_at(1), dtype=dtype)
        self.heads = {str(j): PredictionHead(s.head_layers, dtype=dtype) for j in s.prediction_resolutions}

    def text_embedding(self, text_features: Optional[jax.Array] = None, eot_index: Optional[jax.Array] = None,
                       labels: Optional[jax.Array] = None) -> jax.Array:
        """t_D [B, text_dim]: the text branch's output at EOT (or a class embedding)."""
        s = self.spec
        if s.conditioning == "none":
            raise ValueError("an unconditional discriminator has no text branch; use unconditional_t_d")
        if s.conditioning == "class":
            if labels is None:
                raise ValueError("a class-conditional discriminator needs labels")
            return self.class_embed(jax.nn.one_hot(labels, s.num_classes))
        if text_features is None or eot_index is None:
            raise ValueError("a text-conditioned discriminator needs text_features and eot_index")
        expected = (s.text_len, s.text_encoder_dim)
        if text_features.ndim != 3 or tuple(text_features.shape[1:]) != expected:
            raise ValueError(f"text_features must have shape [B, {expected[0]}, {expected[1]}], "
                             f"got {tuple(text_features.shape)}")
        t = self.text_transformer(text_features, eot_index)
        return jnp.take_along_axis(t, eot_index[:, None, None].astype(jnp.int32), axis=1)[:, 0]

    def features(self, pyramid: dict[int, jax.Array], lowres: Optional[jax.Array] = None) -> dict[Pair, jax.Array]:
        """{resolution: image [B, r, r, 3]} -> {(i, j): phi_{i->j}(x_i) [B, j, j, C_j]}.

        `lowres` [B, r, r, 3]: the upsampler's input, required when `spec.input_residual`."""
        missing = [r for r in self.spec.input_resolutions if r not in pyramid]
        if missing:
            raise ValueError(f"the discriminator needs images at {list(self.spec.input_resolutions)} px; "
                             f"missing {missing}")
        if self.spec.input_residual and lowres is None:
            raise ValueError("this discriminator reads the upsampler's low-res input (model.d.input_residual); "
                             "pass lowres")
        out = {}
        for i in self.spec.input_resolutions:
            image = pyramid[i].astype(jnp.float32)  # [B, i, i, 3]
            if self.spec.input_residual:
                image = jnp.concatenate([image, image - resize_to(lowres.astype(jnp.float32), i)], axis=-1)
            x = self.from_rgb[str(i)](image.astype(self.spec.compute_dtype))
            r = i
            while r > 4:
                x = self.stages[str(r)](x)
                r //= 2
                out[(i, r)] = x
            out[(i, 1)] = self.epilogue(x)
        return out

    def predict(self, features: dict[Pair, jax.Array], t_d: jax.Array) -> dict[Pair, jax.Array]:
        """Logits [B, j, j] for every pair, conditioned on t_D [B, text_dim]; head j runs once on
        the features of every input i that predicts at j."""
        out = {}
        for j in sorted({j for _, j in features}, reverse=True):
            pairs = [pair for pair in features if pair[1] == j]
            logits = self.heads[str(j)](stack_batches([features[p] for p in pairs]),
                                        stack_batches([t_d] * len(pairs)))
            out.update(zip(pairs, unstack_batches(logits, len(pairs))))
        return {pair: out[pair] for pair in features}

    def __call__(self, pyramid: dict[int, jax.Array], text_features: Optional[jax.Array] = None,
                 eot_index: Optional[jax.Array] = None, labels: Optional[jax.Array] = None,
                 lowres: Optional[jax.Array] = None) -> dict[Pair, jax.Array]:
        features = self.features(pyramid, lowres)
        if self.spec.conditioning == "none":
            t_d = unconditional_t_d(self.spec, next(iter(pyramid.values())).shape[0])
        else:
            t_d = self.text_embedding(text_features, eot_index, labels)
        return self.predict(features, t_d)


def stack_batches(trees: list):
    """k pytrees of [B, ...] arrays -> one of [B*k, ...], device-major: each of the d row blocks
    the batch is split into over the mesh (`models.layers.batch_shards`) holds its own rows of all
    k batches, so nothing moves between devices, and within a block (or on one device, d = 1)
    the k batches are concatenated. Interleaving each sample's k rows instead made the stack and
    its backward whole-activation transposes (BENCHMARKS.md, "Device-major stacking")."""
    if len(trees) == 1:
        return trees[0]

    def stack(*xs):  # k x [B, ...]
        d = batch_shards(xs[0].shape[0])
        blocks = jnp.stack([einops.rearrange(x, "(d b) ... -> d b ...", d=d) for x in xs], axis=1)
        return einops.rearrange(blocks, "d k b ... -> (d k b) ...")  # [B*k, ...]

    return jax.tree_util.tree_map(stack, *trees)


def unstack_batches(tree, k: int) -> list:
    """The inverse of `stack_batches`: k pytrees of [B, ...] arrays."""
    if k == 1:
        return [tree]

    def unstack(x):  # [B*k, ...] -> [k, B, ...]
        d = batch_shards(x.shape[0] // k)
        return einops.rearrange(x, "(d k b) ... -> k (d b) ...", d=d, k=k)

    split = jax.tree_util.tree_map(unstack, tree)
    return [jax.tree_util.tree_map(lambda x: x[i], split) for i in range(k)]


def unconditional_t_d(spec: DiscriminatorSpec, batch: int) -> jax.Array:
    """t_D of an unconditional D: zeros, so the heads' modulation reduces to their learned biases."""
    return jnp.zeros((batch, spec.text_dim), jnp.float32)


def pyramid_dict(pyramid: list[jax.Array]) -> dict[int, jax.Array]:
    """The generator's pyramid list [x_4, ..., x_R] keyed by resolution."""
    return {int(x.shape[1]): x for x in pyramid}


def real_pyramid(images: jax.Array, resolutions) -> dict[int, jax.Array]:
    """Area-downsample real images [B, R, R, 3] to every resolution D reads."""
    full = images.shape[1]
    return {r: images if r == full else area_downsample(images, full // r) for r in resolutions}
