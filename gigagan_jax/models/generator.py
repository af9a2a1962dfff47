"""GigaGAN generator: text path T, mapping M(z, t_global), and the synthesis network (eq. 5).

At every pyramid level the synthesis network applies adaptive convs (kernel selection +
modulation by w), L2 self-attention reading w, and cross-attention to t_local, then emits an
RGB image. Images accumulate StyleGAN2-style (skip architecture): level l's image is the
upsampled image of level l-1 plus toRGB(features_l), so every level is a complete image at its
own resolution and the generator returns the whole pyramid {x_4, ..., x_R}.

Style and prompt mixing work at level granularity: `synthesis` takes one w per level
([B, L, w_dim]) and, optionally, one text per level (`TextConditioning.per_level`).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import einops
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from gigagan_jax.config import level_resolutions
from gigagan_jax.models.attention import CrossAttention, L2SelfAttention
from gigagan_jax.models.layers import SynthesisLayer, ToRGB, rematerialised, split_over_batch
from gigagan_jax.models.mapping import MappingNetwork, truncate
from gigagan_jax.models.resample import upsample2d
from gigagan_jax.models.text import TextTransformer, split_at_eot


@dataclasses.dataclass(frozen=True)
class GeneratorSpec:
    """Hashable, typed view of `config.model` for the generator (made by models.build.generator_spec)."""

    resolution: int
    conditioning: str
    num_classes: int
    text_encoder_dim: int
    text_len: int
    z_dim: int
    w_dim: int
    mapping_layers: int
    mapping_lr_mult: float
    text_dim: int
    text_layers: int
    text_heads: int
    channels: tuple[int, ...]  # per level, 4 px first
    convs_per_level: int
    num_kernels: int
    kernel_impl: str
    self_attn_resolutions: tuple[int, ...]
    cross_attn_resolutions: tuple[int, ...]
    attn_blocks_per_level: int
    attn_heads: int
    attn_head_dim: int
    attn_residual_gain: float
    use_noise: bool
    dtype: str
    remat: str  # "none" | "blocks": each synthesis block recomputed in the backward pass (config.train.remat)

    @property
    def levels(self) -> list[int]:
        return level_resolutions(self.resolution)

    @property
    def text_conditioned(self) -> bool:
        return self.conditioning == "text"

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)

    def dummy_inputs(self, batch: int) -> dict:
        """Zero-valued call inputs of the right shapes, for `init` and `jax.eval_shape`."""
        inputs = {"z": jnp.zeros((batch, self.z_dim), jnp.float32)}
        if self.text_conditioned:
            inputs["text_features"] = jnp.zeros((batch, self.text_len, self.text_encoder_dim), jnp.float32)
            inputs["eot_index"] = jnp.full((batch,), 1, jnp.int32)
        elif self.conditioning == "class":
            inputs["labels"] = jnp.zeros((batch,), jnp.int32)
        return inputs


@flax.struct.dataclass
class TextConditioning:
    """Output of the text path: what cross-attention (t_local) and mapping (t_global) read.

    Per-level form (prompt mixing): every field gains a level axis after the batch, so that
    level i's cross-attention reads t_local[:, i]; `style_mix` mixes it like per-level ws.
    """

    t_local: jax.Array  # [B, L-1, text_dim], per level [B, num_levels, L-1, text_dim]
    t_mask: jax.Array  # [B, L-1] bool: True for SOT and word tokens; per level [B, num_levels, L-1]
    t_global: jax.Array  # [B, text_dim]; per level [B, num_levels, text_dim]

    @property
    def is_per_level(self) -> bool:
        return self.t_local.ndim == 4

    def per_level(self, num_levels: int) -> "TextConditioning":
        """The same text at every level (the per-level form)."""
        return jax.tree_util.tree_map(lambda t: einops.repeat(t, "b ... -> b l ...", l=num_levels), self)

    def at_level(self, level: int) -> "TextConditioning":
        """What level `level` reads: itself, or its slice of the per-level form."""
        return jax.tree_util.tree_map(lambda t: t[:, level], self) if self.is_per_level else self


class SynthesisBlock(nn.Module):
    """One pyramid level: convs (first one upsamples) interleaved with attention, then toRGB."""

    spec: GeneratorSpec
    resolution: int
    features: int

    @nn.compact
    def __call__(self, x, img, w, text: Optional[TextConditioning], noise_mode: str):
        s, dtype = self.spec, self.spec.compute_dtype
        for j in range(s.convs_per_level):
            x = SynthesisLayer(self.features, s.num_kernels, up=(j == 0 and self.resolution > 4),
                               use_noise=s.use_noise, impl=s.kernel_impl, dtype=dtype,
                               name=f"conv{j}")(x, w, noise_mode)
            if j < s.attn_blocks_per_level:
                if self.resolution in s.self_attn_resolutions:
                    x = L2SelfAttention(s.attn_heads, s.attn_head_dim, s.attn_residual_gain,
                                        dtype=dtype, name=f"self_attn{j}")(x, w)
                if self.resolution in s.cross_attn_resolutions and text is not None:
                    x = CrossAttention(s.attn_heads, s.attn_head_dim, s.attn_residual_gain,
                                       dtype=dtype, name=f"cross_attn{j}")(x, text.t_local, text.t_mask)
        rgb = ToRGB(dtype=dtype, name="to_rgb")(x, w)  # [B, r, r, 3]
        img = rgb if img is None else upsample2d(img) + rgb
        return split_over_batch(x), split_over_batch(img)


class SynthesisNetwork(nn.Module):
    spec: GeneratorSpec

    @nn.compact
    def __call__(self, ws: jax.Array, text: Optional[TextConditioning], noise_mode: str) -> list[jax.Array]:
        s = self.spec
        const = self.param("const", nn.with_logical_partitioning(nn.initializers.normal(1.0), (None, None, "conv_out")),
                           (4, 4, s.channels[0]), jnp.float32)
        x = split_over_batch(jnp.broadcast_to(const.astype(s.compute_dtype), (ws.shape[0],) + const.shape))  # [B, 4, 4, C]
        img, pyramid = None, []
        block = rematerialised(SynthesisBlock, s.remat, static_argnums=(5,))  # noise_mode
        for i, (res, ch) in enumerate(zip(s.levels, s.channels)):
            level_text = None if text is None else text.at_level(i)
            x, img = block(s, res, ch, name=f"b{res}")(x, img, ws[:, i], level_text, noise_mode)
            pyramid.append(img)
        return pyramid


class Generator(nn.Module):
    """G(z, prompt) -> image pyramid. Methods are usable on their own through `apply(method=...)`.

    Randomness: `mean_w` draws z from the 'latent' rng; per-pixel noise uses the 'noise' rng
    (noise_mode 'const' or 'none' needs no rng, which makes sampling deterministic given z).
    """

    spec: GeneratorSpec

    def setup(self):
        s = self.spec
        if s.text_conditioned:
            self.text_transformer = TextTransformer(s.text_dim, s.text_layers, s.text_heads,
                                                    dtype=s.compute_dtype)
        self.mapping_network = MappingNetwork(s.w_dim, s.mapping_layers, s.mapping_lr_mult)
        self.synthesis_network = self.make_synthesis_network()

    def make_synthesis_network(self) -> nn.Module:
        """The image path; the upsampler overrides it and keeps everything else."""
        return SynthesisNetwork(self.spec)

    # --- conditioning -------------------------------------------------------------------
    def encode_text(self, text_features: jax.Array, eot_index: jax.Array) -> TextConditioning:
        """Frozen-encoder tokens [B, L, Dc] + EOT positions [B] -> TextConditioning."""
        s = self.spec
        if not s.text_conditioned:
            raise ValueError("this generator is class-conditional; pass labels, not text features")
        expected = (s.text_len, s.text_encoder_dim)
        if text_features.ndim != 3 or tuple(text_features.shape[1:]) != expected:
            raise ValueError(f"text_features must have shape [B, {expected[0]}, {expected[1]}] "
                             f"(config.model.text_len, config.model.text_encoder_dim), got {tuple(text_features.shape)}")
        if eot_index.shape != text_features.shape[:1]:
            raise ValueError(f"eot_index must have shape [B]=({text_features.shape[0]},), got {tuple(eot_index.shape)}")
        t = self.text_transformer(text_features, eot_index)
        return TextConditioning(*split_at_eot(t, eot_index.astype(jnp.int32)))

    def condition_vector(self, text: Optional[TextConditioning] = None,
                         labels: Optional[jax.Array] = None, batch: Optional[int] = None) -> jax.Array:
        """What the mapping network is conditioned on: t_global, a one-hot class, or (for an
        unconditional model) a constant zero of width 1 for `batch` samples."""
        if self.spec.text_conditioned:
            if text is None:
                raise ValueError("a text-conditioned generator needs text features")
            return text.t_global
        if self.spec.conditioning == "none":
            if batch is None:
                raise ValueError("an unconditional generator needs the batch size")
            return jnp.zeros((batch, 1), jnp.float32)
        if labels is None:
            raise ValueError("a class-conditional generator needs labels")
        return jax.nn.one_hot(labels, self.spec.num_classes)

    # --- latent space -------------------------------------------------------------------
    def mapping(self, z: jax.Array, condition: jax.Array) -> jax.Array:
        if z.ndim != 2 or z.shape[1] != self.spec.z_dim:
            raise ValueError(f"z must have shape [B, {self.spec.z_dim}] (config.model.g.z_dim), got {tuple(z.shape)}")
        if condition.shape[0] != z.shape[0]:
            raise ValueError(f"z has batch {z.shape[0]} but the condition has batch {condition.shape[0]}")
        return self.mapping_network(z, condition)

    def mean_w(self, condition: jax.Array, num_samples: int = 256) -> jax.Array:
        """Per-condition mean w(c) = E_z M(z, c), the centre the truncation trick pulls toward."""
        b = condition.shape[0]
        z = jax.random.normal(self.make_rng("latent"), (num_samples * b, self.spec.z_dim))
        cond = jnp.repeat(condition, num_samples, axis=0)  # [S*B, D], sample-major per condition
        w = self.mapping_network(z, cond)
        return w.reshape(b, num_samples, -1).mean(axis=1)  # [B, w_dim]

    def synthesis(self, ws: jax.Array, text: Optional[TextConditioning] = None,
                  noise_mode: str = "random") -> list[jax.Array]:
        """ws: [B, w_dim] (one w everywhere) or [B, num_levels, w_dim] (style mixing); text: one
        TextConditioning for every level, or its per-level form (prompt mixing)."""
        num_levels = len(self.spec.levels)
        if ws.ndim == 2:
            ws = jnp.repeat(ws[:, None], num_levels, axis=1)
        if ws.ndim != 3 or ws.shape[1:] != (num_levels, self.spec.w_dim):
            raise ValueError(f"ws must have shape [B, {self.spec.w_dim}] or [B, {num_levels}, "
                             f"{self.spec.w_dim}], got {tuple(ws.shape)}")
        if text is not None and text.is_per_level and (text.t_local.shape[1] != num_levels
                                                       or text.t_mask.shape[:2] != text.t_local.shape[:2]):
            raise ValueError(f"per-level text needs one entry per pyramid level: t_local [B, {num_levels}, L-1, D] "
                             f"and t_mask [B, {num_levels}, L-1], got t_local {tuple(text.t_local.shape)} "
                             f"and t_mask {tuple(text.t_mask.shape)}")
        return self.synthesis_network(ws, text, noise_mode)

    def __call__(self, z: jax.Array, text_features: Optional[jax.Array] = None,
                 eot_index: Optional[jax.Array] = None, labels: Optional[jax.Array] = None,
                 truncation_psi: float = 1.0, w_avg: Optional[jax.Array] = None,
                 noise_mode: str = "random") -> list[jax.Array]:
        """z [B, z_dim] + condition -> pyramid [x_4 [B,4,4,3], ..., x_R [B,R,R,3]] in ~[-1, 1]."""
        w, text = self.latent(z, text_features, eot_index, labels, truncation_psi, w_avg)
        return self.synthesis(w, text, noise_mode)

    def latent(self, z: jax.Array, text_features: Optional[jax.Array] = None,
               eot_index: Optional[jax.Array] = None, labels: Optional[jax.Array] = None,
               truncation_psi: float = 1.0, w_avg: Optional[jax.Array] = None
               ) -> tuple[jax.Array, Optional[TextConditioning]]:
        """z + condition -> (w [B, w_dim], text conditioning or None): everything before synthesis."""
        text = None
        if self.spec.text_conditioned:
            if text_features is None or eot_index is None:
                raise ValueError("a text-conditioned generator needs text_features and eot_index")
            text = self.encode_text(text_features, eot_index)
        w = self.mapping(z, self.condition_vector(text, labels, batch=z.shape[0]))
        if w_avg is not None:
            w = truncate(w, w_avg, truncation_psi)
        elif truncation_psi != 1.0:
            raise ValueError("truncation_psi != 1 needs w_avg (see Generator.mean_w)")
        return w, text


def style_mix(coarse, fine, crossover_level):
    """Levels < crossover from `coarse`, the rest from `fine`.

    Inputs are per-level ws [B, num_levels, w_dim] (style mixing) or per-level TextConditioning
    (prompt mixing): any pytrees whose leaves have the level axis second. The crossover may be
    traced, so one executable serves every crossover.
    """
    def mix(a, b):
        levels = jnp.arange(a.shape[1]).reshape((1, -1) + (1,) * (a.ndim - 2))  # [1, L, 1, ...]
        return jnp.where(levels < crossover_level, a, b)

    return jax.tree_util.tree_map(mix, coarse, fine)


def init_generator(generator: Generator, rng: jax.Array, batch: int = 1) -> dict:
    """Initialise the (boxed, logically-partitioned) variables of `generator`."""
    params_rng, noise_rng = jax.random.split(rng)
    return generator.init({"params": params_rng, "noise": noise_rng}, **generator.spec.dummy_inputs(batch))


def count_params(tree) -> int:
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(tree))


def pyramid_shapes(spec: GeneratorSpec, batch: int) -> Sequence[tuple[int, ...]]:
    return [(batch, r, r, 3) for r in spec.levels]
