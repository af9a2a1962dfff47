"""GAN, matching-aware and R1 terms: analytic values and the properties the objective needs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gigagan_jax.losses import gan
from gigagan_jax.losses.regularizers import r1_penalty


def test_r1_matches_analytic_values():
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 8, 3))
    a = jax.random.normal(jax.random.PRNGKey(1), (8, 8, 3))
    # Linear D: grad = a for every sample -> penalty = ||a||^2.
    linear = lambda imgs: jnp.sum(imgs * a, axis=(1, 2, 3))  # noqa: E731
    np.testing.assert_allclose(r1_penalty(linear, x), float(jnp.sum(a**2)), rtol=1e-5)
    # Quadratic D: grad = x_b -> penalty = mean_b ||x_b||^2.
    quadratic = lambda imgs: 0.5 * jnp.sum(imgs**2, axis=(1, 2, 3))  # noqa: E731
    np.testing.assert_allclose(r1_penalty(quadratic, x), float(jnp.mean(jnp.sum(x**2, axis=(1, 2, 3)))), rtol=1e-5)
    # Constant D: zero.
    assert float(r1_penalty(lambda imgs: jnp.zeros(imgs.shape[0]) + 3.0, x)) == 0.0


@pytest.mark.parametrize("batch", [2, 3, 8, 33])
def test_mismatch_permutation_is_a_derangement(batch):
    for seed in range(50):
        perm = np.asarray(gan.mismatch_permutation(jax.random.PRNGKey(seed), batch))
        assert sorted(perm.tolist()) == list(range(batch))
        assert np.all(perm != np.arange(batch)), perm


def test_mismatch_permutation_rejects_batch_of_one():
    with pytest.raises(ValueError, match="at least 2"):
        gan.mismatch_permutation(jax.random.PRNGKey(0), 1)


def test_duplicate_captions_are_masked_out_of_matching():
    captions = jnp.array([[1, 2], [3, 4], [1, 2], [5, 6]])  # samples 0 and 2 share a caption
    perm = jnp.array([2, 3, 0, 1])
    np.testing.assert_array_equal(gan.same_pair(captions, perm), [True, False, True, False])
    logits = {(8, 4): jnp.stack([jnp.full((4, 4), v) for v in (100.0, 0.0, 100.0, 0.0)])}
    # Only the valid samples (logit 0 -> softplus = log 2) count; the masked ones would add 100.
    np.testing.assert_allclose(gan.g_matching_loss(logits, jnp.array([0.0, 1.0, 0.0, 1.0])), np.log(2), rtol=1e-6)


def test_paraphrases_count_as_the_same_caption():
    from gigagan_jax.losses.clip_loss import close_caption_pairs, close_captions

    # 1 is 0 at twice the norm (cosine 1), 2 is near 0 (0.995), 3 is further (0.894), 4 apart.
    embeds = jnp.array([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [1.0, 0.1, 0.0], [1.0, 0.5, 0.0], [0.0, 0.0, 1.0]])
    close = np.asarray(close_captions(embeds, embeds, 0.99))
    np.testing.assert_array_equal(close[0], [True, True, True, False, False])
    np.testing.assert_array_equal(close, close.T)
    assert np.all(np.diag(close)) and not close[3, 4]
    # Per pair, the same reading.
    partners = jnp.array([1, 0, 3, 4, 2])
    np.testing.assert_array_equal(close_caption_pairs(embeds, embeds[partners], 0.99), [True, True, False, False, False])


def test_losses_are_finite_for_extreme_logits_and_sum_over_pairs():
    big = {(16, 8): jnp.full((2, 8, 8), 1e4), (16, 1): jnp.full((2, 1, 1), -1e4)}
    for value in (gan.d_gan_loss(big, big), gan.g_gan_loss(big),
                  gan.d_matching_loss(big, big, jnp.ones(2))):
        assert bool(jnp.isfinite(value))
    zeros = {(16, 8): jnp.zeros((2, 8, 8)), (16, 4): jnp.zeros((2, 4, 4)), (8, 1): jnp.zeros((2, 1, 1))}
    # Each pair contributes softplus(0) = log 2 per real and per fake term.
    np.testing.assert_allclose(gan.d_gan_loss(zeros, zeros), 6 * np.log(2), rtol=1e-6)
    np.testing.assert_allclose(gan.g_gan_loss(zeros), 3 * np.log(2), rtol=1e-6)


def test_vision_aided_terms_are_the_logistic_loss_of_the_heads_logits():
    from gigagan_jax.losses.vision_aided import d_vision_aided_loss, g_vision_aided_loss

    zeros = jnp.zeros((4,))
    np.testing.assert_allclose(d_vision_aided_loss(zeros, zeros), 2 * np.log(2), rtol=1e-6)
    np.testing.assert_allclose(g_vision_aided_loss(zeros), np.log(2), rtol=1e-6)
    confident = jnp.array([30.0, 40.0])  # D sure: reals real, fakes fake -> D's loss ~0, G's ~30
    assert float(d_vision_aided_loss(confident, -confident)) < 1e-12
    np.testing.assert_allclose(g_vision_aided_loss(-confident), 35.0, rtol=1e-6)
    assert np.isfinite(float(d_vision_aided_loss(jnp.array([-1e4]), jnp.array([1e4]))))  # no overflow
