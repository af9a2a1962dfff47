"""Train state (G, D, G_ema, both optimiser states, step) and the optimisers that update it.

Adam(beta1 = 0, beta2 = 0.99) for both networks, with decoupled weight decay applied to
attention projection weights only (paper: 0.01 on attention). D's R1 is lazy (every k steps, scaled by
k), so D's lr and betas get StyleGAN2's correction: ratio = k / (k + 1), lr *= ratio,
beta **= ratio; G has no lazy regulariser (no path-length penalty in GigaGAN) and no correction.
"""

from __future__ import annotations

import re
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.core import meta

from gigagan_jax.models.discriminator import Discriminator, real_pyramid
from gigagan_jax.models.generator import Generator
from gigagan_jax.models.vision_aided import VisionAidedHeads

Params = Any


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32 []: completed training iterations (one D step + one G step each)
    g_params: Params
    d_params: Params  # {"main": D, "vision": vision-aided heads (when configured)}
    g_ema: Params
    g_opt: optax.OptState
    d_opt: optax.OptState


# An attention layer's module name (G: self_attn0, cross_attn1; D: self_attn; T: attn) and the
# names of its projections (L2 self-attention ties q and k into "qk").
ATTENTION_LAYER = re.compile(r"(self_attn|cross_attn|attn)\d*")
ATTENTION_PROJECTIONS = ("q", "k", "qk", "v", "out")


def is_attention_projection(path) -> bool:
    """`.../<attention layer>/<projection>/kernel`: the weights the paper decays. Not their biases,
    not the LayerNorm before an attention layer (`ln_attn`), not a style-token projection."""
    names = [str(getattr(k, "key", k)) for k in path]
    return (len(names) >= 3 and names[-1] == "kernel" and names[-2] in ATTENTION_PROJECTIONS
            and ATTENTION_LAYER.fullmatch(names[-3]) is not None)


def attention_mask(params: Params) -> Params:
    """True for the leaves that get weight decay (attention projection weights only)."""
    return jax.tree_util.tree_map_with_path(lambda path, _: is_attention_projection(path), params)


def _adam(lr: float, beta1: float, beta2: float, eps: float, weight_decay: float) -> optax.GradientTransformation:
    return optax.chain(
        optax.scale_by_adam(b1=beta1, b2=beta2, eps=eps),
        optax.add_decayed_weights(weight_decay, mask=attention_mask),
        optax.scale_by_learning_rate(lr),
    )


def make_optimizers(config: ml_collections.ConfigDict) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    o, k = config.optim, config.loss.r1_interval
    ratio = k / (k + 1.0)  # lazy-regularisation correction for D
    g_tx = _adam(o.g_lr, o.beta1, o.beta2, o.eps, o.attention_weight_decay)
    d_tx = _adam(o.d_lr * ratio, o.beta1**ratio, o.beta2**ratio, o.eps, o.attention_weight_decay)
    return g_tx, d_tx


def ema_beta(config: ml_collections.ConfigDict, step) -> jax.Array:
    """G_ema's decay at training step `step` (the number of G steps done before this one).

    The old weights' share halves every `ema_half_life_images` images; during the ramp-up the
    half-life is capped at `ema_rampup` x the images seen so far (StyleGAN2-ADA), so step 0
    copies G (beta 0) and the average never reaches back to the random init. float32 [].
    """
    batch, o = config.train.batch_size, config.optim
    half_life = jnp.float32(o.ema_half_life_images)
    if o.ema_rampup > 0:
        seen = jnp.asarray(step, jnp.float32) * batch
        half_life = jnp.minimum(half_life, seen * o.ema_rampup)
    return jnp.power(0.5, batch / jnp.maximum(half_life, 1e-8))


# Compiler options for an executable that runs once, such as the init: XLA's backend (LLVM)
# optimisations cost its compile ~40 % (configs/tiny.py 10.6 -> 6.8 s, demo 18.9 -> 12.6 s on a
# 2-core AMD EPYC) and its run time not at all (0.07 s, 0.13 s either way). The steps keep them:
# at level 0 the demo's D step with R1 runs 5x slower.
RUN_ONCE_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}
# On the CPU backend, XLA:CPU's fast-compile preset on top (it fuses less and codegens cheaper
# kernels): tiny's init 10.9 -> 7.0 s on a 2-core AVX2 EPYC, its weights equal to rounding
# (3e-5 at most), its run time 0.07 s either way (BENCHMARKS.md). In a multi-device program this
# jaxlib's XLA:CPU leaves the kernels as they are without it (tiny on 8 simulated devices: 1061 either way).
CPU_RUN_ONCE_COMPILER_OPTIONS = {**RUN_ONCE_COMPILER_OPTIONS, "xla_cpu_opt_preset": "CPU_OPT_PRESET_FAST_COMPILE"}


def jit_init(init, out_shardings=None):
    """`init(rng) -> TrainState` jitted as an executable that runs once per run (the backend is
    asked for here: call it after `jax.distributed.initialize`, as the loop does)."""
    options = CPU_RUN_ONCE_COMPILER_OPTIONS if jax.default_backend() == "cpu" else RUN_ONCE_COMPILER_OPTIONS
    return jax.jit(init, out_shardings=out_shardings, compiler_options=options)


def init_train_state(generator: Generator, discriminator: Discriminator,
                     optimizers: tuple[optax.GradientTransformation, optax.GradientTransformation],
                     rng: jax.Array, vision_heads: VisionAidedHeads | None = None,
                     vision_inputs: tuple | None = None, boxed: bool = False) -> TrainState:
    """Fresh state; `optimizers` = (G's, D's), as `make_optimizers` builds them (`GanSteps.init_state`
    passes its own). `boxed=True` keeps the logical-partitioning boxes (for `jax.eval_shape` ->
    shardings); the state used by the steps is unboxed. `vision_inputs` = example
    (clip_features, text_embeds) for the vision-aided heads when they are configured."""
    g_rng, d_rng, v_rng, n_rng = jax.random.split(rng, 4)
    g_vars = generator.init({"params": g_rng, "noise": n_rng}, **generator.spec.dummy_inputs(1))
    s = discriminator.spec
    images = real_pyramid(jnp.zeros((1, s.resolution, s.resolution, 3)), s.input_resolutions)
    cond = generator.spec.dummy_inputs(1)
    d_vars = discriminator.init(d_rng, images, cond.get("text_features"), cond.get("eot_index"), cond.get("labels"),
                                cond.get("lowres"))
    d_params = {"main": d_vars["params"]}
    if vision_heads is not None:
        d_params["vision"] = vision_heads.init(v_rng, *vision_inputs)["params"]
    g_params = g_vars["params"]
    if not boxed:
        g_params, d_params = meta.unbox(g_params), meta.unbox(d_params)
    g_tx, d_tx = optimizers
    return TrainState(step=jnp.zeros((), jnp.int32), g_params=g_params, d_params=d_params,
                      g_ema=g_params, g_opt=g_tx.init(g_params), d_opt=d_tx.init(d_params))


def vision_example_inputs(clip, backbone=None) -> tuple:
    """Example (clip_features, text_embeds) to initialise the vision-aided heads: the image features
    of `backbone` (the D's own frozen image tower; None: `clip`'s), the caption embedding of the
    run's `clip` (the two may differ in width)."""
    backbone = clip if backbone is None else backbone
    size = backbone.image_size
    _, feats = jax.eval_shape(lambda p: backbone.encode_image(jnp.zeros((1, size, size, 3)), params=p),
                              backbone.params)
    feats = [jnp.zeros(f.shape, f.dtype) for f in feats]
    return feats, jnp.zeros((1, clip.projection_dim))
