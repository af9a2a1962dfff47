"""R1 gradient penalty on real images (Mescheder et al. 2018), applied lazily as in StyleGAN2."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def r1_penalty(score_fn: Callable[[jax.Array], jax.Array], images: jax.Array) -> jax.Array:
    """E_b ||grad_x score(x)_b||^2 for real images x [B, H, W, C]; score_fn: x -> [B].

    The R1 loss is (gamma / 2) * r1_penalty; with lazy regularisation it is computed every k
    D steps and multiplied by k. Samples are independent in D, so one vjp of the summed score
    gives every sample's own gradient.
    """
    grads = jax.grad(lambda x: jnp.sum(score_fn(x)))(images.astype(jnp.float32))
    return jnp.mean(jnp.sum(jnp.square(grads).reshape(grads.shape[0], -1), axis=1))
