"""Settings that only bite at paper scale, measured directly: G_ema's per-step decay in every
shipped config, which leaves weight decay reaches, the relative size of an Adam step in the text
transformers, and the G-side matching weight."""

import glob
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from small_models import RESOLUTION, at_8px

from gigagan_jax.config import load_config
from gigagan_jax.models.build import build_discriminator, build_generator
from gigagan_jax.train.state import attention_mask, ema_beta, make_optimizers
from gigagan_jax.train.step import GanSteps

# G_ema's decay once the ramp-up is over, per shipped config. The paper's 0.9999 per step at batch
# 512 is a half-life of 3.55 M images; configs with other batches keep that half-life in images.
PAPER_HALF_LIFE = 512 * math.log(0.5) / math.log(0.9999)
BETA_AFTER_RAMP = {
    "t2i_64": 0.9999,
    "upsampler_256": 0.9999 ** (256 / 512),
    "upsampler_512": 0.9999 ** (128 / 512),
    "upsampler_imagenet256": 0.9999 ** (256 / 512),
    "tiny": 0.9999 ** (8 / 512),
    "upsampler_tiny": 0.9999 ** (8 / 512),
    "bench64": 0.9999 ** (8 / 512),
    "demo": 0.5 ** (16 / 2000),  # CPU demos: a 2000-image half-life
    "upsampler_demo": 0.5 ** (16 / 2000),
    "upsampler_demo_gan_only": 0.5 ** (16 / 2000),
}


PAPER_CONFIGS = ("t2i_64", "upsampler_256", "upsampler_512", "upsampler_imagenet256")


@pytest.mark.parametrize("name", sorted(BETA_AFTER_RAMP))
def test_paper_configs_compute_in_bf16_and_cpu_configs_in_float32(name):
    # XLA:CPU runs bf16 convolutions slower than float32 (tiny D+G: 0.39 vs 0.24 s per step), so the
    # CPU configs stay float32; accelerators run bf16 at several times float32's rate.
    expected = "bfloat16" if name in PAPER_CONFIGS else "float32"
    assert load_config(f"configs/{name}.py").model.dtype == expected


def test_every_shipped_config_has_a_stated_ema_decay():
    shipped = {os.path.basename(f)[:-3] for f in glob.glob("configs/*.py")}
    assert shipped == set(BETA_AFTER_RAMP)


@pytest.mark.parametrize("name", sorted(BETA_AFTER_RAMP))
def test_ema_decay_per_step_of_each_shipped_config(name):
    config = load_config(f"configs/{name}.py")
    batch, rampup = config.train.batch_size, config.optim.ema_rampup
    ramp_end = math.ceil(config.optim.ema_half_life_images / (batch * rampup))  # first step past the ramp
    np.testing.assert_allclose(float(ema_beta(config, ramp_end)), BETA_AFTER_RAMP[name], rtol=0, atol=2e-7)
    np.testing.assert_allclose(float(ema_beta(config, 10 * ramp_end)), BETA_AFTER_RAMP[name], rtol=0, atol=2e-7)
    # Ramp-up (StyleGAN2-ADA, 5 %): the half-life is 5 % of the images seen, whatever the batch.
    assert float(ema_beta(config, 0)) == 0.0  # the first G step copies G
    np.testing.assert_allclose(float(ema_beta(config, 100)), 0.5 ** (1 / (rampup * 100)), rtol=1e-6)


def test_paper_ema_half_life_is_the_papers_decay_at_batch_512():
    config = load_config("configs/t2i_64.py")
    assert config.train.batch_size == 512
    np.testing.assert_allclose(config.optim.ema_half_life_images, PAPER_HALF_LIFE, rtol=1e-9)
    assert config.optim.ema_rampup == 0.05


@pytest.fixture(scope="module")
def tiny_state():
    config = load_config("configs/tiny.py")
    steps = GanSteps(config, build_generator(config), build_discriminator(config))
    return config, jax.eval_shape(steps.init_state, jax.random.PRNGKey(0))


def _names(tree, mask) -> set[str]:
    flags = jax.tree_util.tree_leaves_with_path(mask)
    return {"/".join(str(getattr(k, "key", k)) for k in path) for path, flag in flags if flag}


def test_weight_decay_reaches_exactly_the_attention_projection_weights(tiny_state):
    _, state = tiny_state
    decayed = _names(state.g_params, attention_mask(state.g_params)) | {
        "D/" + n for n in _names(state.d_params, attention_mask(state.d_params))}
    g_text = "text_transformer/block0/attn"
    expected = {
        *(f"synthesis_network/b8/cross_attn0/{p}/kernel" for p in ("q", "k", "v", "out")),
        *(f"synthesis_network/b8/self_attn0/{p}/kernel" for p in ("qk", "v", "out")),
        *(f"{g_text}/{p}/kernel" for p in ("q", "k", "v", "out")),
        *(f"D/main/stages_16/self_attn/{p}/kernel" for p in ("qk", "v", "out")),
        *(f"D/main/{g_text}/{p}/kernel" for p in ("q", "k", "v", "out")),
    }
    assert decayed == expected


def test_one_optimizer_step_with_zero_gradient_moves_only_decayed_leaves(tiny_state):
    """The optimiser itself, not just the mask: with a zero gradient only weight decay moves a
    leaf, so the leaves that move are those decayed, LayerNorms and biases stay put."""
    config, abstract = tiny_state
    g_tx, _ = make_optimizers(config)
    params = jax.tree_util.tree_map(lambda s: jnp.ones(s.shape, s.dtype), abstract.g_params)
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    updates, _ = g_tx.update(zeros, g_tx.init(params), params)
    moved = jax.tree_util.tree_map(lambda u: bool(jnp.any(u != 0)), updates)
    assert _names(params, moved) == _names(params, attention_mask(params))
    assert not any("ln_" in n or n.endswith("bias") for n in _names(params, moved))


def test_text_transformer_adam_step_is_as_large_as_an_equalized_convs():
    """One Adam step moves every weight by ~lr per element (beta1 = 0, first step), so its size
    relative to the weight is lr / rms(weight). Equalized-lr weights are stored at unit scale; a
    standard Dense with fan-in 768 (CLIP ViT-L/14 features into T) stores them at 1/sqrt(768) and
    moved 28x further relative to its size."""
    config = load_config("configs/tiny.py")
    config.model.text_encoder_dim = 768
    generator = build_generator(config)
    params = jax.jit(lambda k: generator.init({"params": k, "noise": k}, **generator.spec.dummy_inputs(1)))(
        jax.random.PRNGKey(0))["params"]
    params = jax.tree_util.tree_map(lambda x: getattr(x, "value", x), params,
                                    is_leaf=lambda x: hasattr(x, "value"))
    g_tx, _ = make_optimizers(config)
    leaves = jax.tree_util.tree_leaves(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    grads = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params),
                                         [jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])
    updates, _ = g_tx.update(grads, g_tx.init(params), params)

    def relative(path: str) -> float:
        node_p, node_u = params, updates
        for part in path.split("/"):
            node_p, node_u = node_p[part], node_u[part]
        rms = lambda a: float(jnp.sqrt(jnp.mean(jnp.square(a))))  # noqa: E731
        return rms(node_u) / rms(node_p)

    conv = relative("synthesis_network/b8/conv0/conv/kernel")
    np.testing.assert_allclose(conv, config.optim.g_lr, rtol=0.1)
    block = "text_transformer/block0"
    for path in ("text_transformer/in_proj/kernel", "text_transformer/pos_embed", f"{block}/attn/q/kernel",
                 f"{block}/attn/out/kernel", f"{block}/fc1/kernel", f"{block}/fc2/kernel"):
        ratio = relative(path) / conv
        assert 0.5 <= ratio <= 2.0, (path, ratio)


def test_g_matching_weight_scales_only_gs_matching_term():
    config = at_8px(load_config("configs/tiny.py"))
    assert config.loss.g_matching_weight == config.loss.matching_weight  # follows D's unless set
    b = 4
    batch = {"image": jnp.zeros((b, RESOLUTION, RESOLUTION, 3), jnp.uint8),
             "text_features": jax.random.normal(jax.random.PRNGKey(2), (b, 77, 32)),
             "eot_index": jnp.arange(b, dtype=jnp.int32) + 3}
    losses = {}
    for weight in (0.0, 2.5):
        config.loss.g_matching_weight = weight
        steps = GanSteps(config, build_generator(config), build_discriminator(config))
        state = jax.jit(steps.init_state)(jax.random.PRNGKey(0))
        loss, metrics = jax.jit(lambda s: steps.g_loss(s.g_params, batch, jax.random.PRNGKey(3),
                                                       d_params=s.d_params))(state)
        losses[weight] = (float(loss), float(metrics["g/gan"]), float(metrics["g/match"]))
    assert config.loss.matching_weight == 1.0  # D's weight untouched
    (l0, gan0, m0), (l1, gan1, m1) = losses[0.0], losses[2.5]
    assert m0 > 0 and (gan0, m0) == (gan1, m1)
    np.testing.assert_allclose(l0, gan0, rtol=1e-6)
    np.testing.assert_allclose(l1 - l0, 2.5 * m1, rtol=1e-5)
