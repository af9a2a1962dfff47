"""Improved precision/recall: k-NN radii, known answers on synthetic sets, and agreement with a
brute-force numpy reference."""

import numpy as np
import pytest

from gigagan_jax.eval.precision_recall import coverage, kth_neighbour_radii, precision_recall


def reference_precision_recall(real, fake, k):
    """Brute force with float64 distances (no blocking, no |a|^2 - 2ab + |b|^2 expansion)."""
    def radii(x):
        d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    def inside(queries, centres, r):
        d = np.sqrt(((queries[:, None] - centres[None]) ** 2).sum(-1))
        return (d <= r[None]).any(axis=1).mean()

    return inside(fake, real, radii(real)), inside(real, fake, radii(fake))


LINE = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]])


def test_radii_on_a_line():
    # 3rd nearest other point: 0 -> 6 (1, 3, 6), 1 -> 6 (0, 3, 6), 3 -> 0 or 6, 6 -> 1 (3, 10, 1),
    # 10 -> 1 (6, 3, 1): distances 6, 5, 3, 5, 9.
    radii = kth_neighbour_radii(LINE, k=3, block=2)  # blocks of 2: the last one is padded
    np.testing.assert_array_equal(radii, np.array([6.0, 5, 3, 5, 9]) ** 2)


def test_coverage_counts_the_boundary_as_inside():
    radii = kth_neighbour_radii(LINE, k=3)  # balls cover [-6, 19]
    fake = np.array([[2.0], [20.0], [-7.0], [-6.0]])  # inside, outside, outside, on the boundary
    assert coverage(fake, LINE, radii) == 0.5


def test_identical_sets_give_one_one():
    x = np.random.default_rng(0).normal(size=(300, 64)).astype(np.float32) * 10 + 50
    assert precision_recall(x, x.copy()) == (1.0, 1.0)


def test_a_large_common_offset_changes_nothing():
    """Features whose spread is ~1e-3 of their norm (a random Inception's): the expanded squared
    distance's round-off would exceed the k-NN radii without the shift by the reals' mean."""
    rng = np.random.default_rng(4)
    real = rng.normal(size=(40, 256))
    fake = np.concatenate([real[:20], rng.normal(size=(20, 256)) + 3.0])  # 20 copies, 20 far off
    unshifted = precision_recall(real * 1e-3, fake * 1e-3)
    assert unshifted[0] == 0.5  # the copies are inside, the others not
    assert precision_recall(real * 1e-3 + 1.0, fake * 1e-3 + 1.0) == unshifted


def test_far_apart_sets_give_zero_zero():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(200, 32))
    fake = rng.normal(size=(150, 32)) + 100.0
    assert precision_recall(real, fake) == (0.0, 0.0)


def test_mode_dropping_lowers_recall_not_precision():
    """Fakes covering only one of two real clusters: all realistic, half the data missed."""
    rng = np.random.default_rng(2)
    real = np.concatenate([rng.normal(size=(200, 8)), rng.normal(size=(200, 8)) + 50])
    fake = rng.normal(size=(400, 8))
    precision, recall = precision_recall(real, fake)
    assert precision > 0.8  # same distribution as the first cluster (finite-sample tails miss)
    assert 0.35 < recall <= 0.5  # the second cluster is never reached


@pytest.mark.parametrize("k", [1, 3, 5])
def test_matches_brute_force_reference(k):
    rng = np.random.default_rng(3)
    real = rng.normal(size=(250, 16))
    fake = rng.normal(size=(180, 16)) * 1.3 + 0.4
    got = precision_recall(real, fake, k=k, block=64)
    want = reference_precision_recall(real, fake, k)
    assert got == pytest.approx(want, abs=1.5 / 180)  # float32 may flip a boundary sample
    assert 0 < got[0] < 1 and 0 < got[1] < 1  # a case where neither is trivially 0 or 1


def test_too_few_samples_raise():
    with pytest.raises(ValueError, match="more than 3"):
        kth_neighbour_radii(np.zeros((3, 2)))
