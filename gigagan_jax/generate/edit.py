"""Latent-space editing with a trained generator (paper section 4.6): style mixing, prompt
mixing and interpolation between (prompt, seed) pairs in w and text space.

Both work on the generator's decomposition: text path -> (t_local, t_global), mapping
(z, t_global) -> w, synthesis(per-level w, t_local) -> image. The noise inputs are one fixed
map per layer (noise_mode "const", as sampling's default), so every frame is a pure function of
its inputs and frames do not flicker.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gigagan_jax import cpu_convs
from gigagan_jax.generate.restore import TrainedGenerator
from gigagan_jax.generate.sample import encode_prompts, seeds_to_z
from gigagan_jax.models.generator import Generator, TextConditioning, style_mix
from gigagan_jax.pixels import to_uint8


# The generator's two halves run as executables: applied op by op, one edit compiled ~360 small
# programs (configs/tiny.py), and a larger model more.
@functools.partial(cpu_convs.jit, static_argnames=("generator",))
def _encode_and_map(generator: Generator, params, feats: jax.Array, eot: jax.Array, z: jax.Array):
    """Text path, then mapping: (TextConditioning [P, ...], w [P, w_dim])."""
    text = generator.apply({"params": params}, feats, eot, method=Generator.encode_text)
    return text, generator.apply({"params": params}, z, text.t_global, method=Generator.mapping)


@functools.partial(cpu_convs.jit, static_argnames=("generator",))
def _synthesis(generator: Generator, params, ws: jax.Array, text: TextConditioning) -> jax.Array:
    """Per-level ws [B, L, w_dim] -> final images [B, R, R, 3] in [-1, 1]."""
    images = generator.apply({"params": params}, ws, text, "const", method=Generator.synthesis)[-1]
    return jnp.clip(images, -1.0, 1.0)


def _text_and_w(trained: TrainedGenerator, prompts: Sequence[str], seeds: Sequence[int]):
    g = trained.generator
    feats, eot = encode_prompts(trained.clip, prompts)
    return _encode_and_map(g, trained.params, feats, eot, seeds_to_z(seeds, g.spec.z_dim))


def _synthesize(trained: TrainedGenerator, ws: jax.Array, text: TextConditioning) -> np.ndarray:
    return to_uint8(_synthesis(trained.generator, trained.params, ws, text))


def style_mix_images(trained: TrainedGenerator, prompt: str, coarse_seed: int, fine_seed: int,
                     crossover: int) -> np.ndarray:
    """uint8 [3, R, R, 3]: the coarse seed's image, the fine seed's image, and the mix that takes
    levels < crossover (4 px, 8 px, ...) from the coarse seed and the rest from the fine one."""
    levels = len(trained.generator.spec.levels)
    if not 0 <= crossover <= levels:
        raise ValueError(f"crossover must be a level in [0, {levels}], got {crossover}")
    text, w = _text_and_w(trained, [prompt, prompt], [coarse_seed, fine_seed])
    ws = jnp.repeat(w[:, None], levels, axis=1)  # [2, L, w_dim]
    mixed = style_mix(ws[:1], ws[1:], crossover)  # [1, L, w_dim]
    same_text = jax.tree_util.tree_map(lambda t: t[jnp.array([0, 0, 0])], text)
    return _synthesize(trained, jnp.concatenate([ws, mixed]), same_text)


def prompt_mix_images(trained: TrainedGenerator, prompt_coarse: str, prompt_fine: str, seed: int,
                      crossover: int) -> np.ndarray:
    """uint8 [3, R, R, 3]: prompt_coarse's image, prompt_fine's image (same seed), and the mix
    whose levels < crossover (4 px, 8 px, ...) read prompt_coarse (its w = M(z, t_global) and
    its t_local in cross-attention) and the rest prompt_fine: layout from one prompt, detail
    from the other."""
    levels = len(trained.generator.spec.levels)
    if not 0 <= crossover <= levels:
        raise ValueError(f"crossover must be a level in [0, {levels}], got {crossover}")
    text, w = _text_and_w(trained, [prompt_coarse, prompt_fine], [seed, seed])
    ws = jnp.repeat(w[:, None], levels, axis=1)  # [2, L, w_dim]
    texts = text.per_level(levels)  # t_local [2, L, T-1, D]
    row = lambda tree, i: jax.tree_util.tree_map(lambda t: t[i:i + 1], tree)  # noqa: E731
    mixed_ws = style_mix(ws[:1], ws[1:], crossover)  # [1, L, w_dim]
    mixed_text = style_mix(row(texts, 0), row(texts, 1), crossover)
    all_text = jax.tree_util.tree_map(lambda a, m: jnp.concatenate([a, m]), texts, mixed_text)
    return _synthesize(trained, jnp.concatenate([ws, mixed_ws]), all_text)


def interpolation_frames(trained: TrainedGenerator, prompt_a: str, prompt_b: str, seed_a: int, seed_b: int,
                         frames: int) -> np.ndarray:
    """uint8 [frames, R, R, 3] moving linearly in w and in T's token space from (prompt_a, seed_a)
    to (prompt_b, seed_b); the tokens valid in either prompt are attended to along the way."""
    if frames < 2:
        raise ValueError(f"an interpolation needs at least 2 frames, got {frames}")
    text, w = _text_and_w(trained, [prompt_a, prompt_b], [seed_a, seed_b])
    alpha = jnp.linspace(0.0, 1.0, frames)  # [F]
    frames_text = TextConditioning(t_local=_lerp(text.t_local, alpha), t_global=_lerp(text.t_global, alpha),
                                   t_mask=jnp.repeat((text.t_mask[0] | text.t_mask[1])[None], frames, axis=0))
    return _synthesize(trained, _lerp(w, alpha), frames_text)


def _lerp(pair: jax.Array, alpha: jax.Array) -> jax.Array:
    """pair [2, ...], alpha [F] -> [F, ...]: (1 - alpha) * pair[0] + alpha * pair[1]."""
    a = alpha.reshape((-1,) + (1,) * (pair.ndim - 1))
    return pair[0][None] * (1 - a) + pair[1][None] * a
