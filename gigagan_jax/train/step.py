"""Pure, jit-able D and G steps of the full GigaGAN objective (no I/O, no Python state).

A batch holds the real images and the text features the loop computed *once* with the frozen
CLIP text encoder; both steps read them, nothing is re-encoded inside a step:
    image        uint8 [B, R, R, 3] (or float in [-1, 1])
    text_features float [B, L, Dc] and eot_index int32 [B]   (text-conditioned models)
    text_embeds  float [B, P]: CLIP's projected caption embedding (CLIP loss, vision-aided D)
    label        int32 [B]                                   (class-conditional models)
The upsampler (config.task = "upsampler") reads the same batch: its low-res input is the real
image area-downsampled and randomly degraded inside the step (`GanSteps.lowres`; a D with
model.d.input_residual reads that same input), and its G loss adds the perceptual distance of the
output to the real image.
Frozen CLIP params (the run's CLIP, the vision-aided D's own image backbone) come in as
arguments, never as trainable state.

Randomness is an explicit key per call (the loop passes fold_in(seed_key, step)).
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import einops
import jax
import jax.numpy as jnp
import ml_collections
import optax

from gigagan_jax import cpu_convs
from gigagan_jax.data.degrade import degrade, lowres_input
from gigagan_jax.losses import gan
from gigagan_jax.losses.clip_loss import clip_contrastive_loss, close_caption_pairs
from gigagan_jax.losses.perceptual import PerceptualLoss
from gigagan_jax.losses.regularizers import r1_penalty
from gigagan_jax.losses.vision_aided import d_vision_aided_loss, g_vision_aided_loss
from gigagan_jax.models.discriminator import (Discriminator, pyramid_dict, real_pyramid, stack_batches,
                                              unconditional_t_d, unstack_batches)
from gigagan_jax.models.generator import Generator
from gigagan_jax.models.upsampler import UpsamplerSpec
from gigagan_jax.models.vision_aided import VisionAidedHeads
from gigagan_jax.pixels import to_signed
from gigagan_jax.train.sharding import replicated, traced_on
from gigagan_jax.train.state import TrainState, ema_beta, init_train_state, make_optimizers

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


def jit_step(step, mesh, state_shardings):
    """`step` (a `GanSteps.d_step`/`g_step` with its switches bound) jitted as training runs it:
    traced on `mesh`, the state donated and kept on `state_shardings`, the metrics replicated, the
    convs by the machine's measured library. The loop and the pod plan both compile through here,
    so the plan reads the very program a run executes."""
    return cpu_convs.jit(traced_on(mesh, step), donate_argnums=0, out_shardings=(state_shardings, replicated(mesh)))


class GanSteps:
    """Builds `d_step` and `g_step` for one config; both are pure functions of their inputs.

    `clip` (a `gigagan_jax.pretrained.clip.Clip`, optional) supplies the frozen image encoder used
    by the CLIP contrastive loss; its params are passed to the steps as `clip_params`.
    `vision_clip` (optional, loaded `image_only`) is the vision-aided discriminator's own frozen
    backbone (paper: CLIP ViT-B/32), its params passed as `vision_clip_params`; without it the
    vision heads read `clip`'s image features. It owns the optimisers: `init_state` builds the
    train state they update.
    """

    def __init__(self, config: ml_collections.ConfigDict, generator: Generator, discriminator: Discriminator,
                 clip: Any = None, vision_heads: Optional[VisionAidedHeads] = None, vision_clip: Any = None):
        self.config = config
        self.generator = generator
        self.discriminator = discriminator
        self.clip = clip
        self.vision_heads = vision_heads
        self.vision_clip = vision_clip
        self.g_tx, self.d_tx = make_optimizers(config)
        self.text = generator.spec.text_conditioned
        self.conditioned = generator.spec.conditioning != "none"
        self.upsampler = isinstance(generator.spec, UpsamplerSpec)
        loss = config.loss
        self.perceptual = PerceptualLoss(config, clip) if self.upsampler and loss.perceptual_weight > 0 else None
        self.use_clip_loss = clip is not None and loss.clip_weight > 0 and self.text
        if vision_heads is not None and clip is None:  # the heads read its caption embeddings
            raise ValueError("the vision-aided discriminator needs the run's CLIP (config.clip.path)")

    def init_state(self, rng: jax.Array, vision_inputs: tuple | None = None, boxed: bool = False) -> TrainState:
        """A fresh train state for these networks and optimisers (see `init_train_state`)."""
        return init_train_state(self.generator, self.discriminator, (self.g_tx, self.d_tx), rng,
                                vision_heads=self.vision_heads, vision_inputs=vision_inputs, boxed=boxed)

    # ----------------------------------------------------------------------------- pieces
    def _condition(self, batch: Batch) -> dict:
        if self.text:
            return {"text_features": batch["text_features"], "eot_index": batch["eot_index"]}
        return {"labels": batch["label"]} if self.conditioned else {}

    def _condition_key(self, batch: Batch) -> jax.Array:
        """What identifies a sample's caption/class, to detect duplicates in the batch."""
        return batch["text_features"] if self.text else batch["label"]

    def _mismatch(self, batch: Batch, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
        """([B] index of the other sample each sample is paired with in the matching terms, [B]
        float: 1 where that pair counts: its captions/classes differ and, for text, their CLIP
        embeddings are below config.loss.same_caption_cosine; per pair, so no [B, B] matrix
        crosses the batch's devices)."""
        key = self._condition_key(batch)
        perm = gan.mismatch_permutation(rng, key.shape[0])
        same = gan.same_pair(key, perm)
        if "text_embeds" in batch:
            embeds = batch["text_embeds"]
            same = same | close_caption_pairs(embeds, embeds[perm], self.config.loss.same_caption_cosine)
        return perm, 1.0 - same.astype(jnp.float32)

    def lowres(self, batch: Batch, rng: jax.Array) -> jax.Array:
        """The upsampler's degraded low-res input [B, r, r, 3] that `generate(.., batch, rng)` feeds G."""
        spec = self.generator.spec
        degrade_rng = jax.random.split(rng, 3)[2]
        lowres = lowres_input(to_signed(batch["image"]), spec.input_resolution)
        return degrade(lowres, degrade_rng, spec.blur_sigma_max, spec.noise_std_max)

    def generate(self, g_params, batch: Batch, rng: jax.Array, lowres: Optional[jax.Array] = None) -> list[jax.Array]:
        """G's pyramid for the batch; an upsampler's input is `lowres` if given (it must be
        `self.lowres(batch, rng)`, passed by a caller that needs it too), else computed here."""
        z_rng, noise_rng, _ = jax.random.split(rng, 3)
        spec = self.generator.spec
        b = batch["image"].shape[0]
        z = jax.random.normal(z_rng, (b, spec.z_dim))
        inputs = self._condition(batch)
        if self.upsampler:
            inputs["lowres"] = self.lowres(batch, rng) if lowres is None else lowres
        return self.generator.apply({"params": g_params}, z, **inputs, rngs={"noise": noise_rng})

    def _d_lowres(self, batch: Batch, gen_rng: jax.Array) -> Optional[jax.Array]:
        """What D reads of G's input besides the images: the low-res input, with model.d.input_residual."""
        return self.lowres(batch, gen_rng) if self.discriminator.spec.input_residual else None

    def _t_d(self, d_main, batch: Batch) -> jax.Array:
        if not self.conditioned:
            return unconditional_t_d(self.discriminator.spec, batch["image"].shape[0])
        return self.discriminator.apply({"params": d_main}, **self._condition(batch),
                                        method=Discriminator.text_embedding)

    def _features(self, d_main, pyramids: list[dict], lowres: Optional[jax.Array] = None) -> list[dict]:
        """D's features of each pyramid, from one pass over them stacked (see `stack_batches`); D
        reads only its input resolutions, so a generator's extra pyramid levels are dropped here."""
        inputs = self.discriminator.spec.input_resolutions
        stacked = self.discriminator.apply(
            {"params": d_main}, stack_batches([{r: p[r] for r in inputs} for p in pyramids]),
            None if lowres is None else stack_batches([lowres] * len(pyramids)), method=Discriminator.features)
        return unstack_batches(stacked, len(pyramids))

    def _predict(self, d_main, pairs: list[tuple[dict, jax.Array]]) -> list[dict]:
        """Logits of each (features, t_D) pair, from one pass of the heads over them stacked."""
        feats, t_ds = zip(*pairs)
        logits = self.discriminator.apply({"params": d_main}, stack_batches(list(feats)), stack_batches(list(t_ds)),
                                          method=Discriminator.predict)
        return unstack_batches(logits, len(pairs))

    def _clip_image(self, clip_params, images: jax.Array):
        return self.clip.encode_image(images, params=clip_params)

    def _vision_features(self, clip_params, vision_clip_params, images: jax.Array) -> list[jax.Array]:
        """Per-layer [B, 1 + patches, D] features the vision heads read: of the D's own backbone, or
        of the run's CLIP when it has none."""
        if self.vision_clip is None:
            return self._clip_image(clip_params, images)[1]
        return self.vision_clip.encode_image(images, params=vision_clip_params)[1]

    def _vision_logits(self, vision_params, clip_features, batch: Batch) -> jax.Array:
        return self.vision_heads.apply({"params": vision_params}, clip_features, batch["text_embeds"])

    # ----------------------------------------------------------------------------- plumbing
    def _grads(self, loss_fn, params, batch: Batch, rng: jax.Array):
        """(grads, metrics) of loss_fn(params, batch, rng), averaged over grad_accum_steps
        micro-batches. Micro-batch i takes rows i, i+k, i+2k, ... so that it stays spread over
        every device of the batch axis."""
        grad_fn = jax.grad(loss_fn, has_aux=True)
        k = self.config.train.grad_accum_steps
        if k == 1:
            return grad_fn(params, batch, rng)
        micro = jax.tree_util.tree_map(lambda x: einops.rearrange(x, "(m k) ... -> k m ...", k=k), batch)
        first = jax.tree_util.tree_map(lambda x: x[0], micro)
        shapes = jax.eval_shape(grad_fn, params, first, rng)
        zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        def body(total, inputs):
            i, mb = inputs
            out = grad_fn(params, mb, jax.random.fold_in(rng, i))
            return jax.tree_util.tree_map(jnp.add, total, out), None

        total, _ = jax.lax.scan(body, zeros, (jnp.arange(k), micro))
        return jax.tree_util.tree_map(lambda x: x / k, total)

    def _finish(self, old: TrainState, new: TrainState, grads, metrics: Metrics, prefix: str):
        """Record the grad norm; with train.nonfinite='skip', keep `old` when the step is not finite."""
        metrics[f"{prefix}/grad_norm"] = optax.global_norm(grads)
        if self.config.train.nonfinite == "skip":
            finite = jnp.isfinite(metrics[f"{prefix}/loss"]) & jnp.isfinite(metrics[f"{prefix}/grad_norm"])
            new = jax.tree_util.tree_map(lambda n, o: jnp.where(finite, n, o), new, old)
            metrics[f"{prefix}/skipped"] = 1.0 - finite.astype(jnp.float32)
        return new, metrics

    # ----------------------------------------------------------------------------- D step
    def d_loss(self, d_params, batch: Batch, rng: jax.Array, *, g_params, clip_params=None,
               vision_clip_params=None, with_r1: bool = False, with_vision: bool = False) -> tuple[jax.Array, Metrics]:
        cfg = self.config.loss
        gen_rng, perm_rng = jax.random.split(rng)
        d_main = d_params["main"]
        reals = to_signed(batch["image"])  # [B, R, R, 3]
        lowres = self._d_lowres(batch, gen_rng)  # a condition of real and fake alike, as G saw it
        fakes = jax.lax.stop_gradient(self.generate(g_params, batch, gen_rng, lowres))
        inputs = self.discriminator.spec.input_resolutions
        real_feats, fake_feats = self._features(d_main, [real_pyramid(reals, inputs), pyramid_dict(fakes)], lowres)
        t_d = self._t_d(d_main, batch)  # [B, Dt]
        pairs = [(real_feats, t_d), (fake_feats, t_d)]
        if self.conditioned:  # matching-aware loss: pairs with another sample's condition are fake
            perm, valid = self._mismatch(batch, perm_rng)
            pairs += [(real_feats, t_d[perm]), (fake_feats, t_d[perm])]
        real_logits, fake_logits, *mismatched = self._predict(d_main, pairs)
        gan_loss = gan.d_gan_loss(real_logits, fake_logits)
        loss = gan_loss
        metrics = {"d/gan": gan_loss,
                   "logits/real": gan.mean_logit(real_logits), "logits/fake": gan.mean_logit(fake_logits)}
        if self.conditioned:
            real_mis, fake_mis = mismatched
            match_loss = gan.d_matching_loss(real_mis, fake_mis, valid)
            loss = loss + cfg.matching_weight * match_loss
            metrics.update({"d/match": match_loss, "logits/real_mismatched": gan.mean_logit(real_mis),
                            "logits/fake_mismatched": gan.mean_logit(fake_mis)})

        if with_r1:
            def real_score(x):  # [B]: every pair's mean logit, summed
                feats, = self._features(d_main, [real_pyramid(x, inputs)], lowres)
                logits, = self._predict(d_main, [(feats, t_d)])
                return sum(gan.per_sample(v) for v in logits.values())

            penalty = r1_penalty(real_score, reals)
            loss = loss + 0.5 * cfg.r1_gamma * cfg.r1_interval * penalty
            metrics["d/r1_penalty"] = penalty

        if with_vision:
            real_clip = self._vision_features(clip_params, vision_clip_params, reals)
            fake_clip = self._vision_features(clip_params, vision_clip_params, fakes[-1])
            v_real = self._vision_logits(d_params["vision"], real_clip, batch)
            v_fake = self._vision_logits(d_params["vision"], fake_clip, batch)
            v_loss = d_vision_aided_loss(v_real, v_fake)
            loss = loss + cfg.vision_aided_weight * v_loss
            metrics["d/vision_aided"] = v_loss
        metrics["d/loss"] = loss
        return loss, metrics

    def d_step(self, state: TrainState, batch: Batch, rng: jax.Array, clip_params=None, vision_clip_params=None, *,
               with_r1: bool = False, with_vision: bool = False) -> tuple[TrainState, Metrics]:
        loss_fn = functools.partial(self.d_loss, g_params=state.g_params, clip_params=clip_params,
                                    vision_clip_params=vision_clip_params, with_r1=with_r1, with_vision=with_vision)
        grads, metrics = self._grads(loss_fn, state.d_params, batch, rng)
        updates, d_opt = self.d_tx.update(grads, state.d_opt, state.d_params)
        d_params = optax.apply_updates(state.d_params, updates)
        return self._finish(state, state.replace(d_params=d_params, d_opt=d_opt), grads, metrics, "d")

    # ----------------------------------------------------------------------------- G step
    def g_loss(self, g_params, batch: Batch, rng: jax.Array, *, d_params, clip_params=None,
               perceptual_params=None, vision_clip_params=None, caption_bank=None,
               with_vision: bool = False) -> tuple[jax.Array, Metrics]:
        cfg = self.config.loss
        if self.use_clip_loss and cfg.clip_negatives and caption_bank is None:
            raise ValueError(f"config.loss.clip_negatives={cfg.clip_negatives} asks for a caption bank in G's "
                             "CLIP loss: pass the step one (`caption_bank`, gigagan_jax.train.caption_bank)")
        gen_rng, perm_rng = jax.random.split(rng)
        d_main = d_params["main"]
        lowres = self._d_lowres(batch, gen_rng)
        fakes = self.generate(g_params, batch, gen_rng, lowres)
        fake_feats, = self._features(d_main, [pyramid_dict(fakes)], lowres)
        t_d = self._t_d(d_main, batch)
        pairs = [(fake_feats, t_d)]
        if self.conditioned:
            perm, valid = self._mismatch(batch, perm_rng)
            pairs.append((fake_feats, t_d[perm]))
        fake_logits, *mismatched = self._predict(d_main, pairs)
        gan_loss = gan.g_gan_loss(fake_logits)
        loss = gan_loss
        metrics = {"g/gan": gan_loss}
        if self.conditioned:
            match_loss = gan.g_matching_loss(mismatched[0], valid)
            loss = loss + cfg.g_matching_weight * match_loss
            metrics["g/match"] = match_loss
        if self.perceptual is not None:
            perceptual = self.perceptual(fakes[-1], to_signed(batch["image"]), clip_params, perceptual_params)
            loss = loss + cfg.perceptual_weight * perceptual
            metrics["g/perceptual"] = perceptual

        shared = with_vision and self.vision_clip is None  # the heads read the run's CLIP
        if self.use_clip_loss or shared:
            fake_embeds, fake_clip = self._clip_image(clip_params, fakes[-1])  # one CLIP pass for both
            if self.use_clip_loss:
                clip_loss = clip_contrastive_loss(fake_embeds, batch["text_embeds"], clip_params["logit_scale"],
                                                  gan.same_condition(self._condition_key(batch)), caption_bank,
                                                  cfg.same_caption_cosine)
                loss = loss + cfg.clip_weight * clip_loss
                metrics["g/clip"] = clip_loss
        if with_vision:
            fake_v = fake_clip if shared else self._vision_features(clip_params, vision_clip_params, fakes[-1])
            v_loss = g_vision_aided_loss(self._vision_logits(d_params["vision"], fake_v, batch))
            loss = loss + cfg.vision_aided_weight * v_loss
            metrics["g/vision_aided"] = v_loss
        metrics["g/loss"] = loss
        return loss, metrics

    def g_step(self, state: TrainState, batch: Batch, rng: jax.Array, clip_params=None, perceptual_params=None,
               vision_clip_params=None, caption_bank=None, *, with_vision: bool = False) -> tuple[TrainState, Metrics]:
        """`perceptual_params`: the upsampler's LPIPS weights (`load_lpips(config.loss.lpips_path)`), if any;
        `caption_bank` [K, P]: the CLIP loss's extra negatives (config.loss.clip_negatives), if any."""
        loss_fn = functools.partial(self.g_loss, d_params=state.d_params, clip_params=clip_params,
                                    perceptual_params=perceptual_params, vision_clip_params=vision_clip_params,
                                    caption_bank=caption_bank, with_vision=with_vision)
        grads, metrics = self._grads(loss_fn, state.g_params, batch, rng)
        updates, g_opt = self.g_tx.update(grads, state.g_opt, state.g_params)
        g_params = optax.apply_updates(state.g_params, updates)
        beta = ema_beta(self.config, state.step)
        g_ema = jax.tree_util.tree_map(lambda e, p: p + beta * (e - p), state.g_ema, g_params)
        new, metrics = self._finish(state, state.replace(g_params=g_params, g_ema=g_ema, g_opt=g_opt),
                                    grads, metrics, "g")
        return new.replace(step=state.step + 1), metrics
