"""Prompt mixing (editing.prompt_mix_images) and data-parallel sampling on a random tiny generator
and a random tiny CLIP."""

import dataclasses
import functools

import jax
import numpy as np
import pytest
from flax.core import meta
from jax.sharding import NamedSharding, PartitionSpec

from gigagan_jax.config import load_config
from gigagan_jax.generate.edit import interpolation_frames, prompt_mix_images, style_mix_images
from gigagan_jax.generate.restore import TrainedGenerator
from gigagan_jax.generate.sample import sample_pairs, sampling_mesh
from gigagan_jax.pretrained.clip import load_clip
from gigagan_jax.models.build import build_generator
from gigagan_jax.models.generator import Generator, init_generator

RED, BLUE = "a red circle in the center", "a blue square in the top left"


@pytest.fixture(scope="module")
def trained(tiny_clip):
    config = load_config("configs/tiny.py")
    generator = build_generator(config)
    params = meta.unbox(jax.jit(functools.partial(init_generator, generator))(jax.random.PRNGKey(0)))["params"]
    return TrainedGenerator(config, generator, params, load_clip(tiny_clip, text_only=True), step=0)


def _diff(a, b) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def test_same_prompt_reproduces_the_plain_sample(trained):
    plain = sample_pairs(trained, [RED], [5])[0]
    for crossover in (0, 1, 2, 3):
        images = prompt_mix_images(trained, RED, RED, seed=5, crossover=crossover)
        assert images.shape == (3, 16, 16, 3) and images.dtype == np.uint8
        for image in images:
            np.testing.assert_array_equal(image, plain)


def test_crossover_ends_are_the_pure_prompts_and_the_middle_is_neither(trained):
    levels = len(trained.generator.spec.levels)
    pure_red, pure_blue = sample_pairs(trained, [RED, BLUE], [5, 5])
    assert _diff(pure_red, pure_blue) > 20.0  # mean |uint8 difference|: 48
    first = prompt_mix_images(trained, RED, BLUE, seed=5, crossover=0)
    np.testing.assert_array_equal(first[0], pure_red)
    np.testing.assert_array_equal(first[1], pure_blue)
    np.testing.assert_array_equal(first[2], pure_blue)
    np.testing.assert_array_equal(prompt_mix_images(trained, RED, BLUE, 5, levels)[2], pure_red)
    for crossover in (1, 2):
        mixed = prompt_mix_images(trained, RED, BLUE, 5, crossover)[2]
        # crossover 1: 23 from red, 35 from blue; crossover 2: 11 and 43
        assert _diff(mixed, pure_red) > 5.0 and _diff(mixed, pure_blue) > 5.0, crossover


def test_bad_crossover_is_a_clear_error(trained):
    for crossover in (-1, 4):
        with pytest.raises(ValueError, match=rf"crossover must be a level in \[0, 3\], got {crossover}"):
            prompt_mix_images(trained, RED, BLUE, 0, crossover)


def test_sampling_split_over_a_mesh_gives_the_one_device_images(trained):
    """sample.py / eval place G_ema on every device and split each batch (padded to a multiple of
    the device count): the images must not depend on that, nor on where a batch boundary falls.
    XLA may pick a different kernel for another batch shape, so a pixel may round to the next
    uint8 level (seen: 1 of 3840 on one CPU); a wrong seed or row order moves nearly all of them."""
    prompts, seeds = [RED, BLUE, RED, BLUE, RED], [0, 1, 2, 3, 4]
    one = sample_pairs(trained, prompts, seeds, batch_size=64)
    mesh = sampling_mesh()
    assert mesh.size == 8  # conftest's simulated devices
    replicated = jax.device_put(trained.params, NamedSharding(mesh, PartitionSpec()))
    spread = dataclasses.replace(trained, params=replicated, mesh=mesh)
    for batch_size in (64, 3):  # one padded batch of 8; batches of 3 (+5 padding rows) and 2 (+6)
        many = sample_pairs(spread, prompts, seeds, batch_size=batch_size)
        assert many.shape == one.shape == (5, 16, 16, 3)
        diff = np.abs(many.astype(np.int16) - one.astype(np.int16))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.005, (diff.max(), (diff > 0).mean())


def _with_noise(trained, strength: float = 1.0):
    """`trained` with every layer's noise_strength set (a fresh init has 0: no mode would differ)."""
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: np.float32(strength) if "noise_strength" in jax.tree_util.keystr(path) else x, trained.params)
    return dataclasses.replace(trained, params=params)


def test_noise_modes_of_sampling(trained):
    """const (sampling's default): the trained noise on one fixed map, an image a function of its
    seed wherever it sits in a batch; random (the metrics' default): noise as in training, from
    each batch's first seed; none: no noise."""
    noisy = _with_noise(trained)
    prompts, seeds = [RED, BLUE, RED], [7, 8, 9]
    const = sample_pairs(noisy, prompts, seeds)
    np.testing.assert_array_equal(const, sample_pairs(noisy, prompts, seeds, noise_mode="const"))
    np.testing.assert_array_equal(const[2], sample_pairs(noisy, [RED], [9])[0])  # alone, same image
    none = sample_pairs(noisy, prompts, seeds, noise_mode="none")
    np.testing.assert_array_equal(none, sample_pairs(trained, prompts, seeds))  # strength 0 == no noise
    random = sample_pairs(noisy, prompts, seeds, noise_mode="random")
    np.testing.assert_array_equal(random, sample_pairs(noisy, prompts, seeds, noise_mode="random"))
    other = sample_pairs(noisy, prompts, [17, 8, 9], noise_mode="random")  # another first seed
    for a, b in ((const, none), (random, const), (random, none), (random[1:], other[1:])):
        assert _diff(a, b) > 1.0


def test_edits_run_the_generator_inside_executables(trained, monkeypatch):
    """Every edit applies the text path, mapping and synthesis while tracing, never op by op:
    applied eagerly, one prompt mix compiled ~360 small programs (14 s cold against 5 s here)."""
    calls = []
    for name in ("encode_text", "mapping", "synthesis"):
        original = getattr(Generator, name)

        def recording(module, *args, _original=original, _name=name, **kwargs):
            calls.append((_name, isinstance(args[0], jax.core.Tracer)))
            return _original(module, *args, **kwargs)

        monkeypatch.setattr(Generator, name, recording)
    jax.clear_caches()  # every edit traces anew, whatever ran before it in this process (hence last here)
    prompt_mix_images(trained, RED, BLUE, seed=7, crossover=1)
    style_mix_images(trained, RED, 7, 8, crossover=1)
    interpolation_frames(trained, RED, BLUE, 7, 8, frames=3)
    assert calls and all(traced for _, traced in calls), calls  # a call with concrete inputs ran op by op
