"""CLIP score: the definition on hand-made embeddings, and the batched helper on a tiny random
CLIP saved and loaded the way test_clip.py does."""

import numpy as np
import pytest

from gigagan_jax.eval.clip_score import (
    PAPER_PROMPT_PREFIX,
    ClipScoreAccumulator,
    clip_model_name,
    clip_score,
    clip_score_of_batches,
    clip_scores,
)
from gigagan_jax.pretrained.clip import load_clip, openai_config

from clip_fixtures import save_tiny_clip, tiny_clip_config


def test_definition_on_known_angles():
    image = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    text = np.array([[5.0, 0.0], [1.0, 1.0], [0.0, -1.0], [0.0, 7.0]])
    # cos: 1 (same direction, any length), 1/sqrt(2), -1 (clipped to 0), 0
    np.testing.assert_allclose(clip_scores(image, text), [100.0, 100 / np.sqrt(2), 0.0, 0.0],
                               rtol=1e-6)
    assert clip_score(image, text) == pytest.approx((100 + 100 / np.sqrt(2)) / 4, rel=1e-6)


def test_unpaired_shapes_raise():
    with pytest.raises(ValueError, match="row by row"):
        clip_scores(np.ones((3, 4)), np.ones((2, 4)))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return load_clip(save_tiny_clip(str(tmp_path_factory.mktemp("clip") / "tiny")))


PROMPTS = ["a red square", "a blue circle", "a green triangle", "two cats", "a yellow star"]


def test_batched_score_equals_the_score_of_all_embeddings(clip):
    images = np.random.default_rng(0).uniform(-1, 1, size=(5, 48, 48, 3)).astype(np.float32)
    image_embeds = np.asarray(clip.encode_image(images)[0])  # [5, 16]
    text_embeds = np.asarray(clip.encode_text(clip.tokenize(PROMPTS))[2])  # [5, 16]
    expected = clip_score(image_embeds, text_embeds)
    assert 0.0 < expected < 100.0

    batches = [(images[:2], PROMPTS[:2]), (images[2:], PROMPTS[2:])]
    assert clip_score_of_batches(clip, batches) == pytest.approx(expected, rel=1e-5)

    acc = ClipScoreAccumulator(clip)
    embeds = acc.update(images[:3], PROMPTS[:3])
    np.testing.assert_allclose(embeds, image_embeds[:3], rtol=1e-5, atol=1e-6)
    assert acc.count == 3


def test_prompts_must_pair_with_images(clip):
    with pytest.raises(ValueError, match="3 images but 2 prompts"):
        ClipScoreAccumulator(clip).update(np.zeros((3, 32, 32, 3), np.float32), PROMPTS[:2])
    with pytest.raises(ValueError, match="no images"):
        ClipScoreAccumulator(clip).result()


def test_the_prefix_goes_before_every_prompt(clip):
    scored = ClipScoreAccumulator(clip, PAPER_PROMPT_PREFIX).text_embeds(PROMPTS[:2])
    direct = np.asarray(clip.encode_text(clip.tokenize(["A photo depicts a red square",
                                                        "A photo depicts a blue circle"]))[2])
    np.testing.assert_array_equal(scored, direct)
    assert not np.allclose(scored, ClipScoreAccumulator(clip).text_embeds(PROMPTS[:2]))


def test_metric_names_say_which_clip_scored():
    assert clip_model_name(openai_config("clip-vit-base-patch32")) == "vit_b32"
    assert clip_model_name(openai_config("clip-vit-large-patch14")) == "vit_l14"
    assert clip_model_name(tiny_clip_config()) == "vit_w32_d2_p8"
