"""The loader reproduces PyTorch CLIP: a tiny random `transformers.CLIPModel`, saved the way
`save_pretrained` saves it (safetensors and .bin), loaded through `load_clip`, gives the same
text tokens, pooled embeddings and image features as PyTorch to 1e-4."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from gigagan_jax.pretrained.clip import clip_preprocess, load_clip  # noqa: E402

PROMPTS = ["a photo of a cat", "", "Two red circles &amp; a BLUE square, top-left!!",
           "a " * 90]


def tiny_torch_clip():
    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=4, max_position_embeddings=77),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                           num_attention_heads=4, image_size=32, patch_size=8),
        projection_dim=24, logit_scale_init_value=2.5)
    model = transformers.CLIPModel(config).eval()
    with torch.no_grad():  # random init leaves LayerNorms at identity and biases at 0
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = tiny_torch_clip()
    root = tmp_path_factory.mktemp("tiny_clip")
    model.save_pretrained(root / "safetensors", safe_serialization=True)
    model.save_pretrained(root / "bin", safe_serialization=False)
    model.save_pretrained(root / "sharded", safe_serialization=True, max_shard_size="1MB")
    assert (root / "safetensors" / "model.safetensors").exists()
    assert (root / "bin" / "pytorch_model.bin").exists()
    assert (root / "sharded" / "model.safetensors.index.json").exists()
    return model, root


@pytest.fixture(scope="module")
def torch_outputs(saved):
    model, _ = saved
    clip = load_clip(str(saved[1] / "safetensors"))
    ids = clip.tokenize(PROMPTS)  # [4, 77]
    rng = np.random.default_rng(0)
    pixels = rng.uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)  # native size: no resize
    normalised = np.asarray(clip_preprocess(pixels, 32))  # [3, 32, 32, 3]
    with torch.no_grad():
        t_ids = torch.from_numpy(ids.astype(np.int64))
        text = model.text_model(input_ids=t_ids, output_hidden_states=True)
        text_proj = model.text_projection(text.pooler_output)
        vision = model.vision_model(pixel_values=torch.from_numpy(normalised.transpose(0, 3, 1, 2).copy()),
                                    output_hidden_states=True)
        image_proj = model.visual_projection(vision.pooler_output)
    return dict(ids=ids, pixels=pixels, tokens=text.hidden_states[-2].numpy(), text_proj=text_proj.numpy(),
                image_proj=image_proj.numpy(), features=[h.numpy() for h in vision.hidden_states[1:]],
                logit_scale=float(model.logit_scale.detach()))


@pytest.mark.parametrize("layout", ["safetensors", "bin", "sharded"])
def test_text_and_image_match_pytorch(saved, torch_outputs, layout):
    ref = torch_outputs
    clip = load_clip(str(saved[1] / layout))
    tokens, eot, text_proj = clip.encode_text(ref["ids"])
    assert tokens.shape == (4, 77, 32) and text_proj.shape == (4, 24)
    np.testing.assert_array_equal(eot, [6, 1, (ref["ids"][2] == 49407).argmax(), 76])
    np.testing.assert_allclose(tokens, ref["tokens"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(text_proj, ref["text_proj"], atol=1e-4, rtol=0)
    image_proj, features = clip.encode_image(ref["pixels"])
    np.testing.assert_allclose(image_proj, ref["image_proj"], atol=1e-4, rtol=0)
    assert len(features) == 3
    for ours, theirs in zip(features, ref["features"]):
        assert ours.shape == (3, 1 + 16, 32)
        np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)
    np.testing.assert_allclose(clip.logit_scale, ref["logit_scale"], atol=1e-6)


def test_embeddings_are_not_trivial(torch_outputs):
    """Guards the parity test itself: different prompts/images give clearly different vectors."""
    t, i = torch_outputs["text_proj"], torch_outputs["image_proj"]
    assert np.abs(t[0] - t[1]).max() > 1e-2 and np.abs(i[0] - i[1]).max() > 1e-2


def test_text_only_reads_no_vision_tensor(saved, monkeypatch):
    import safetensors

    requested = []
    real_open = safetensors.safe_open

    class Spy:
        def __init__(self, *args, **kwargs):
            self._f = real_open(*args, **kwargs)

        def __enter__(self):
            self._inner = self._f.__enter__()
            return self

        def __exit__(self, *exc):
            return self._f.__exit__(*exc)

        def keys(self):
            return self._inner.keys()

        def get_tensor(self, name):
            requested.append(name)
            return self._inner.get_tensor(name)

    monkeypatch.setattr(safetensors, "safe_open", Spy)
    clip = load_clip(str(saved[1] / "safetensors"), text_only=True)
    assert requested and not [n for n in requested if n.startswith(("vision_model", "visual_"))]
    assert set(clip.params) == {"text_model", "text_projection", "logit_scale"}
    with pytest.raises(ValueError, match="text_only"):
        clip.encode_image(np.zeros((1, 32, 32, 3), np.float32))


def test_text_only_matches_full_text(saved, torch_outputs):
    clip = load_clip(str(saved[1] / "bin"), text_only=True)
    _, _, text_proj = clip.encode_text(torch_outputs["ids"])
    np.testing.assert_allclose(text_proj, torch_outputs["text_proj"], atol=1e-4, rtol=0)
