"""The conditioning checker on a caption folder: labels from captions, prompts unseen in training,
and scores that tell a generator drawing the prompt from one that does not."""

import numpy as np
import pytest

from acceptance import demo_conditioning as checker
from gigagan_jax.config import default_config
from gigagan_jax.data.shapes import (COLOURS, SHAPES, ShapesSource, make_caption, parse_caption, render_batch,
                                     write_caption_folder)
from gigagan_jax.train.small_clip import load_pairs

RESOLUTION = 16


def test_caption_labels_read_each_attribute_and_mark_what_is_missing():
    captions = [make_caption("orange", "ring", "top left", "gray", template=2),
                make_caption("red", "cross", "center", "black", template=5),
                "a photo of a dog"]
    labels = checker.caption_labels(captions)
    assert labels.tolist() == [[5, 4, 1], [0, 5, 0], [-1, -1, -1]]


def test_swapped_prompts_name_the_pair_in_the_datas_wording_and_are_unseen():
    source = ShapesSource(3000, RESOLUTION, seed=0, size_scale=1.5)
    captions = source.get_batch(np.arange(len(source)))["caption"]
    labels = checker.caption_labels(captions)
    prompts, wanted, unseen = checker.held_out_prompts(captions, labels, seed=0)
    assert len(prompts) == len(COLOURS) * len(SHAPES)
    for prompt, (c, s, q) in zip(prompts, wanted):
        found = parse_caption(prompt)
        assert (found["colour"], found["shape"]) == (list(COLOURS)[c], SHAPES[s])
        assert found["position"] == checker.ATTRIBUTES["position"][q]
        assert " a orange" not in prompt and not prompt.startswith("a orange")
    assert wanted[:, 2].min() >= 0  # five positions in use: position is scored
    assert unseen.all() and not set(prompts) & set(captions)


def test_one_position_is_not_scored():
    source = ShapesSource(500, RESOLUTION, seed=0, size_scale=2.0, positions=("center",))
    captions = source.get_batch(np.arange(len(source)))["caption"]
    _, wanted, _ = checker.held_out_prompts(captions, checker.caption_labels(captions))
    assert (wanted[:, 2] == -1).all()


def test_too_few_labelled_captions_is_a_clear_error():
    images = np.zeros((100, RESOLUTION, RESOLUTION, 3), np.uint8)
    labels = np.full((100, 3), -1)
    with pytest.raises(ValueError, match="name both a colour"):
        checker.train_classifier(images, labels)


def _render_prompts(prompts, n, wrong_shape=False):
    """uint8 [len(prompts) * n, R, R, 3]: each prompt drawn exactly (or with the next shape)."""
    found = [parse_caption(p) for p in prompts]
    pick = lambda key, vocab: np.repeat([list(vocab).index(f[key]) for f in found], n)  # noqa: E731
    colour, position = pick("colour", COLOURS), pick("position", checker.ATTRIBUTES["position"])
    shape = (pick("shape", SHAPES) + int(wrong_shape)) % len(SHAPES)
    rng = np.random.default_rng(3)
    return render_batch(colour, shape, position, rng.integers(0, 4, len(shape)),
                        1.5 * rng.uniform(0.8, 1.1, len(shape)), 0.08 * (rng.random((len(shape), 2)) - 0.5),
                        RESOLUTION)


def test_checker_on_a_caption_folder_scores_a_faithful_generator_high_and_a_wrong_shape_low(tmp_path):
    source = ShapesSource(5000, RESOLUTION, seed=0, size_scale=1.5)
    write_caption_folder(source, str(tmp_path / "raw"))
    config = default_config()
    config.model.resolution = RESOLUTION
    config.data.update(kind="folder", path=str(tmp_path / "raw"))
    config.data.cache_dir = str(tmp_path / "cache")
    images, captions = load_pairs(config)  # the folder path, as the checker reads it
    assert images.shape == (5000, RESOLUTION, RESOLUTION, 3) and len(captions) == 5000
    labels = checker.caption_labels(captions)
    predict, ceiling = checker.train_classifier(images, labels, steps=300, held_out=1000)
    assert min(ceiling.values()) > 0.9, ceiling
    prompts, wanted, _ = checker.held_out_prompts(captions, labels)

    faithful, _ = checker.score(predict, _render_prompts, prompts, wanted, n=4)
    assert faithful["images"] == 4 * len(prompts)
    for key in ("colour_accuracy", "shape_accuracy", "position_accuracy"):
        assert faithful[key] > 0.85, (key, faithful)
    wrong, _ = checker.score(predict, lambda p, n: _render_prompts(p, n, wrong_shape=True), prompts, wanted, n=4)
    assert wrong["shape_accuracy"] < 0.15 and wrong["colour_accuracy"] > 0.85, wrong
    assert wrong["shape_read_as"]["circle"]["square"] > 0.8 * 4 * len(COLOURS)
