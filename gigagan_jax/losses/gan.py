"""Adversarial terms of GigaGAN's objective over all MS-I/O pairs (paper eq. 6 and 8).

Every term is the non-saturating logistic loss written with `softplus`, which is finite for
any logit (log(1 + exp(x)) overflows for x > 88 in float32).

    V_GAN   (eq. 6):  D: softplus(-D(x, c)) + softplus(D(G(c), c));   G: softplus(-D(G(c), c))
    V_match (eq. 8):  D: softplus(D(x, c_hat)) + softplus(D(G(c), c_hat))
                      G: softplus(D(G(c), c_hat))
with c_hat a caption of another image of the batch. For G, the matching term asks that its
image for c is *not* accepted as a match for other captions (Table 1: "matching loss (G, D)").
Each pair (i, j) contributes the mean over batch and positions of its logit map; pairs are
summed, as in eq. 6.
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

Logits = dict  # {(i, j): [B, j, j] float32}


def per_sample(logits: jax.Array) -> jax.Array:
    """[B, j, j] -> [B]: mean over positions."""
    return jnp.mean(logits.reshape(logits.shape[0], -1), axis=1)


def _sum_over_pairs(logits: Logits, fn: Callable[[jax.Array], jax.Array],
                    weights: Optional[jax.Array] = None) -> jax.Array:
    """sum_pairs mean_b w_b * mean_pos fn(logit); `weights` [B] masks samples out (normalised)."""
    total = jnp.zeros((), jnp.float32)
    for value in logits.values():
        per = per_sample(fn(value))  # [B]
        if weights is None:
            total += jnp.mean(per)
        else:
            total += jnp.sum(per * weights) / jnp.maximum(jnp.sum(weights), 1.0)
    return total


def d_gan_loss(real: Logits, fake: Logits) -> jax.Array:
    return _sum_over_pairs(real, lambda x: jax.nn.softplus(-x)) + _sum_over_pairs(fake, jax.nn.softplus)


def g_gan_loss(fake: Logits) -> jax.Array:
    return _sum_over_pairs(fake, lambda x: jax.nn.softplus(-x))


def d_matching_loss(real_mismatched: Logits, fake_mismatched: Logits, valid: jax.Array) -> jax.Array:
    """Eq. 8 for D: real and generated images paired with another sample's caption are fakes.

    valid [B] float: 0 where the shuffled caption happens to equal the image's own (duplicate
    captions in the batch), so a true match is never pushed toward "mismatch".
    """
    return (_sum_over_pairs(real_mismatched, jax.nn.softplus, valid)
            + _sum_over_pairs(fake_mismatched, jax.nn.softplus, valid))


def g_matching_loss(fake_mismatched: Logits, valid: jax.Array) -> jax.Array:
    return _sum_over_pairs(fake_mismatched, jax.nn.softplus, valid)


def mismatch_permutation(rng: jax.Array, batch: int) -> jax.Array:
    """A random derangement: index m[b] != b for every b (needs batch >= 2).

    Shuffle the batch into a random cycle order and pair each sample with its successor in that
    cycle, so no sample is ever paired with itself.
    """
    if batch < 2:
        raise ValueError(f"the matching-aware loss needs a batch of at least 2, got {batch}")
    order = jax.random.permutation(rng, batch)  # [B]
    successor = jnp.roll(order, -1)
    return jnp.zeros((batch,), jnp.int32).at[order].set(successor.astype(jnp.int32))


def same_condition(condition: jax.Array) -> jax.Array:
    """[B, B] bool: True where samples n and m have the same condition (caption / class)."""
    flat = condition.reshape(condition.shape[0], -1)
    return jnp.all(flat[:, None] == flat[None, :], axis=-1)


def same_pair(condition: jax.Array, perm: jax.Array) -> jax.Array:
    """[B] bool: True where sample b's condition equals that of sample perm[b]."""
    flat = condition.reshape(condition.shape[0], -1)
    return jnp.all(flat == flat[perm], axis=1)


def mean_logit(logits: Logits) -> jax.Array:
    """Average raw logit over pairs, batch and positions (a metric)."""
    return jnp.mean(jnp.stack([jnp.mean(v) for v in logits.values()]))
