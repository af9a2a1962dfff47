"""The full generator: pyramid shapes, conditioning, determinism, latent tricks, bad input."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import meta

from gigagan_jax.config import load_config
from gigagan_jax.models.build import build_generator
from gigagan_jax.models.generator import (Generator, GeneratorSpec, init_generator, pyramid_shapes,
                                         style_mix)
from gigagan_jax.tools.param_count import generator_param_counts


@functools.lru_cache(maxsize=None)
def _tiny(conditioning="text"):
    config = load_config("configs/tiny.py")
    if conditioning == "class":
        config.model.conditioning = "class"
        config.model.num_classes = 5
        config.model.g.cross_attn_resolutions = ()
    generator = build_generator(config)
    params = meta.unbox(jax.jit(functools.partial(init_generator, generator, batch=2))(jax.random.PRNGKey(0)))
    return generator, params


def _text(spec: GeneratorSpec, seed: int, batch: int = 2):
    feats = jax.random.normal(jax.random.PRNGKey(seed), (batch, spec.text_len, spec.text_encoder_dim))
    eot = jnp.arange(batch, dtype=jnp.int32) % (spec.text_len - 3) + 3
    return feats, eot


@functools.partial(jax.jit, static_argnames=("generator", "noise_mode", "truncation_psi"))
def _apply(generator, params, z, feats, eot, key, w_avg, noise_mode, truncation_psi):
    return generator.apply(params, z, feats, eot, truncation_psi=truncation_psi, w_avg=w_avg, noise_mode=noise_mode,
                           rngs={"noise": key})


def _sample(generator, params, z, feats, eot, noise_seed=0, noise_mode="random", truncation_psi=1.0, w_avg=None):
    """The generator's forward, compiled once per generator and mode for the whole file."""
    return _apply(generator, params, z, feats, eot, jax.random.PRNGKey(noise_seed), w_avg, noise_mode, truncation_psi)


@functools.partial(jax.jit, static_argnames=("generator",))
def _synthesis(generator, params, ws, text):
    """Synthesis alone (noise off) from w or per-level ws, compiled once per input structure."""
    return generator.apply(params, ws, text, "none", method=Generator.synthesis)[-1]


@pytest.mark.parametrize("name", ["tiny", "demo", "bench64"])
def test_pyramid_shapes(name):
    config = load_config(f"configs/{name}.py")
    generator = build_generator(config)
    spec = generator.spec

    def run(rng):
        variables = init_generator(generator, rng, batch=3)
        feats = jnp.zeros((3, spec.text_len, spec.text_encoder_dim))
        return generator.apply(variables, jnp.zeros((3, spec.z_dim)), feats, jnp.full((3,), 4),
                               rngs={"noise": rng})

    out = jax.eval_shape(run, jax.random.PRNGKey(0))
    assert [o.shape for o in out] == list(pyramid_shapes(spec, 3))
    assert out[-1].shape == (3, config.model.resolution, config.model.resolution, 3)


def test_same_seed_same_image_and_text_changes_image():
    generator, params = _tiny()
    spec = generator.spec
    z = jax.random.normal(jax.random.PRNGKey(1), (2, spec.z_dim))
    feats, eot = _text(spec, 2)
    a = _sample(generator, params, z, feats, eot)
    b = _sample(generator, params, z, feats, eot)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    other_text = _sample(generator, params, z, _text(spec, 3)[0], eot)
    assert float(jnp.abs(other_text[-1] - a[-1]).mean()) > 1e-3
    other_z = _sample(generator, params, z + 1.0, feats, eot)
    assert float(jnp.abs(other_z[-1] - a[-1]).mean()) > 1e-3
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in a)


def test_cross_attention_reads_local_tokens():
    """Changing only a word token (not EOT) still changes the image: t_local reaches synthesis."""
    generator, params = _tiny()
    spec = generator.spec
    z = jax.random.normal(jax.random.PRNGKey(1), (2, spec.z_dim))
    feats, eot = _text(spec, 2)
    base = _sample(generator, params, z, feats, eot, noise_mode="none")
    # Same w, different t_local: only cross-attention can carry the change.
    text = generator.apply(params, feats, eot, method=Generator.encode_text)
    w = generator.apply(params, z, text.t_global, method=Generator.mapping)
    moved = text.replace(t_local=text.t_local.at[:, 1].add(3.0))
    img_a = _synthesis(generator, params, w, text)
    img_b = _synthesis(generator, params, w, moved)
    np.testing.assert_allclose(img_a, base[-1], rtol=1e-5, atol=1e-5)
    assert float(jnp.abs(img_a - img_b).mean()) > 1e-4


def test_gradients_are_finite_and_reach_every_parameter_group():
    generator, params = _tiny()
    spec = generator.spec
    z = jax.random.normal(jax.random.PRNGKey(1), (2, spec.z_dim))
    feats, eot = _text(spec, 2)

    def loss(p):
        pyramid = generator.apply(p, z, feats, eot, rngs={"noise": jax.random.PRNGKey(0)})
        return sum(jnp.mean(jnp.square(x)) for x in pyramid)

    grads = jax.jit(jax.grad(loss))(params)["params"]
    leaves = jax.tree_util.tree_leaves_with_path(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for _, g in leaves)
    for group in ("text_transformer", "mapping_network", "synthesis_network"):
        norm = sum(float(jnp.sum(jnp.square(g))) for _, g in jax.tree_util.tree_leaves_with_path(grads[group]))
        assert norm > 0, group


def test_truncation_and_style_mixing():
    generator, params = _tiny()
    spec = generator.spec
    z = jax.random.normal(jax.random.PRNGKey(1), (2, spec.z_dim))
    feats, eot = _text(spec, 2)
    text = generator.apply(params, feats, eot, method=Generator.encode_text)
    w_avg = generator.apply(params, text.t_global, 64, method=Generator.mean_w, rngs={"latent": jax.random.PRNGKey(5)})
    assert w_avg.shape == (2, spec.w_dim)

    plain = _sample(generator, params, z, feats, eot, noise_mode="none")
    psi_one = _sample(generator, params, z, feats, eot, noise_mode="none", truncation_psi=1.0, w_avg=w_avg)
    np.testing.assert_array_equal(plain[-1], psi_one[-1])
    # psi = 0: every z gives the per-prompt mean image.
    psi0_a = _sample(generator, params, z, feats, eot, noise_mode="none", truncation_psi=0.0, w_avg=w_avg)
    psi0_b = _sample(generator, params, -z, feats, eot, noise_mode="none", truncation_psi=0.0, w_avg=w_avg)
    np.testing.assert_allclose(psi0_a[-1], psi0_b[-1], rtol=1e-5, atol=1e-5)

    w1 = generator.apply(params, z, text.t_global, method=Generator.mapping)
    w2 = generator.apply(params, -z, text.t_global, method=Generator.mapping)
    levels = len(spec.levels)
    ws1, ws2 = (jnp.repeat(w[:, None], levels, axis=1) for w in (w1, w2))
    synth = functools.partial(_synthesis, generator, params, text=text)
    np.testing.assert_array_equal(synth(style_mix(ws1, ws1, 2)), synth(ws1))
    np.testing.assert_array_equal(synth(style_mix(ws1, ws2, 0)), synth(ws2))
    mixed = synth(style_mix(ws1, ws2, 2))
    assert float(jnp.abs(mixed - synth(ws1)).mean()) > 1e-4
    assert float(jnp.abs(mixed - synth(ws2)).mean()) > 1e-4


def test_per_level_text_prompt_mixing():
    """Level i's cross-attention reads level i's tokens; the same text at every level is the
    single-text path bit for bit."""
    generator, params = _tiny()
    spec = generator.spec
    levels = len(spec.levels)
    assert spec.cross_attn_resolutions == (8,) and spec.levels == [4, 8, 16]  # cross-attention at level 1 only
    z = jax.random.normal(jax.random.PRNGKey(1), (2, spec.z_dim))
    text_a = generator.apply(params, *_text(spec, 2), method=Generator.encode_text)
    text_b = generator.apply(params, *_text(spec, 3), method=Generator.encode_text)
    w = generator.apply(params, z, text_a.t_global, method=Generator.mapping)
    synth = functools.partial(_synthesis, generator, params, w)
    per_a, per_b = text_a.per_level(levels), text_b.per_level(levels)
    assert per_a.t_local.shape == (2, levels, spec.text_len - 1, spec.text_dim)
    assert per_a.t_mask.shape == (2, levels, spec.text_len - 1) and per_a.t_global.shape == (2, levels, spec.text_dim)
    plain_a, plain_b = synth(text_a), synth(text_b)
    assert float(jnp.abs(plain_a - plain_b).mean()) > 1e-3
    np.testing.assert_array_equal(synth(per_a), plain_a)
    np.testing.assert_array_equal(synth(style_mix(per_a, per_b, 0)), plain_b)
    np.testing.assert_array_equal(synth(style_mix(per_a, per_b, 1)), plain_b)  # level 1 reads B
    np.testing.assert_array_equal(synth(style_mix(per_a, per_b, 2)), plain_a)  # level 1 reads A
    np.testing.assert_array_equal(synth(style_mix(per_a, per_b, levels)), plain_a)
    expected = r"one entry per pyramid level: t_local \[B, 3, L-1, D\].*got t_local \(2, 2, 76, 32\)"
    with pytest.raises(ValueError, match=expected):
        generator.apply(params, w, text_a.per_level(2), "none", method=Generator.synthesis)


def test_class_conditional_variant():
    generator, params = _tiny("class")
    assert "text_transformer" not in params["params"]
    assert not any("cross_attn" in str(path) for path, _ in jax.tree_util.tree_leaves_with_path(params))
    spec = generator.spec
    z = jax.random.normal(jax.random.PRNGKey(1), (2, spec.z_dim))
    run = jax.jit(lambda labels: generator.apply(params, z, labels=labels, noise_mode="none"))
    a, b = run(jnp.array([0, 1])), run(jnp.array([2, 3]))
    assert [x.shape for x in a] == list(pyramid_shapes(spec, 2))
    assert float(jnp.abs(a[-1] - b[-1]).mean()) > 1e-4


def test_bfloat16_compute_stays_close_to_float32():
    config = load_config("configs/tiny.py")
    config.model.dtype = "bfloat16"
    generator_bf16 = build_generator(config)
    generator, params = _tiny()
    spec = generator.spec
    z = jax.random.normal(jax.random.PRNGKey(1), (2, spec.z_dim))
    feats, eot = _text(spec, 2)
    ref = _sample(generator, params, z, feats, eot, noise_mode="none")[-1]
    low = _sample(generator_bf16, params, z, feats, eot, noise_mode="none")[-1]
    assert low.dtype == jnp.float32
    rel = float(jnp.linalg.norm(low - ref) / jnp.linalg.norm(ref))
    assert rel < 0.05, rel


def test_bad_inputs_raise_clear_errors():
    generator, params = _tiny()
    spec = generator.spec
    z = jnp.zeros((2, spec.z_dim))
    feats, eot = _text(spec, 2)
    with pytest.raises(ValueError, match=r"text_features must have shape \[B, 77, 32\].*got \(2, 77, 31\)"):
        generator.apply(params, z, feats[..., :31], eot, noise_mode="none")
    with pytest.raises(ValueError, match=r"z must have shape \[B, 32\]"):
        generator.apply(params, jnp.zeros((2, 7)), feats, eot, noise_mode="none")
    with pytest.raises(ValueError, match="eot_index must have shape"):
        generator.apply(params, z, feats, eot[:1], noise_mode="none")
    with pytest.raises(ValueError, match="needs text_features"):
        generator.apply(params, z, noise_mode="none")
    with pytest.raises(ValueError, match="truncation_psi != 1 needs w_avg"):
        generator.apply(params, z, feats, eot, truncation_psi=0.5, noise_mode="none")


def test_paper_config_parameter_count():
    """configs/t2i_64.py, built abstractly: ~640 M, within 3 % of the paper's 652.5 M."""
    counts = generator_param_counts(load_config("configs/t2i_64.py"))
    total = sum(counts.values())
    assert abs(total - 652.5e6) / 652.5e6 < 0.03, total
    assert counts["mapping_network"] > 0 and counts["text_transformer"] > 0


def test_every_kernel_impl_gives_the_same_generator():
    """What lets `auto` pick any of them per machine (test_kernel_choice) on one parameter tree."""
    generator, params = _tiny()
    spec = generator.spec
    z = jax.random.normal(jax.random.PRNGKey(1), (2, spec.z_dim))
    feats, eot = _text(spec, 2)
    outputs = {}
    for impl in ("grouped", "bank", "patches", "per_sample"):
        other = Generator(dataclasses.replace(spec, kernel_impl=impl))
        outputs[impl] = _sample(other, params, z, feats, eot, noise_mode="none")
    for impl in ("bank", "patches", "per_sample"):
        for a, b in zip(outputs["grouped"], outputs[impl]):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4, err_msg=impl)


def test_noise_modes_of_a_synthesis_layer():
    """const: one map per layer, shared by every sample and every call (keyed by the layer's
    name); random: from the 'noise' rng; a mode outside NOISE_MODES is refused."""
    from gigagan_jax.models.layers import SynthesisLayer

    layer = SynthesisLayer(8, 2, impl="grouped")
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 4))
    w = jnp.broadcast_to(jax.random.normal(jax.random.PRNGKey(1), (1, 16)), (2, 16))  # two equal samples
    params = meta.unbox(layer.init({"params": jax.random.PRNGKey(2), "noise": jax.random.PRNGKey(3)}, x, w))
    params = jax.tree_util.tree_map_with_path(
        lambda path, v: jnp.float32(1.0) if "noise_strength" in jax.tree_util.keystr(path) else v, params)
    same_x = jnp.broadcast_to(x[:1], x.shape)

    def run(mode, key=0, inputs=same_x):
        return layer.apply(params, inputs, w, mode, rngs={"noise": jax.random.PRNGKey(key)})

    const, none = run("const"), run("none")
    np.testing.assert_array_equal(const, run("const", key=1))
    np.testing.assert_array_equal(const[0], const[1])  # the same map for every sample
    assert float(jnp.abs(const - none).mean()) > 0.05
    random = run("random")
    assert float(jnp.abs(random[0] - random[1]).mean()) > 0.05  # per-sample fresh noise
    assert float(jnp.abs(random - run("random", key=1)).mean()) > 0.05
    with pytest.raises(ValueError, match="noise_mode must be one of"):
        run("fixed")
