"""CLIP contrastive loss (eq. 9): its value, and gradients that reach the generated pixels
but never the frozen CLIP."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gigagan_jax.losses.clip_loss import clip_contrastive_loss, clip_logits
from gigagan_jax.pretrained.clip import Clip, init_params

from clip_fixtures import tiny_clip_config


def test_matches_the_equation():
    rng = np.random.default_rng(0)
    img, txt = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    scale = np.log(30.0)
    img_n = img / np.linalg.norm(img, axis=1, keepdims=True)
    txt_n = txt / np.linalg.norm(txt, axis=1, keepdims=True)
    logits = 30.0 * img_n @ txt_n.T
    want = np.mean([-logits[n, n] + np.log(np.exp(logits[n]).sum()) for n in range(5)])
    np.testing.assert_allclose(clip_contrastive_loss(img, txt, scale), want, rtol=1e-5)
    np.testing.assert_allclose(clip_logits(img, txt, scale), logits, rtol=1e-5)


def test_matched_pairs_beat_shuffled_pairs():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(8, 16)).astype(np.float32)
    matched = clip_contrastive_loss(emb, emb, jnp.log(100.0))
    shuffled = clip_contrastive_loss(emb, emb[::-1], jnp.log(100.0))
    assert float(matched) < 1e-3 and float(shuffled) > np.log(8)
    # The direction is image -> captions: embedding scale does not matter, only the angle.
    np.testing.assert_allclose(clip_contrastive_loss(3 * emb, emb, 2.0),
                               clip_contrastive_loss(emb, emb, 2.0), rtol=1e-6)


@pytest.fixture(scope="module")
def tiny_clip():
    config = tiny_clip_config()
    return Clip(config, init_params(config, jax.random.key(0)))


def test_gradient_reaches_pixels_not_clip(tiny_clip):
    clip = tiny_clip
    ids = clip.tokenize(["a red square", "a blue circle", "a green star", ""])

    @jax.jit
    def loss(pixels, params):  # [4, 48, 48, 3] generated images, any size
        image, _ = clip.encode_image(pixels, params=params)
        _, _, text = clip.encode_text(ids, params=params)
        return clip_contrastive_loss(image, text, params["logit_scale"])

    pixels = jax.random.uniform(jax.random.key(1), (4, 48, 48, 3), minval=-1, maxval=1)
    value, (g_pixels, g_params) = jax.value_and_grad(loss, argnums=(0, 1))(pixels, clip.params)
    assert np.isfinite(float(value))
    assert g_pixels.shape == pixels.shape and bool(jnp.all(jnp.isfinite(g_pixels)))
    assert float(jnp.abs(g_pixels).max()) > 1e-6
    leaves = jax.tree_util.tree_leaves(g_params)
    assert len(leaves) > 20 and all(float(jnp.abs(g).max()) == 0.0 for g in leaves)
    # A small step against the gradient lowers the loss: the signal is usable by G.
    assert float(loss(pixels - 1e-2 * g_pixels / jnp.abs(g_pixels).max(), clip.params)) < float(value)


def test_a_repeated_caption_is_not_a_negative():
    rng = np.random.default_rng(2)
    img, txt = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    txt[3] = txt[1]  # rows 1 and 3 carry the same caption
    same = np.all(txt[:, None] == txt[None, :], axis=-1)
    logits = np.asarray(clip_logits(img, txt, 2.0))
    want = []
    for n in range(5):
        keep = [m for m in range(5) if m == n or not same[n, m]]
        want.append(-logits[n, n] + np.log(np.exp(logits[n, keep]).sum()))
    masked = clip_contrastive_loss(img, txt, 2.0, jnp.asarray(same))
    np.testing.assert_allclose(masked, np.mean(want), rtol=1e-5)
    assert float(clip_contrastive_loss(img, txt, 2.0)) > float(masked)  # unmasked: an extra "negative"


def test_g_steps_clip_loss_is_zero_when_every_caption_is_the_same(tiny_clip):
    """Eight rows of one caption: each image has its caption and no negative, whatever it looks
    like (unmasked, it would be log 8: seven copies of the right caption counted as wrong)."""
    from small_models import RESOLUTION, at_8px

    from gigagan_jax.config import load_config
    from gigagan_jax.models.build import build_discriminator, build_generator
    from gigagan_jax.train.step import GanSteps

    config = at_8px(load_config("configs/tiny.py"))
    steps = GanSteps(config, build_generator(config), build_discriminator(config), clip=tiny_clip)
    state = jax.jit(steps.init_state)(jax.random.PRNGKey(0))
    b = 8
    _, _, text_embeds = tiny_clip.encode_text(tiny_clip.tokenize(["a red square"] * b))
    batch = {"image": jnp.zeros((b, RESOLUTION, RESOLUTION, 3), jnp.uint8),
             "text_features": jnp.broadcast_to(jax.random.normal(jax.random.PRNGKey(2), (1, 77, 32)), (b, 77, 32)),
             "eot_index": jnp.full((b,), 4, jnp.int32), "text_embeds": text_embeds}
    _, metrics = jax.jit(lambda s, p: steps.g_loss(s.g_params, batch, jax.random.PRNGKey(3), d_params=s.d_params,
                                                   clip_params=p))(state, tiny_clip.params)
    assert abs(float(metrics["g/clip"])) < 1e-6

    # A caption bank: asked for but not given is an error; copies of the batch's caption leave the
    # loss at 0 (no negative), other captions become negatives.
    config.loss.clip_negatives = 4
    steps = GanSteps(config, build_generator(config), build_discriminator(config), clip=tiny_clip)
    with pytest.raises(ValueError, match=r"clip_negatives=4 asks for a caption bank"):
        steps.g_loss(state.g_params, batch, jax.random.PRNGKey(3), d_params=state.d_params,
                     clip_params=tiny_clip.params)
    with_bank = jax.jit(lambda s, p, bank: steps.g_loss(s.g_params, batch, jax.random.PRNGKey(3), d_params=s.d_params,
                                                        clip_params=p, caption_bank=bank)[1]["g/clip"])
    assert abs(float(with_bank(state, tiny_clip.params, text_embeds[:4]))) < 1e-6
    others = tiny_clip.encode_text(tiny_clip.tokenize(["a blue circle", "a green ring", "a cross", "a pink diamond"]))[2]
    assert float(with_bank(state, tiny_clip.params, others)) > 0.1


def test_bank_captions_are_negatives_unless_they_read_as_the_caption():
    rng = np.random.default_rng(3)
    img, txt, bank = rng.normal(size=(3, 8)), rng.normal(size=(3, 8)), rng.normal(size=(4, 8))
    bank[0] = 2 * txt[1] + 0.01 * bank[0]  # a paraphrase of caption 1 (cosine > 0.99)
    candidates = np.concatenate([txt, bank])
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    cosine = unit(txt) @ unit(candidates).T  # [3, 7]
    logits = np.asarray(clip_logits(img, candidates, 2.0))
    want = []
    for n in range(3):
        keep = [m for m in range(7) if m == n or cosine[n, m] < 0.99]
        want.append(-logits[n, n] + np.log(np.exp(logits[n, keep]).sum()))
    assert len([m for m in range(7) if cosine[1, m] >= 0.99]) == 2  # row 1 drops the paraphrase
    got = clip_contrastive_loss(img, txt, 2.0, bank=bank, same_cosine=0.99)
    np.testing.assert_allclose(got, np.mean(want), rtol=1e-5)
    assert float(got) > float(clip_contrastive_loss(img, txt, 2.0))  # more negatives, a higher loss


def test_the_bank_is_drawn_from_the_data_the_same_way_every_time():
    from gigagan_jax.data.shapes import ShapesSource
    from gigagan_jax.train.caption_bank import draw_captions

    source = ShapesSource(50, 16, seed=0)
    captions = {source[i]["caption"] for i in range(50)}
    first = draw_captions(source, 20, seed=7)
    assert first == draw_captions(source, 20, seed=7) and first != draw_captions(source, 20, seed=8)
    assert len(set(first)) == 20 and set(first) <= captions  # without replacement while the data allows
    assert len(draw_captions(source, 80, seed=7)) == 80
    with pytest.raises(ValueError, match="data source is empty"):
        draw_captions([], 4, seed=0)
