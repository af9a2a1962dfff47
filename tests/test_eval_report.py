"""The evaluation pass (report.evaluate) with cheap stand-in networks: metric names that carry
their protocol, reference statistics in place of real images, what is skipped and why, and the
TensorBoard scalars. The real networks are covered by test_eval_inception, test_eval_vgg16 and
test_eval_clip_score."""

import json
import time

import numpy as np
import pytest

from gigagan_jax.eval import evaluate
from gigagan_jax.eval.fid import load_stats
from gigagan_jax.pixels import to_signed
from gigagan_jax.train.metrics import read_scalars

PROJECTION = np.random.default_rng(0).normal(size=(3 * 4 * 4, 24)).astype(np.float32)


def standin_inception(images):  # [B, 16, 16, 3] -> [B, 24]: 4x4 average pool + projection
    b = images.shape[0]
    pooled = np.asarray(images).reshape(b, 4, 4, 4, 4, 3).mean(axis=(2, 4))
    return pooled.reshape(b, -1) @ PROJECTION


class StandinClip:
    """Duck-typed `Clip`: image embedding = mean colour + 1, text embedding = (1, 1, 1). Keeps
    the texts it tokenized."""

    def __init__(self):
        self.texts = []

    def tokenize(self, texts):
        self.texts.extend(texts)
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
    clip = StandinClip()
    result = evaluate(batches(real, 16), prompt_batches(50, 8), lambda prompts: next(served)[:len(prompts)],
                      num_images=50, out_dir=str(tmp_path), inception=standin_inception, fid_resize="legacy",
                      clip=clip, score_clip=clip, step=1234)
    metrics = result.metrics
    assert metrics["fid_legacy"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["clip_fid"] == pytest.approx(0.0, abs=1e-6)
    assert (metrics["precision_inception"], metrics["recall_inception"]) == (1.0, 1.0)
    colours = as_signed[:50].mean(axis=(1, 2)) + 1.0  # [50, 3]
    cos = colours.sum(axis=1) / (np.linalg.norm(colours, axis=1) * np.sqrt(3))
    assert metrics["clip_score_train_clip"] == pytest.approx(100 * np.maximum(cos, 0).mean(), rel=1e-5)
    assert metrics["num_real"] == metrics["num_fake"] == 50
    assert clip.texts == [f"prompt {j}" for j in range(50)]  # no prefix asked for
    assert set(result.protocols) == set(metrics) - {"num_real", "num_fake"} and result.skipped == {}
    assert "pytorch-fid's resize" in result.protocols["fid_legacy"]
    assert "the published metric uses VGG16" in result.protocols["precision_inception"]

    report = json.load(open(tmp_path / "report.json"))
    assert report["step"] == 1234 and report["metrics"] == pytest.approx(metrics)
    assert report["protocols"] == result.protocols and report["skipped"] == {}
    scalars = read_scalars(str(tmp_path / "tensorboard"))
    for name in ("fid_legacy", "clip_fid", "precision_inception", "recall_inception", "clip_score_train_clip",
                 "sampling_images_per_s"):
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

    result = evaluate(batches(real, 8), labels, sample_fn, num_images=24, out_dir=str(tmp_path),
                      inception=standin_inception, fid_resize="legacy", clip=StandinClip())
    assert seen == [i % 4 for i in range(24)]
    metrics = result.metrics
    assert not any(name.startswith("clip_score") for name in metrics)
    assert metrics["clip_fid"] > 0 and metrics["fid_legacy"] > 0
    assert result.skipped == {"clip_score": "no CLIP to score prompts with"}


def test_a_shifted_generator_scores_worse_and_real_features_are_cached(tmp_path):
    real = dataset()
    cache = str(tmp_path / "real_features.npz")
    kwargs = dict(num_images=40, out_dir=str(tmp_path), inception=standin_inception, fid_resize="legacy",
                  real_cache=cache)
    shifted = lambda prompts: np.full((len(prompts), 16, 16, 3), 0.9, np.float32)  # noqa: E731
    first = evaluate(batches(real, 16), prompt_batches(40, 10), shifted, **kwargs).metrics
    assert first["fid_legacy"] > 1.0 and first["precision_inception"] == 0.0
    assert set(np.load(cache).files) == {"inception_legacy"}

    def no_real_data():
        raise AssertionError("real images were read although their features are cached")
        yield

    again = evaluate(no_real_data(), prompt_batches(40, 10), shifted, **kwargs).metrics
    assert again["fid_legacy"] == pytest.approx(first["fid_legacy"], rel=1e-9)


def test_throughput_leaves_out_the_first_call(tmp_path):
    calls = []

    def sampler(prompts):
        time.sleep(1.0 if not calls else 0.01)  # the first call "compiles"
        calls.append(len(prompts))
        return np.zeros((len(prompts), 16, 16, 3), np.float32) + 0.01 * len(calls)

    metrics = evaluate(batches(dataset(), 10), prompt_batches(40, 10), sampler, num_images=40,
                       out_dir=str(tmp_path), inception=standin_inception, fid_resize="legacy").metrics
    assert calls == [10, 10, 10, 10]
    assert metrics["sampling_images_per_s"] > 100  # 30 images in ~0.03 s, not 40 in ~1 s


def test_running_out_of_images_and_missing_networks_raise(tmp_path):
    with pytest.raises(ValueError, match="ran out after 20 of 40"):
        evaluate(batches(dataset(20), 10), [], None, num_images=40, out_dir=str(tmp_path),
                 inception=standin_inception, fid_resize="legacy")
    with pytest.raises(ValueError, match="returned 1 images for 10 prompts"):
        evaluate(batches(dataset(20), 10), prompt_batches(20, 10),
                 lambda prompts: np.zeros((1, 16, 16, 3), np.float32), num_images=20,
                 out_dir=str(tmp_path), inception=standin_inception, fid_resize="legacy")
    with pytest.raises(ValueError, match="needs the FID Inception, VGG16, a CLIP"):
        evaluate([], [], None, num_images=4, out_dir=str(tmp_path))
    with pytest.raises(ValueError, match="FID resize must be one of"):
        evaluate([], [], None, num_images=4, out_dir=str(tmp_path), inception=standin_inception, fid_resize="area")
    with pytest.raises(ValueError, match="Inception statistics|need the FID Inception"):
        evaluate([], [], None, num_images=4, out_dir=str(tmp_path), clip=StandinClip(),
                 save_ref_stats=str(tmp_path / "ref.npz"))


def replay(images):
    """A sampler that hands back `images`, in order, as [-1, 1] floats."""
    served = iter(to_signed(images))
    return lambda prompts: np.stack([next(served) for _ in prompts])


def shifted_generator(prompts):
    return np.full((len(prompts), 16, 16, 3), 0.5, np.float32)


class Counted:
    """Wraps a feature network, counting the images it sees."""

    def __init__(self, net):
        self.net, self.seen = net, 0

    def __call__(self, images):
        self.seen += len(images)
        return self.net(images)


def test_reference_statistics_stand_in_for_the_real_images(tmp_path):
    """Statistics saved from the real images give the FID those images give, bit for bit; without
    real images the metrics that need them are skipped with the reason, with them (--data) they
    are computed while FID still reads the statistics."""
    path = str(tmp_path / "ref.npz")
    kwargs = dict(num_images=40, inception=standin_inception, fid_resize="legacy")
    first = evaluate(batches(dataset(), 16), prompt_batches(40, 10), shifted_generator,
                     out_dir=str(tmp_path / "a"), save_ref_stats=path, **kwargs).metrics
    ref = load_stats(path, resize="legacy")
    assert (ref.count, ref.resize) == (40, "legacy")

    inception = Counted(standin_inception)
    result = evaluate(None, prompt_batches(40, 10), shifted_generator, out_dir=str(tmp_path / "b"),
                      ref_stats=ref, clip=StandinClip(), **{**kwargs, "inception": inception})
    assert result.metrics["fid_legacy"] == first["fid_legacy"]
    assert inception.seen == 40  # the generated images only
    assert "num_real" not in result.metrics
    assert set(result.skipped) == {"precision_inception", "recall_inception", "clip_fid", "clip_score"}
    assert result.skipped["clip_fid"].startswith("needs real images, and none were read")
    assert result.protocols["fid_legacy"].endswith("real side: reference statistics (40 images)")
    assert json.load(open(tmp_path / "b" / "report.json"))["skipped"] == result.skipped

    other_reals = batches(dataset(seed=5), 16)  # not the images the statistics came from
    both = evaluate(other_reals, prompt_batches(40, 10), shifted_generator, out_dir=str(tmp_path / "c"),
                    ref_stats=ref, **kwargs).metrics
    assert both["fid_legacy"] == first["fid_legacy"]
    assert both["precision_inception"] == 0.0 and both["num_real"] == 40


def test_vgg16_features_carry_precision_and_recall(tmp_path):
    """With VGG16 the k-NN metrics read its features (and are named so); the Inception then serves
    FID only, and with reference statistics it never sees a real image."""
    real = dataset()
    path = str(tmp_path / "ref.npz")
    evaluate(batches(real, 16), prompt_batches(40, 10), shifted_generator, num_images=40,
             out_dir=str(tmp_path / "a"), inception=standin_inception, fid_resize="legacy", save_ref_stats=path)
    inception = Counted(standin_inception)
    vgg16 = Counted(lambda images: np.asarray(images).reshape(len(images), -1)[:, ::7])  # [B, 110]
    result = evaluate(batches(real, 16), prompt_batches(40, 10), replay(real),
                      num_images=40, out_dir=str(tmp_path / "b"), inception=inception, fid_resize="legacy",
                      ref_stats=load_stats(path), vgg16=vgg16)
    assert (result.metrics["precision_vgg16"], result.metrics["recall_vgg16"]) == (1.0, 1.0)
    assert not any(name.endswith("_inception") for name in result.metrics)
    assert inception.seen == 40 and vgg16.seen == 80
    assert result.protocols["precision_vgg16"] == (
        "improved precision, k=3 nearest neighbours, on torchvision VGG16 fc2 (4096-d, after ReLU) of [0, 1] "
        "images resized to 224 x 224 (bilinear, antialiased) and normalised with ImageNet's mean/std")


def test_clean_fid_feeds_the_resized_images_to_the_network(tmp_path):
    class CleanStandin:
        def at_input_size(self, x):  # [B, 299, 299, 3] -> the 16 x 16 stand-in's features
            assert x.shape[1:] == (299, 299, 3)
            return standin_inception(np.asarray(x)[:, ::19, ::19][:, :16, :16])

    real = dataset()
    result = evaluate(batches(real, 16), prompt_batches(40, 10), replay(real),
                      num_images=40, out_dir=str(tmp_path), inception=CleanStandin())
    assert result.metrics["fid_clean"] == pytest.approx(0.0, abs=1e-6)
    assert "clean-fid's resize" in result.protocols["fid_clean"]


def test_the_score_clip_is_its_own_and_prefixes_the_prompts(tmp_path):
    class OtherClip(StandinClip):
        def encode_text(self, ids):
            return None, None, np.tile([1.0, 0.0, 0.0], (len(ids), 1)).astype(np.float32)

    real = dataset(24)
    fid_clip, score_clip = StandinClip(), OtherClip()
    result = evaluate(batches(real, 8), prompt_batches(24, 8), replay(real),
                      num_images=24, out_dir=str(tmp_path), clip=fid_clip, score_clip=score_clip,
                      score_clip_name="vit_b32", score_prompt_prefix="A photo depicts ")
    assert score_clip.texts == [f"A photo depicts prompt {j}" for j in range(24)] and fid_clip.texts == []
    colours = to_signed(real).mean(axis=(1, 2)) + 1.0  # [24, 3]: image embeddings
    expected = 100 * np.maximum(colours[:, 0] / np.linalg.norm(colours, axis=1), 0).mean()
    assert result.metrics["clip_score_vit_b32"] == pytest.approx(expected, rel=1e-5)
    assert result.metrics["clip_fid"] == pytest.approx(0.0, abs=1e-6)
    assert "prefixed with 'A photo depicts '" in result.protocols["clip_score_vit_b32"]


def test_end_to_end_with_the_real_networks(tmp_path):
    """FID Inception (random weights in pytorch-fid's layout, through the .npz loader, clean
    resize) and a tiny random CLIP: a generator that reproduces the data gets FID ~0 in both spaces."""
    from clip_fixtures import save_tiny_clip
    from test_eval_inception import torch_layout_state_dict

    from gigagan_jax.pretrained.clip import load_clip
    from gigagan_jax.pretrained.inception import load_inception

    np.savez(tmp_path / "inception.npz", **torch_layout_state_dict())
    save_tiny_clip(str(tmp_path / "clip"))

    real = dataset(24)
    served = iter(batches(real.astype(np.float32) / 127.5 - 1.0, 8))
    clip = load_clip(str(tmp_path / "clip"))
    metrics = evaluate(batches(real, 8), prompt_batches(24, 8), lambda p: next(served),
                       num_images=24, out_dir=str(tmp_path / "eval"),
                       inception=load_inception(str(tmp_path / "inception.npz")), clip=clip, score_clip=clip).metrics
    assert metrics["fid_clean"] == pytest.approx(0.0, abs=1e-3)
    assert metrics["clip_fid"] == pytest.approx(0.0, abs=1e-4)
    assert (metrics["precision_inception"], metrics["recall_inception"]) == (1.0, 1.0)
    assert 0.0 <= metrics["clip_score_train_clip"] <= 100.0
