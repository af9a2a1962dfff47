"""Improved precision and recall (Kynkäänniemi et al., NeurIPS 2019) on feature vectors.

Each set's manifold is approximated by the union of balls around its samples, each ball's
radius being the distance to that sample's k-th nearest neighbour within the set (k = 3, the
paper's choice; the sample itself does not count). Precision = fraction of generated samples
inside the real manifold (fidelity); recall = fraction of real samples inside the generated
manifold (coverage). A sample on a ball's boundary counts as inside.

Pairwise distances are computed in fixed-size row blocks with jnp, so memory stays at
block x N and every block reuses one compiled kernel.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_K = 3


def _squared_distances(a, b):
    """[M, D], [N, D] -> [M, N] squared Euclidean distances (clipped at 0 against round-off).
    Full float32 matmul: a bfloat16 pass (TPU default) would reorder near neighbours."""
    cross = jnp.matmul(a, b.T, precision=jax.lax.Precision.HIGHEST)  # [M, N]
    d = jnp.sum(a * a, axis=1)[:, None] - 2.0 * cross + jnp.sum(b * b, axis=1)[None, :]
    return jnp.maximum(d, 0.0)


@functools.partial(jax.jit, static_argnames="k")
def _kth_neighbour_block(rows, points, k: int):
    """Squared distance from each row [M, D] to its k-th nearest point of `points` [N, D],
    counting the row itself (at distance 0) as the 0-th neighbour."""
    smallest = -jax.lax.top_k(-_squared_distances(rows, points), k + 1)[0]  # [M, k + 1]
    return smallest[:, k]  # [M]


@jax.jit
def _inside_block(rows, centres, radii):
    """Whether each row [M, D] lies in any ball (centres [N, D], squared radii [N])."""
    return jnp.any(_squared_distances(rows, centres) <= radii[None, :], axis=1)  # [M]


def _blocked(fn, rows: np.ndarray, block: int, *args) -> np.ndarray:
    """Apply `fn(row_block, *args)` over `rows` in blocks of `block`, padding the last one so
    all calls share one shape (padded results are dropped)."""
    out = []
    for start in range(0, rows.shape[0], block):
        chunk = rows[start:start + block]
        pad = block - chunk.shape[0]
        padded = np.pad(chunk, ((0, pad), (0, 0))) if pad else chunk
        out.append(np.asarray(fn(jnp.asarray(padded), *args))[:chunk.shape[0]])
    return np.concatenate(out)


def kth_neighbour_radii(features, k: int = DEFAULT_K, block: int = 1024) -> np.ndarray:
    """Squared k-NN radius [N] of every sample of features [N, D] within its own set."""
    x = np.asarray(features, np.float32)
    if x.shape[0] <= k:
        raise ValueError(f"k-NN radii with k={k} need more than {k} samples, got {x.shape[0]}")
    points = jnp.asarray(x)
    return _blocked(lambda rows: _kth_neighbour_block(rows, points, k), x, block)


def coverage(queries, centres, radii, block: int = 1024) -> float:
    """Fraction of queries [M, D] inside the union of balls (centres [N, D], squared radii [N])."""
    q = np.asarray(queries, np.float32)
    inside = _blocked(_inside_block, q, block, jnp.asarray(centres, jnp.float32),
                      jnp.asarray(radii, jnp.float32))
    return float(inside.mean())


def precision_recall(real, fake, k: int = DEFAULT_K, block: int = 1024) -> tuple[float, float]:
    """(precision, recall) of fake features [M, D] against real features [N, D].

    Both sets are first shifted by the reals' mean: distances do not change, but the round-off of
    |a|^2 - 2ab + |b|^2 does. It scales with the features' squared norm, and features that share a
    large common part (non-negative pool features; a random network's, which barely vary) would
    otherwise have k-NN radii below it: a copy of a real sample then fell outside that sample's
    own ball on one CPU and not another."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    centre = real.mean(axis=0)  # [D]
    real, fake = (real - centre).astype(np.float32), (fake - centre).astype(np.float32)
    precision = coverage(fake, real, kth_neighbour_radii(real, k, block), block)
    recall = coverage(real, fake, kth_neighbour_radii(fake, k, block), block)
    return precision, recall
