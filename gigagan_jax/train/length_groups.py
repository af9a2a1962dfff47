"""Encode a batch's captions in groups of like length, each at the shortest length it needs.

CLIP's text transformer attends causally and pools at EOT, so a caption's embedding is the same
at any length that holds its EOT. Padding every caption to the longest one in the data makes one
long caption set the cost of all: on a caption folder whose longest caption fills the 77-token
context, the small CLIP's step took 2.5x that of 16 tokens. A `LengthPlan` fixes, from the data's
caption lengths, how many of a batch's captions are encoded at each of a few lengths (static
shapes: one executable); each batch is drawn as before, sorted by length and cut into those
groups. The rare batch with more long captions than the plan has room for is encoded whole at
the longest length (a second executable, compiled when first needed), so no batch changes.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
from scipy import stats

from gigagan_jax.pretrained.tokenize import CONTEXT_LENGTH

ROUND_TO = 8  # group lengths are multiples of this (or the context length): few distinct shapes
MAX_GROUPS = 3
# The chance, per batch, that its long captions overflow the plan's room for them.
OVERFLOW = 1e-4
# A plan with one more group is taken only if it cuts the token positions encoded by this share:
# each group is another copy of the text tower in the step's program, compiled once.
GROUP_GAIN = 0.1


def needed_lengths(ids: np.ndarray) -> np.ndarray:
    """The token length each caption needs: up to and including its EOT (the largest id). [N]"""
    return np.asarray(ids).argmax(axis=1) + 1  # ids [N, 77]


def _rounded(length: int) -> int:
    return int(min(CONTEXT_LENGTH, -(-length // ROUND_TO) * ROUND_TO))


@dataclasses.dataclass(frozen=True)
class LengthPlan:
    """`sizes[g]` captions of each batch are encoded at `lengths[g]` tokens (ascending)."""

    sizes: tuple[int, ...]
    lengths: tuple[int, ...]

    @property
    def batch(self) -> int:
        return sum(self.sizes)

    @property
    def positions(self) -> int:
        """Token positions the text tower encodes per batch."""
        return sum(s * n for s, n in zip(self.sizes, self.lengths))

    def split(self, needed: np.ndarray) -> list[tuple[np.ndarray, int]]:
        """(batch positions, token length) of each group, for a batch whose captions need
        `needed` [B] tokens. A batch with more long captions than the plan has room for is one
        group at the longest length."""
        order = np.argsort(needed, kind="stable")
        groups = np.split(order, np.cumsum(self.sizes)[:-1])
        if all(needed[g].max() <= n for g, n in zip(groups, self.lengths)):
            return list(zip(groups, self.lengths))
        return [(order, self.lengths[-1])]

    def describe(self) -> str:
        return ", ".join(f"{s} at {n}" for s, n in zip(self.sizes, self.lengths)) + " tokens"


def group_rows(groups: list[tuple[np.ndarray, int]], rows: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """A batch's token rows [B, 77] per group of `LengthPlan.split`, each cut to its group's
    length (([B_g, L_g], ...)), and the batch positions in that order [B], for their images."""
    return tuple(rows[g, :n] for g, n in groups), np.concatenate([g for g, _ in groups])


def _room(batch: int, share_longer: float, overflow: float) -> int:
    """Slots for captions longer than a cut: all but `overflow` of batches have no more."""
    return int(stats.binom.ppf(1 - overflow, batch, share_longer)) if share_longer > 0 else 0


def plan_lengths(needed: np.ndarray, batch: int, overflow: float = OVERFLOW) -> LengthPlan:
    """The plan with the fewest token positions per batch for captions whose needed lengths are
    `needed` [N], drawn `batch` at a time: up to MAX_GROUPS groups at multiples of ROUND_TO,
    where each batch overflows it with chance <= `overflow` (a binomial tail per cut: drawing
    without replacement only narrows it)."""
    needed = np.asarray(needed)
    longest = _rounded(int(needed.max()))
    best = LengthPlan((batch,), (longest,))
    cuts = range(ROUND_TO, longest, ROUND_TO)
    for n_cuts in range(1, MAX_GROUPS):
        best_here = None
        for lengths in itertools.combinations(cuts, n_cuts):
            rooms = [_room(batch, float((needed > n).mean()), overflow / n_cuts) for n in lengths]
            sizes = [batch - rooms[0]] + [a - b for a, b in zip(rooms, rooms[1:])] + [rooms[-1]]
            if min(sizes) <= 0:  # an empty group: the plan with fewer cuts covers it
                continue
            plan = LengthPlan(tuple(sizes), (*lengths, longest))
            if best_here is None or plan.positions < best_here.positions:
                best_here = plan
        if best_here is None or best_here.positions > (1 - GROUP_GAIN) * best.positions:
            break
        best = best_here
    return best
