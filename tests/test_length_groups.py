"""The small CLIP encodes a batch's captions in groups of like length (gigagan_jax.train.length_groups):
the plan is cut to the data, a batch that does not fit it is encoded whole, and a grouped step
computes what the padded one does."""

import jax
import numpy as np
import optax
import pytest

from gigagan_jax.pretrained.clip import init_params
from gigagan_jax.pretrained.tokenize import ClipTokenizer
from gigagan_jax.train.length_groups import LengthPlan, group_rows, needed_lengths, plan_lengths
from gigagan_jax.train.small_clip import SmallClipSpec, clip_config, make_train_step

EOT = 49407


def _mixture(n_short=950, n_long=50, seed=0):
    """Needed lengths: most captions short (9-15 tokens), a few long (40-70)."""
    rng = np.random.default_rng(seed)
    return rng.permutation(np.concatenate([rng.integers(9, 16, n_short), rng.integers(40, 71, n_long)]))


def _ids(needed, seed=0):
    """Token ids [N, 77] whose EOT sits at needed - 1 (SOT first, padding 0 after EOT)."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((len(needed), 77), np.int32)
    for row, n in zip(ids, needed):
        row[0], row[1:n - 1], row[n - 1] = 49406, rng.integers(1, 49000, n - 2), EOT
    return ids


def test_needed_length_runs_to_the_eot():
    ids = ClipTokenizer()(["a red circle in the center on a black background", "a cat"])
    np.testing.assert_array_equal(needed_lengths(ids), [12, 4])


def test_short_captions_are_one_group_at_their_rounded_length():
    plan = plan_lengths(np.array([5, 9, 12, 14]), batch=32)
    assert plan == LengthPlan((32,), (16,))


def test_a_few_long_captions_get_a_small_group_of_their_own():
    needed = _mixture()
    plan = plan_lengths(needed, batch=128)
    assert plan.lengths[0] == 16 and plan.lengths[-1] == 72 and plan.batch == 128
    assert 6 < plan.sizes[-1] < 32  # room for the ~5 % long ones, with a margin
    assert plan.positions < 0.45 * 128 * 72  # against padding every caption to the longest


def test_batches_overflow_the_plan_at_most_at_the_stated_rate():
    """With a loose overflow chance (5 %) the tail bound is checked: drawn batches (without
    replacement, as training draws them) overflow at no more than that, yet some do."""
    needed = _mixture()
    plan = plan_lengths(needed, batch=128, overflow=0.05)
    rng = np.random.default_rng(1)
    whole = sum(len(plan.split(needed[rng.choice(len(needed), 128, replace=False)])) == 1 for _ in range(4000))
    assert 0 < whole / 4000 <= 0.05


def test_a_split_puts_each_caption_in_a_group_long_enough_and_an_overflow_is_one_group():
    plan = LengthPlan((6, 2), (16, 72))
    needed = np.array([70, 12, 9, 15, 40, 3, 16, 10])
    groups = plan.split(needed)
    assert [n for _, n in groups] == [16, 72] and [len(g) for g, _ in groups] == [6, 2]
    assert sorted(np.concatenate([g for g, _ in groups]).tolist()) == list(range(8))
    assert all(needed[g].max() <= n for g, n in groups)
    three_long = np.array([70, 12, 9, 15, 40, 3, 17, 10])  # 17 needs more than 16
    [(order, length)] = plan.split(three_long)
    assert length == 72 and sorted(order.tolist()) == list(range(8))


@pytest.mark.parametrize("split", [(6, 2), (1, 5, 2)])
def test_a_grouped_step_computes_what_the_padded_step_does(split):
    """Same loss and the same parameters after the step, whether the batch's captions are encoded
    in groups at their lengths or all padded to 77 tokens in another order."""
    spec = SmallClipSpec(text_width=32, text_layers=2, vision_width=32, vision_layers=1, heads=2, projection=16,
                         image_size=16, patch=4)
    config = clip_config(spec)
    params = init_params(config, jax.random.key(0))
    optimizer = optax.sgd(1.0)  # the step's change is its gradient (Adam's first step would be its sign)
    step = make_train_step(config, optimizer)
    needed = np.array([70, 12, 9, 15, 40, 3, 16, 10])
    ids = _ids(needed)
    pixels = np.random.default_rng(2).uniform(-1, 1, (8, 16, 16, 3)).astype(np.float32)
    plan = LengthPlan(split, (16, 72) if len(split) == 2 else (8, 16, 72))
    groups = plan.split(needed)
    assert len(groups) == len(split)
    id_groups, order = group_rows(groups, ids)
    grouped = step(params, optimizer.init(params), id_groups, pixels[order], 1.0)
    padded = step(params, optimizer.init(params), (ids,), pixels, 1.0)
    np.testing.assert_allclose(grouped[2], padded[2], rtol=1e-5)
    changes = [jax.tree.map(lambda new, old: np.asarray(new - old), out[0], params) for out in (grouped, padded)]
    largest = max(float(np.abs(c).max()) for c in jax.tree.leaves(changes[1]))
    assert largest > 1e-3
    for a, b in zip(*map(jax.tree.leaves, changes)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * largest)
