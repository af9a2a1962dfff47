"""The procedural shapes set: deterministic per index, captions that parse back to the pixels."""

import numpy as np
import pytest

from gigagan_jax.data import shapes
from gigagan_jax.data.shapes import ShapesSource, parse_caption, render_shape


def test_example_depends_on_seed_and_index_only():
    a, b = ShapesSource(10, 32, seed=3), ShapesSource(500, 32, seed=3)
    for i in range(10):
        np.testing.assert_array_equal(a[i]["image"], b[i]["image"])
        assert a[i]["caption"] == b[i]["caption"]
    c = ShapesSource(10, 32, seed=4)
    assert any(a[i]["caption"] != c[i]["caption"] for i in range(10))


def test_captions_parse_to_attributes_and_labels():
    src = ShapesSource(300, 32)
    templates = set()
    for i in range(len(src)):
        example, attrs = src[i], src.attributes(i)
        assert parse_caption(example["caption"]) == attrs, example["caption"]
        assert example["label"] == shapes.label_of(attrs["colour"], attrs["shape"])
        templates.add(example["caption"].split()[0])
    assert len(templates) >= 4  # captions vary in form
    seen = {tuple(src.attributes(i)[k] for k in ("colour", "shape")) for i in range(len(src))}
    assert len(seen) > 0.8 * shapes.NUM_CLASSES


@pytest.mark.parametrize("shape", shapes.SHAPES)
def test_pixels_show_colour_at_position_on_background(shape):
    image = render_shape("red", shape, "top left", "white", 64)  # [64, 64, 3]
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    red = np.all(image == shapes.COLOURS["red"], axis=-1)  # [64, 64]
    white = np.all(image == shapes.BACKGROUNDS["white"], axis=-1)
    assert np.all(red | white)
    ys, xs = np.nonzero(red)
    assert 40 < red.sum() < 0.25 * 64 * 64
    assert abs(xs.mean() / 64 - 0.28) < 0.06 and abs(ys.mean() / 64 - 0.28) < 0.06


def test_shapes_are_distinguishable():
    masks = [np.all(render_shape("blue", s, "center", "black", 32) == shapes.COLOURS["blue"], -1)
             for s in shapes.SHAPES]
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            assert (masks[i] != masks[j]).sum() >= 10, (shapes.SHAPES[i], shapes.SHAPES[j])


def test_unknown_attribute_is_an_error():
    with pytest.raises(ValueError, match="magenta"):
        render_shape("magenta", "circle", "center", "black", 16)
    with pytest.raises(ValueError, match="num_examples"):
        ShapesSource(0, 16)


def test_shape_scale_grows_the_shapes_and_keeps_everything_else():
    small, large = ShapesSource(64, 32), ShapesSource(64, 32, size_scale=1.5)
    assert [small[i]["caption"] for i in range(64)] == [large[i]["caption"] for i in range(64)]
    area = lambda src: np.mean([np.any(src[i]["image"] != src[i]["image"][0, 0], -1).sum() for i in range(64)])
    assert 1.5**2 * 0.8 < area(large) / area(small) < 1.5**2 * 1.2  # area ~ scale^2 (borders clip a little)
    with pytest.raises(ValueError, match="shape_scale"):
        ShapesSource(4, 32, size_scale=2.0)


def test_shape_positions_restrict_placement_and_allow_larger_shapes():
    full, named = ShapesSource(200, 32), ShapesSource(200, 32, positions=tuple(shapes.POSITIONS))
    for i in range(200):  # () means every position: naming them all gives the very same examples
        assert named[i]["caption"] == full[i]["caption"]
    centre = ShapesSource(200, 32, positions=("center",))
    assert {centre.attributes(i)["position"] for i in range(200)} == {"center"}
    corners = ShapesSource(200, 32, positions=("top left", "bottom right"))
    assert {corners.attributes(i)["position"] for i in range(200)} == {"top left", "bottom right"}
    assert shapes.max_size_scale(("center",)) > 2.5 > shapes.max_size_scale()
    big = ShapesSource(8, 32, size_scale=2.5, positions=("center",))  # too large for the corners
    assert np.any(big[0]["image"] != big[0]["image"][0, 0], -1).sum() > 0.25 * 32 * 32
    with pytest.raises(ValueError, match="shape_scale"):
        ShapesSource(8, 32, size_scale=2.5)
    with pytest.raises(ValueError, match="shape_positions"):
        ShapesSource(8, 32, positions=("middle",))
