"""The evaluation pass (report.evaluate) with cheap stand-in networks, and the TensorBoard
scalars it writes. The real networks are covered by test_eval_inception / test_eval_clip_score."""

import json
import time

import numpy as np
import pytest

from gigagan_jax.eval import evaluate
from gigagan_jax.train.metrics import read_scalars

PROJECTION = np.random.default_rng(0).normal(size=(3 * 4 * 4, 24)).astype(np.float32)


def standin_inception(images):  # [B, 16, 16, 3] -> [B, 24]: 4x4 average pool + projection
    b = images.shape[0]
    pooled = np.asarray(images).reshape(b, 4, 4, 4, 4, 3).mean(axis=(2, 4))
    return pooled.reshape(b, -1) @ PROJECTION


class StandinClip:
    """Duck-typed `Clip`: image embedding = mean colour + 1, text embedding = (1, 1, 1)."""

    def tokenize(self, texts):
        return np.zeros((len(texts), 77), np.int32)

    def encode_text(self, ids):
        return None, None, np.ones((len(ids), 3), np.float32)

    def encode_image(self, images):
        return np.asarray(images).mean(axis=(1, 2)) + 1.0, []


def dataset(n=60, seed=1):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 16, 16, 3), dtype=np.uint8)


def batches(x, size):
    return [x[i:i + size] for i in range(0, len(x), size)]


def prompt_batches(n, size):
    return [[f"prompt {j}" for j in range(i, min(i + size, n))] for i in range(0, n, size)]


def test_generator_that_reproduces_the_data_scores_perfectly(tmp_path):
    real = dataset()
    as_signed = real.astype(np.float32) / 127.5 - 1.0
    served = iter(batches(as_signed, 8))  # the sampler hands back the real images, in order
    metrics = evaluate(batches(real, 16), prompt_batches(50, 8), lambda prompts: next(served)[:len(prompts)],
                       num_images=50, out_dir=str(tmp_path), inception=standin_inception,
                       clip=StandinClip(), step=1234)
    assert metrics["fid"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["clip_fid"] == pytest.approx(0.0, abs=1e-6)
    assert (metrics["precision"], metrics["recall"]) == (1.0, 1.0)
    colours = as_signed[:50].mean(axis=(1, 2)) + 1.0  # [50, 3]
    cos = colours.sum(axis=1) / (np.linalg.norm(colours, axis=1) * np.sqrt(3))
    assert metrics["clip_score"] == pytest.approx(100 * np.maximum(cos, 0).mean(), rel=1e-5)
    assert metrics["num_real"] == metrics["num_fake"] == 50

    report = json.load(open(tmp_path / "report.json"))
    assert report["step"] == 1234 and report["metrics"] == pytest.approx(metrics)
    scalars = read_scalars(str(tmp_path / "tensorboard"))
    for name in ("fid", "clip_fid", "precision", "recall", "clip_score", "sampling_images_per_s"):
        ((step, value),) = scalars[f"eval/{name}"]
        assert step == 1234 and value == pytest.approx(metrics[name], rel=1e-6, abs=1e-6)


def test_class_conditional_evaluation_has_no_clip_score(tmp_path):
    """Conditions are class ids: the sampler receives them, CLIP-FID is computed, CLIP score is not."""
    real = dataset(24)
    palette = np.linspace(-1, 1, 4)[:, None, None, None] * np.ones((1, 16, 16, 3), np.float32)
    labels = [[i % 4 for i in range(j, j + 8)] for j in range(0, 24, 8)]
    seen = []

    def sample_fn(classes):
        seen.extend(classes)
        return palette[np.asarray(classes)]  # one flat image per class

    metrics = evaluate(batches(real, 8), labels, sample_fn, num_images=24, out_dir=str(tmp_path),
                       inception=standin_inception, clip=StandinClip(), with_clip_score=False)
    assert seen == [i % 4 for i in range(24)]
    assert "clip_score" not in metrics and metrics["clip_fid"] > 0 and metrics["fid"] > 0


def test_a_shifted_generator_scores_worse_and_real_features_are_cached(tmp_path):
    real = dataset()
    cache = str(tmp_path / "real_features.npz")
    kwargs = dict(num_images=40, out_dir=str(tmp_path), inception=standin_inception,
                  real_cache=cache)
    shifted = lambda prompts: np.full((len(prompts), 16, 16, 3), 0.9, np.float32)  # noqa: E731
    first = evaluate(batches(real, 16), prompt_batches(40, 10), shifted, **kwargs)
    assert first["fid"] > 1.0 and first["precision"] == 0.0
    assert set(np.load(cache).files) == {"inception"}

    def no_real_data():
        raise AssertionError("real images were read although their features are cached")
        yield

    again = evaluate(no_real_data(), prompt_batches(40, 10), shifted, **kwargs)
    assert again["fid"] == pytest.approx(first["fid"], rel=1e-9)


def test_throughput_leaves_out_the_first_call(tmp_path):
    calls = []

    def sampler(prompts):
        time.sleep(1.0 if not calls else 0.01)  # the first call "compiles"
        calls.append(len(prompts))
        return np.zeros((len(prompts), 16, 16, 3), np.float32) + 0.01 * len(calls)

    metrics = evaluate(batches(dataset(), 10), prompt_batches(40, 10), sampler, num_images=40,
                       out_dir=str(tmp_path), inception=standin_inception)
    assert calls == [10, 10, 10, 10]
    assert metrics["sampling_images_per_s"] > 100  # 30 images in ~0.03 s, not 40 in ~1 s


def test_running_out_of_images_and_missing_networks_raise(tmp_path):
    with pytest.raises(ValueError, match="ran out after 20 of 40"):
        evaluate(batches(dataset(20), 10), [], None, num_images=40, out_dir=str(tmp_path),
                 inception=standin_inception)
    with pytest.raises(ValueError, match="returned 1 images for 10 prompts"):
        evaluate(batches(dataset(20), 10), prompt_batches(20, 10),
                 lambda prompts: np.zeros((1, 16, 16, 3), np.float32), num_images=20,
                 out_dir=str(tmp_path), inception=standin_inception)
    with pytest.raises(ValueError, match="needs the FID Inception"):
        evaluate([], [], None, num_images=4, out_dir=str(tmp_path))


def test_end_to_end_with_the_real_networks(tmp_path):
    """FID Inception (random weights in pytorch-fid's layout, through the .npz loader) and a
    tiny random CLIP: a generator that reproduces the data gets FID ~0 in both spaces."""
    from clip_fixtures import save_tiny_clip
    from test_eval_inception import torch_layout_state_dict

    from gigagan_jax.pretrained.clip import load_clip
    from gigagan_jax.pretrained.inception import load_inception

    np.savez(tmp_path / "inception.npz", **torch_layout_state_dict())
    save_tiny_clip(str(tmp_path / "clip"))

    real = dataset(24)
    served = iter(batches(real.astype(np.float32) / 127.5 - 1.0, 8))
    metrics = evaluate(batches(real, 8), prompt_batches(24, 8), lambda p: next(served),
                       num_images=24, out_dir=str(tmp_path / "eval"),
                       inception=load_inception(str(tmp_path / "inception.npz")),
                       clip=load_clip(str(tmp_path / "clip")))
    assert metrics["fid"] == pytest.approx(0.0, abs=1e-3)
    assert metrics["clip_fid"] == pytest.approx(0.0, abs=1e-4)
    assert (metrics["precision"], metrics["recall"]) == (1.0, 1.0)
    assert 0.0 <= metrics["clip_score"] <= 100.0
