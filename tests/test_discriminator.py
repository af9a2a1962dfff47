"""Discriminator: MS-I/O pairs and shapes, text reaches every prediction, class variant."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import meta

from gigagan_jax.config import load_config
from gigagan_jax.models.build import build_discriminator
from gigagan_jax.models.discriminator import Discriminator, real_pyramid, stack_batches, unstack_batches


def _inputs(spec, batch=2, seed=0):
    images = jax.random.normal(jax.random.PRNGKey(seed), (batch, spec.resolution, spec.resolution, 3))
    feats = jax.random.normal(jax.random.PRNGKey(seed + 1), (batch, spec.text_len, spec.text_encoder_dim))
    return real_pyramid(images, spec.input_resolutions), feats, jnp.arange(batch, dtype=jnp.int32) + 3


@pytest.mark.parametrize("name, num_pairs", [("tiny", 6), ("bench64", 14), ("t2i_64", 15)])
def test_ms_io_pairs_match_the_pyramid(name, num_pairs):
    """Inputs at R and each configured lower level; predictions at every lower level and 1x1."""
    config = load_config(f"configs/{name}.py")
    disc = build_discriminator(config)
    spec = disc.spec
    assert len(spec.pairs) == num_pairs
    pyramid, feats, eot = _inputs(spec)
    out = jax.eval_shape(lambda: disc.init_with_output(jax.random.PRNGKey(0), pyramid, feats, eot)[0])
    assert set(out) == set(spec.pairs)
    for (i, j), logits in out.items():
        assert j < i and logits.shape == (2, j, j), (i, j, logits.shape)


@functools.lru_cache(maxsize=None)
def _tiny(conditioning="text"):
    config = load_config("configs/tiny.py")
    if conditioning == "class":
        config.model.conditioning, config.model.num_classes = "class", 4
        config.model.g.cross_attn_resolutions = ()
    disc = build_discriminator(config)
    pyramid, feats, eot = _inputs(disc.spec)
    if conditioning == "class":
        params = jax.jit(lambda k: disc.init(k, pyramid, labels=jnp.array([0, 1])))(jax.random.PRNGKey(0))
    else:
        params = jax.jit(lambda k: disc.init(k, pyramid, feats, eot))(jax.random.PRNGKey(0))
    return disc, meta.unbox(params)


def test_every_prediction_sees_the_text():
    disc, params = _tiny()
    pyramid, feats, eot = _inputs(disc.spec)
    run = jax.jit(lambda f: disc.apply(params, pyramid, f, eot))
    base, other = run(feats), run(feats + 0.5)
    for pair in disc.spec.pairs:
        assert float(jnp.abs(base[pair] - other[pair]).max()) > 1e-5, pair
    # And on the image: every pair reads its own input scale.
    pyramid2 = {r: x + 0.1 * (r == 16) for r, x in pyramid.items()}
    moved = jax.jit(lambda: disc.apply(params, pyramid2, feats, eot))()
    changed = {pair for pair in disc.spec.pairs if float(jnp.abs(moved[pair] - base[pair]).max()) > 1e-6}
    assert changed == {p for p in disc.spec.pairs if p[0] == 16}


def test_text_padding_after_eot_is_ignored():
    disc, params = _tiny()
    pyramid, feats, eot = _inputs(disc.spec)
    after_eot = jnp.arange(feats.shape[1])[None, :, None] > eot[:, None, None]
    noisy = jnp.where(after_eot, feats + 7.0, feats)
    a = disc.apply(params, pyramid, feats, eot)
    b = disc.apply(params, pyramid, noisy, eot)
    for pair in disc.spec.pairs:
        np.testing.assert_allclose(a[pair], b[pair], rtol=1e-5, atol=1e-5)


def test_class_conditional_discriminator():
    disc, params = _tiny("class")
    assert "text_transformer" not in params["params"]
    pyramid, _, _ = _inputs(disc.spec)
    a = disc.apply(params, pyramid, labels=jnp.array([0, 1]))
    b = disc.apply(params, pyramid, labels=jnp.array([2, 3]))
    assert all(float(jnp.abs(a[p] - b[p]).max()) > 1e-6 for p in disc.spec.pairs)


def test_discriminator_bad_inputs():
    disc, params = _tiny()
    pyramid, feats, eot = _inputs(disc.spec)
    with pytest.raises(ValueError, match=r"needs images at \[16, 8, 4\] px; missing \[4\]"):
        disc.apply(params, {16: pyramid[16], 8: pyramid[8]}, feats, eot)
    with pytest.raises(ValueError, match=r"text_features must have shape \[B, 77, 32\]"):
        disc.apply(params, pyramid, feats[:, :10], eot)
    with pytest.raises(ValueError, match="needs text_features"):
        disc.apply(params, pyramid, method=Discriminator.text_embedding)


def test_stacked_batches_give_the_logits_of_separate_calls():
    """predict runs each head once over every input that reads it, and the losses stack real,
    fake and mismatched pairs into one pass: each sample's logits must be those of its own call."""
    disc, params = _tiny()
    spec = disc.spec
    pyramid, feats, eot = _inputs(spec)
    other, _, _ = _inputs(spec, seed=5)
    features = disc.apply(params, pyramid, method=Discriminator.features)
    t_d = disc.apply(params, feats, eot, method=Discriminator.text_embedding)
    by_head = disc.apply(params, features, t_d, method=Discriminator.predict)
    for pair, f in features.items():  # head j alone on one pair's features
        alone = disc.apply(params, {pair: f}, t_d, method=Discriminator.predict)[pair]
        np.testing.assert_allclose(by_head[pair], alone, rtol=1e-5, atol=1e-6)

    both = unstack_batches(disc.apply(params, stack_batches([pyramid, other]), method=Discriminator.features), 2)
    second = disc.apply(params, other, method=Discriminator.features)
    for pair in features:
        np.testing.assert_allclose(both[0][pair], features[pair], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(both[1][pair], second[pair], rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(both[0][(16, 1)] - both[1][(16, 1)]).max()) > 1e-3  # two different batches


def test_stacking_on_one_device_concatenates_the_batches():
    """No mesh: the k batches one after another, so the stack and its backward are copies, not
    transposes; unstacking gives each batch back."""
    a, b = jnp.arange(4.0), 10 + jnp.arange(4.0)
    np.testing.assert_array_equal(stack_batches([a, b]), [0, 1, 2, 3, 10, 11, 12, 13])
    back = unstack_batches(stack_batches([{"x": a}, {"x": b}]), 2)
    np.testing.assert_array_equal(back[0]["x"], a)
    np.testing.assert_array_equal(back[1]["x"], b)


def test_stacking_over_a_mesh_keeps_each_device_s_rows_on_it():
    """Under a mesh that splits the batch in 8, device i's block of the stack is its own rows of
    each batch: nothing crosses devices (no collective in the compiled program) and the result
    stays split over the batch."""
    from gigagan_jax.train.sharding import make_mesh, traced_on

    mesh = make_mesh((2, 4), ("data", "fsdp"))
    rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(("data", "fsdp")))
    a = jax.device_put(jnp.arange(16.0).reshape(16, 1), rows)  # 2 rows per device
    b = jax.device_put(100 + jnp.arange(16.0).reshape(16, 1), rows)
    stacked_fn = jax.jit(traced_on(mesh, lambda a, b: stack_batches([a, b])))
    stacked = stacked_fn(a, b)
    np.testing.assert_array_equal(stacked[:8, 0], [0, 1, 100, 101, 2, 3, 102, 103])
    for shard in stacked.addressable_shards:  # each device: its rows of a, then of b
        i = shard.index[0].start // 4
        assert shard.data.shape == (4, 1)
        np.testing.assert_array_equal(shard.data[:, 0], [2 * i, 2 * i + 1, 100 + 2 * i, 101 + 2 * i])
    hlo = stacked_fn.lower(a, b).compile().as_text()
    assert not any(op in hlo for op in ("all-to-all", "all-gather", "collective-permute", "all-reduce")), hlo
    back = jax.jit(traced_on(mesh, lambda x: unstack_batches(x, 2)))(stacked)
    np.testing.assert_array_equal(back[0], a)
    np.testing.assert_array_equal(back[1], b)
    odd = jax.jit(traced_on(mesh, lambda x, y: stack_batches([x, y])))(jnp.arange(6.0), 10 + jnp.arange(6.0))
    np.testing.assert_array_equal(odd, [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15])  # 6 rows do not split in 8
