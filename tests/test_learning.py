"""The objective learns text conditioning: 4 captions, each paired with a solid colour."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gigagan_jax.config import load_config
from gigagan_jax.models.build import build_discriminator, build_generator
from gigagan_jax.train.step import GanSteps

COLOURS = np.array([[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1]], np.float32)  # R, G, B, yellow


def _colour_error(steps, g_params, captions, eots, rng):
    """Mean |mean colour of G's samples - the caption's colour| over the 4 captions."""
    batch = {"image": jnp.zeros((16, 16, 16, 3)), "text_features": jnp.repeat(captions, 4, axis=0),
             "eot_index": jnp.repeat(eots, 4)}
    images = steps.generate(g_params, batch, rng)[-1]  # [16, 16, 16, 3]
    means = images.reshape(4, 4, -1, 3).mean(axis=(1, 2))  # [4 captions, 3]
    return float(jnp.mean(jnp.abs(means - COLOURS)))


@pytest.mark.slow
def test_generator_learns_caption_colours():
    config = load_config("configs/tiny.py")
    config.train.batch_size = 8
    generator, disc = build_generator(config), build_discriminator(config)
    steps = GanSteps(config, generator, disc)
    state = jax.jit(steps.init_state)(jax.random.PRNGKey(0))
    captions = jax.random.normal(jax.random.PRNGKey(1), (4, 77, 32))
    eots = jnp.array([4, 5, 6, 7], jnp.int32)
    d_plain = jax.jit(steps.d_step, donate_argnums=0)
    d_r1 = jax.jit(functools.partial(steps.d_step, with_r1=True), donate_argnums=0)
    g_step = jax.jit(steps.g_step, donate_argnums=0)
    eval_rng = jax.random.PRNGKey(123)
    before = _colour_error(steps, state.g_params, captions, eots, eval_rng)

    key = jax.random.PRNGKey(2)
    for step in range(400):
        k = jax.random.fold_in(key, step)
        which = jax.random.randint(jax.random.fold_in(k, 0), (8,), 0, 4)
        batch = {"image": jnp.broadcast_to(COLOURS[which][:, None, None, :], (8, 16, 16, 3)),
                 "text_features": captions[which], "eot_index": eots[which]}
        d_fn = d_r1 if step % config.loss.r1_interval == 0 else d_plain
        state, d_metrics = d_fn(state, batch, jax.random.fold_in(k, 1))
        state, g_metrics = g_step(state, batch, jax.random.fold_in(k, 2))
        if step % 50 == 0:
            assert all(bool(jnp.isfinite(v)) for v in {**d_metrics, **g_metrics}.values()), step
    after = _colour_error(steps, state.g_params, captions, eots, eval_rng)
    print(f"mean-colour error {before:.3f} -> {after:.3f} after 400 D/G steps")
    assert after <= 0.5 * before, (before, after)
