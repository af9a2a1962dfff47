"""Mapping network M(z, condition) -> w (StyleGAN2 MLP with lr multiplier 0.01)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gigagan_jax.models.layers import EqualizedDense, normalize_2nd_moment


class MappingNetwork(nn.Module):
    """Both z and the embedded condition (t_global, or a one-hot class) are normalised to unit
    second moment before being concatenated, so neither dominates the MLP's input."""

    w_dim: int
    layers: int
    lr_mult: float = 0.01

    @nn.compact
    def __call__(self, z: jax.Array, condition: jax.Array) -> jax.Array:
        x = normalize_2nd_moment(z.astype(jnp.float32))  # [B, z_dim]
        y = normalize_2nd_moment(EqualizedDense(self.w_dim, name="embed_condition")(condition.astype(jnp.float32)))
        x = jnp.concatenate([x, y], axis=-1)  # [B, z_dim + w_dim]
        for i in range(self.layers):
            x = EqualizedDense(self.w_dim, lr_mult=self.lr_mult, activation="lrelu", name=f"fc{i}")(x)
        return x  # [B, w_dim]


def truncate(w: jax.Array, w_avg: jax.Array, psi: float | jax.Array) -> jax.Array:
    """The truncation trick: pull w toward the (per-condition) mean; psi = 1 is exactly the identity."""
    return jnp.where(psi == 1.0, w, w_avg + psi * (w - w_avg))
