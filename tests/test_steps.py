"""D and G steps: metrics, the matching term's text gradient, optimiser details, FSDP equality."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from small_models import RESOLUTION, at_8px

from gigagan_jax.config import load_config
from gigagan_jax.losses import gan
from gigagan_jax.losses.clip_loss import close_captions
from gigagan_jax.models.build import build_discriminator, build_generator
from gigagan_jax.models.discriminator import real_pyramid
from gigagan_jax.train.sharding import batch_sharding, make_mesh, param_shardings, replicated
from gigagan_jax.train.state import attention_mask, ema_beta, make_optimizers
from gigagan_jax.train.step import GanSteps

B = 8
R = RESOLUTION  # the steps' mechanics, on the 8 px model


@pytest.fixture(scope="module")
def setup():
    config = at_8px(load_config("configs/tiny.py"))
    generator, disc = build_generator(config), build_discriminator(config)
    steps = GanSteps(config, generator, disc)
    state = jax.jit(steps.init_state)(jax.random.PRNGKey(0))
    batch = {
        "image": jax.random.randint(jax.random.PRNGKey(1), (B, R, R, 3), 0, 256).astype(jnp.uint8),
        "text_features": jax.random.normal(jax.random.PRNGKey(2), (B, 77, 32)),
        "eot_index": jnp.arange(B, dtype=jnp.int32) + 3,
    }
    d_step = jax.jit(functools.partial(steps.d_step, with_r1=True))
    g_step = jax.jit(steps.g_step)
    return config, steps, state, batch, d_step, g_step


def test_steps_report_every_term_and_update_the_right_params(setup):
    config, steps, state, batch, d_step, g_step = setup
    d_state, d_metrics = d_step(state, batch, jax.random.PRNGKey(3))
    for key in ("d/loss", "d/gan", "d/match", "d/r1_penalty", "logits/real", "logits/fake",
                "logits/real_mismatched", "logits/fake_mismatched", "d/grad_norm"):
        assert key in d_metrics and bool(jnp.isfinite(d_metrics[key])), key
    # A D step changes D only.
    same = jax.tree_util.tree_map(lambda a, b: bool(jnp.all(a == b)), d_state.g_params, state.g_params)
    assert all(jax.tree_util.tree_leaves(same))
    assert not all(jax.tree_util.tree_leaves(
        jax.tree_util.tree_map(lambda a, b: bool(jnp.all(a == b)), d_state.d_params, state.d_params)))
    g_state, g_metrics = g_step(d_state, batch, jax.random.PRNGKey(4))
    for key in ("g/loss", "g/gan", "g/match", "g/grad_norm"):
        assert bool(jnp.isfinite(g_metrics[key])), key
    assert int(g_state.step) == 1
    # G_ema moved by exactly (1 - beta) of the way to the new G (step 0: beta 0, a copy of G).
    beta = ema_beta(config, d_state.step)
    leaf = lambda s: s.g_params["mapping_network"]["fc0"]["kernel"]  # noqa: E731
    ema = g_state.g_ema["mapping_network"]["fc0"]["kernel"]
    np.testing.assert_allclose(ema, leaf(g_state) + beta * (leaf(d_state) - leaf(g_state)), rtol=1e-5, atol=1e-6)


def test_matching_term_trains_the_text_branch(setup):
    config, steps, state, batch, _, _ = setup
    reals = batch["image"].astype(jnp.float32) / 127.5 - 1

    def matching(d_params):
        d_main = d_params["main"]
        feats, = steps._features(d_main, [real_pyramid(reals, steps.discriminator.spec.input_resolutions)])
        t_d = steps._t_d(d_main, batch)
        perm = gan.mismatch_permutation(jax.random.PRNGKey(0), B)
        logits, = steps._predict(d_main, [(feats, t_d[perm])])
        return gan.d_matching_loss(logits, {}, jnp.ones(B))

    grads = jax.jit(jax.grad(matching))(state.d_params)["main"]["text_transformer"]
    norm = sum(float(jnp.sum(g**2)) for g in jax.tree_util.tree_leaves(grads))
    assert norm > 0


def test_paraphrased_captions_are_not_each_others_mismatch(setup):
    config, steps, _, batch, _, _ = setup
    # Caption embeddings: 5 is a paraphrase of 0 (cosine 0.995), 6 is near 2 (0.894), the rest apart.
    embeds = jnp.eye(B)
    embeds = embeds.at[5].set(embeds[0] + 0.1 * embeds[5]).at[6].set(embeds[2] + 0.5 * embeds[6])
    batch = dict(batch, text_embeds=embeds)
    # What counts as one caption: the same tokens, or CLIP embeddings at same_caption_cosine or closer.
    same = gan.same_condition(batch["text_features"]) | close_captions(embeds, embeds, config.loss.same_caption_cosine)
    assert bool(same[0, 5]) and bool(same[5, 0]) and not bool(same[2, 6])
    assert int(jnp.sum(same)) == B + 2  # the diagonal and the paraphrase pair: every caption's tokens differ
    # A random derangement, another for another key; a draw pairing 0 with its paraphrase drops that pair.
    first, second = (np.asarray(steps._mismatch(batch, jax.random.PRNGKey(k))[0]) for k in (0, 1))
    assert sorted(first.tolist()) == list(range(B)) and np.all(first != np.arange(B))
    assert not np.array_equal(first, second)
    perm, counts = next((np.asarray(p), np.asarray(c)) for p, c in (
        steps._mismatch(batch, jax.random.PRNGKey(k)) for k in range(100)) if p[0] == 5)
    np.testing.assert_array_equal(counts, np.where(np.arange(B) == 0, 0.0, 1.0 - (np.arange(B) == 5) * (perm[5] == 0)))


def test_lazy_r1_corrects_d_optimizer_and_decay_hits_attention_only(setup):
    config, _, state, _, _, _ = setup
    g_tx, d_tx = make_optimizers(config)
    # D (R1 every 16 steps): lr and beta2 scaled by 16/17; G unchanged. Check via one Adam step
    # on a unit gradient: |update| = lr for a first step whatever the betas.
    grads = jax.tree_util.tree_map(jnp.ones_like, state.g_params)
    g_update, _ = g_tx.update(grads, g_tx.init(state.g_params), state.g_params)
    d_update, _ = d_tx.update(grads, d_tx.init(state.g_params), state.g_params)
    mapping = lambda u: float(u["mapping_network"]["fc0"]["bias"][0])  # noqa: E731  (not attention: no decay)
    np.testing.assert_allclose(mapping(g_update), -config.optim.g_lr, rtol=1e-4)
    np.testing.assert_allclose(mapping(d_update), -config.optim.d_lr * 16 / 17, rtol=1e-4)
    mask = attention_mask(state.g_params)
    flags = {jax.tree_util.keystr(p): m for p, m in jax.tree_util.tree_leaves_with_path(mask)}
    assert any(m for k, m in flags.items() if "self_attn" in k)
    assert not any(m for k, m in flags.items() if "mapping_network" in k or "conv0" in k)


def test_steps_on_an_fsdp_mesh_equal_one_device(setup):
    config, steps, state, batch, d_step, g_step = setup
    rng = jax.random.PRNGKey(5)
    d_ref_state, d_ref = d_step(state, batch, rng)
    _, g_ref = g_step(d_ref_state, batch, rng)

    mesh = make_mesh((2, 4), ("data", "fsdp"))
    abstract = jax.eval_shape(lambda k: steps.init_state(k, boxed=True), rng)
    state_sh = param_shardings(abstract, mesh)
    batch_sh = {k: batch_sharding(mesh, v.ndim) for k, v in batch.items()}
    sharded_state = jax.device_put(state, state_sh)
    sharded_batch = jax.device_put(batch, batch_sh)
    assert any(s.spec != () and any(a is not None for a in s.spec)
               for s in jax.tree_util.tree_leaves(state_sh)), "nothing was sharded"
    d_sharded = jax.jit(functools.partial(steps.d_step, with_r1=True),
                        in_shardings=(state_sh, batch_sh, replicated(mesh)),
                        out_shardings=(state_sh, replicated(mesh)))
    g_sharded = jax.jit(steps.g_step, in_shardings=(state_sh, batch_sh, replicated(mesh)),
                        out_shardings=(state_sh, replicated(mesh)))
    d_state, d_out = d_sharded(sharded_state, sharded_batch, rng)
    _, g_out = g_sharded(d_state, sharded_batch, rng)
    for ref, out in ((d_ref, d_out), (g_ref, g_out)):
        for key in ref:
            np.testing.assert_allclose(out[key], ref[key], rtol=2e-4, atol=1e-5, err_msg=key)


def test_gradient_accumulation_averages_micro_batches(setup):
    """For a mean-reduced loss, k micro-batches give the full batch's gradient."""
    config, steps, *_ = setup
    params = {"w": jax.random.normal(jax.random.PRNGKey(0), (3, 2))}
    batch = {"x": jax.random.normal(jax.random.PRNGKey(1), (8, 3))}

    def loss_fn(p, b, rng):
        loss = jnp.mean(jnp.square(b["x"] @ p["w"]))
        return loss, {"loss": loss}

    full = steps._grads(loss_fn, params, batch, jax.random.PRNGKey(2))
    config.train.grad_accum_steps = 4
    try:
        accumulated = steps._grads(loss_fn, params, batch, jax.random.PRNGKey(2))
    finally:
        config.train.grad_accum_steps = 1
    np.testing.assert_allclose(accumulated[0]["w"], full[0]["w"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(accumulated[1]["loss"], full[1]["loss"], rtol=1e-5)


def test_nonfinite_skip_keeps_the_old_state(setup):
    config, steps, state, *_ = setup
    new = state.replace(step=state.step + 5)
    config.train.nonfinite = "skip"
    try:
        kept, metrics = steps._finish(state, new, {"g": jnp.ones(3)}, {"d/loss": jnp.float32(jnp.nan)}, "d")
        taken, ok_metrics = steps._finish(state, new, {"g": jnp.ones(3)}, {"d/loss": jnp.float32(1.0)}, "d")
    finally:
        config.train.nonfinite = "stop"
    assert int(kept.step) == int(state.step) and float(metrics["d/skipped"]) == 1.0
    assert int(taken.step) == int(state.step) + 5 and float(ok_metrics["d/skipped"]) == 0.0


def test_vision_aided_terms_train_their_heads_and_reach_g(tiny_clip):
    """With a (tiny, random) CLIP: the D step trains the vision heads, the G step's vision and
    CLIP terms are finite, and CLIP's own params never change (they are not in the state)."""
    from gigagan_jax.pretrained.clip import load_clip
    from gigagan_jax.models.vision_aided import VisionAidedHeads
    from gigagan_jax.train.state import vision_example_inputs

    config = at_8px(load_config("configs/tiny.py"))
    config.loss.vision_aided_start = 0
    clip = load_clip(tiny_clip)
    generator, disc, heads = build_generator(config), build_discriminator(config), VisionAidedHeads(hidden=16)
    steps = GanSteps(config, generator, disc, clip=clip, vision_heads=heads)
    state = jax.jit(lambda k: steps.init_state(k, vision_inputs=vision_example_inputs(clip)))(jax.random.PRNGKey(0))
    ids = clip.tokenize(["a red circle", "a blue square"] * 4)
    feats, eot, embeds = clip.encode_text(ids)
    batch = {"image": jnp.zeros((8, R, R, 3), jnp.uint8), "text_features": feats, "eot_index": eot,
             "text_embeds": embeds}
    d_state, d_metrics = jax.jit(functools.partial(steps.d_step, with_vision=True))(
        state, batch, jax.random.PRNGKey(1), clip.params)
    assert bool(jnp.isfinite(d_metrics["d/vision_aided"]))
    moved = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), d_state.d_params["vision"],
                                   state.d_params["vision"])
    assert all(jax.tree_util.tree_leaves(moved))
    _, g_metrics = jax.jit(functools.partial(steps.g_step, with_vision=True))(
        d_state, batch, jax.random.PRNGKey(2), clip.params)
    assert bool(jnp.isfinite(g_metrics["g/vision_aided"])) and bool(jnp.isfinite(g_metrics["g/clip"]))
