"""CLIP loading through the Flax msgpack layout, text-only loading, preprocessing and errors.

(PyTorch parity lives in test_clip_parity.py; these need no torch.)
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from transformers import FlaxCLIPModel

from gigagan_jax.pretrained.clip import (
    OPENAI_MEAN,
    OPENAI_STD,
    clip_preprocess,
    init_params,
    load_clip,
    save_clip,
)

from clip_fixtures import save_with_unreadable_tower, tiny_clip_config


def tiny_config():
    return tiny_clip_config()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    config = tiny_config()
    params = init_params(config, jax.random.key(0))
    path = tmp_path_factory.mktemp("clip") / "tiny"
    save_clip(str(path), config, params)
    return str(path), config, params


def test_save_writes_hf_layout_readable_by_transformers(saved):
    path, config, params = saved
    assert json.load(open(f"{path}/config.json"))["projection_dim"] == 16
    model = FlaxCLIPModel.from_pretrained(path, _do_init=False)[0]
    ids = jnp.asarray(load_clip(path).tokenize(["a red square", "a blue circle"]))
    hf_text = model.get_text_features(ids, params=jax.tree.map(jnp.asarray, params))
    _, _, ours = load_clip(path).encode_text(ids)
    np.testing.assert_allclose(ours, hf_text, atol=1e-5, rtol=0)


def test_msgpack_round_trip_is_exact(saved):
    path, _, params = saved
    clip = load_clip(path)
    for (p, a), (q, b) in zip(jax.tree_util.tree_leaves_with_path(clip.params),
                              jax.tree_util.tree_leaves_with_path(params)):
        assert p == q
        np.testing.assert_array_equal(a, b)


def test_text_only_msgpack_skips_the_vision_tower(saved, tmp_path):
    """The vision entries are replaced by bytes that cannot be restored: a text-only load must
    not even parse them, a full load must fail on them."""
    path, config, params = saved
    corrupt = save_with_unreadable_tower(path, str(tmp_path / "corrupt"), "vision_model")

    clip = load_clip(str(corrupt), text_only=True)
    assert set(clip.params) == {"text_model", "text_projection", "logit_scale"}
    ids = clip.tokenize(["a photo of a cat"])
    np.testing.assert_array_equal(clip.encode_text(ids)[2], load_clip(path).encode_text(ids)[2])
    with pytest.raises(Exception):
        load_clip(str(corrupt))


def test_encode_shapes_and_any_resolution(saved):
    path, _, _ = saved
    clip = load_clip(path)
    tokens, eot, projected = clip.encode_text(clip.tokenize(["a photo of a cat", ""]))
    assert tokens.shape == (2, 77, 32) and projected.shape == (2, 16)
    np.testing.assert_array_equal(eot, [6, 1])
    for h, w in [(32, 32), (64, 64), (20, 48)]:
        image, features = clip.encode_image(jnp.zeros((3, h, w, 3)))
        assert image.shape == (3, 16) and len(features) == 2
        assert all(f.shape == (3, 17, 32) for f in features)


def test_preprocess_normalises_and_resizes():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    want = ((x + 1) / 2 - np.array(OPENAI_MEAN)) / np.array(OPENAI_STD)
    np.testing.assert_allclose(clip_preprocess(x, 32), want, atol=1e-6)
    # A smooth image sampled at 64 px comes back as its 32 px sampling; a flat one stays flat.
    def smooth(n):
        u = (np.arange(n) + 0.5) / n
        return 0.8 * np.sin(2 * np.pi * u)[:, None, None] * np.cos(2 * np.pi * u[:, None] + np.arange(3))[None]
    got = np.asarray(clip_preprocess(smooth(64)[None].astype(np.float32), 32))[0]
    small = ((smooth(32) + 1) / 2 - np.array(OPENAI_MEAN)) / np.array(OPENAI_STD)
    assert np.abs(got - small).max() < 0.05
    flat = clip_preprocess(np.full((1, 50, 70, 3), 0.2, np.float32), 32)
    assert flat.shape == (1, 32, 32, 3)
    np.testing.assert_allclose(flat, np.broadcast_to((0.6 - np.array(OPENAI_MEAN)) / np.array(OPENAI_STD),
                                                     (1, 32, 32, 3)), atol=1e-5)


def test_preprocess_is_differentiable():
    x = jnp.linspace(-1, 1, 2 * 48 * 40 * 3).reshape(2, 48, 40, 3)
    g = jax.grad(lambda p: jnp.sum(clip_preprocess(p, 32) ** 2))(x)
    assert g.shape == x.shape and bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).sum()) > 0


def test_clear_errors(saved, tmp_path):
    path, config, _ = saved
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_clip(str(tmp_path / "nope"))
    (tmp_path / "config.json").write_text(open(f"{path}/config.json").read())
    with pytest.raises(FileNotFoundError, match="flax_model.msgpack"):
        load_clip(str(tmp_path))
    wrong = tiny_config()
    wrong.text_config.hidden_size = 48
    save_clip(str(tmp_path / "wrong"), wrong, init_params(wrong, jax.random.key(1)))
    (tmp_path / "wrong" / "config.json").write_text(open(f"{path}/config.json").read())
    with pytest.raises(ValueError, match="do not match its config.json"):
        load_clip(str(tmp_path / "wrong"))
    small_vocab = tiny_config()
    small_vocab.text_config.vocab_size = 1000
    save_clip(str(tmp_path / "small"), small_vocab, init_params(small_vocab, jax.random.key(1)))
    with pytest.raises(ValueError, match="vocab_size"):
        load_clip(str(tmp_path / "small"))
