"""The upsampler: shapes, kernel-impl parity, identity at init, degradation, losses, config checks."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import meta

from gigagan_jax.config import load_config, validate_config
from gigagan_jax.losses.perceptual import PerceptualLoss, feature_distance, multiscale_l1
from gigagan_jax.models.build import build_discriminator, build_generator
from gigagan_jax.models.generator import init_generator
from gigagan_jax.data.shapes import ShapesSource
from gigagan_jax.data.degrade import degrade, gaussian_taps
from gigagan_jax.models.upsampler import Upsampler
from gigagan_jax.pixels import resize_to
from gigagan_jax.train.state import jit_init
from gigagan_jax.train.step import GanSteps


def upsampler_config(conditioning="text", kernel_impl="patches"):
    """8 -> 16 px on top of the tiny config: encoder 8 -> 4 -> 2, decoder levels 4 and 8 (at and
    below the input) and 16 (above it, image-first)."""
    c = load_config("configs/tiny.py")
    c.task = "upsampler"
    c.model.resolution = 16
    c.model.upsampler.input_resolution = 8
    c.model.upsampler.down_blocks = 2
    c.model.conditioning = conditioning
    c.model.num_classes = 5 if conditioning == "class" else 0
    c.model.g.kernel_impl = kernel_impl
    c.model.g.self_attn_resolutions = (4, 8)
    c.model.g.cross_attn_resolutions = (8,) if conditioning == "text" else ()
    c.model.d.input_resolutions = (8,)
    c.loss.clip_weight = 0.0
    c.loss.perceptual = "fallback"  # no LPIPS weights in tests (one test converts random ones)
    validate_config(c)
    return c


def inputs_for(upsampler, batch=2, seed=0):
    inputs = upsampler.spec.dummy_inputs(batch)
    keys = jax.random.split(jax.random.PRNGKey(seed), 3)
    inputs["z"] = jax.random.normal(keys[0], inputs["z"].shape)
    inputs["lowres"] = jax.random.uniform(keys[1], inputs["lowres"].shape, minval=-1, maxval=1)
    if "text_features" in inputs:
        inputs["text_features"] = jax.random.normal(keys[2], inputs["text_features"].shape)
        inputs["eot_index"] = jnp.array([3, 5])[:batch]
    if "labels" in inputs:
        inputs["labels"] = jnp.arange(batch) % upsampler.spec.num_classes
    return inputs


def to_rgb_kernels(params) -> dict:
    """Decoder level name -> its toRGB kernel bank."""
    net = params["synthesis_network"]
    return {name: net[name]["to_rgb"]["conv"]["kernel"] for name in net if name.startswith("up")}


def randomise_to_rgb(params, seed=1):
    """Non-zero toRGB kernels (they start at zero), so the synthesis path shows up in the output."""
    params = jax.tree_util.tree_map(lambda x: x, params)
    for i, (name, kernel) in enumerate(to_rgb_kernels(params).items()):
        noise = jax.random.normal(jax.random.PRNGKey(seed + i), kernel.shape)
        params["synthesis_network"][name]["to_rgb"]["conv"]["kernel"] = noise
    return params


def open_below_paths(params, seed=2):
    """Open the zero-initialised paths from the level below into the image-first levels."""
    params = jax.tree_util.tree_map(lambda x: x, params)
    net = params["synthesis_network"]
    for i, name in enumerate(n for n in net if "below_gain" in net[n]):
        net[name]["below_gain"] = jnp.ones_like(net[name]["below_gain"])
        shortcut = net[name]["shortcut"]["kernel"]
        net[name]["shortcut"]["kernel"] = jax.random.normal(jax.random.PRNGKey(seed + i), shortcut.shape)
    return params


@pytest.mark.parametrize("conditioning", ["text", "class", "none"])
def test_pyramid_shapes_and_finite_gradients(conditioning):
    up = build_generator(upsampler_config(conditioning))
    assert isinstance(up, Upsampler) and up.spec.levels == [4, 8, 16]
    params = randomise_to_rgb(meta.unbox(init_generator(up, jax.random.PRNGKey(0), 2)["params"]))
    inputs = inputs_for(up)
    pyramid = jax.eval_shape(lambda p: up.apply({"params": p}, **inputs, rngs={"noise": jax.random.PRNGKey(3)}),
                             params)
    assert [p.shape for p in pyramid] == [(2, r, r, 3) for r in (4, 8, 16)]

    def loss(p):
        return sum(jnp.mean(jnp.square(x)) for x in up.apply({"params": p}, **inputs, noise_mode="none"))

    grads = jax.jit(jax.grad(loss))(params)  # one executable: the three cases took 60 s cold op by op, 47 s so
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    # Every part of the network gets a gradient (encoder, mapping, decoder, toRGB).
    for name in ("down0", "up4", "up16"):
        sub = grads["synthesis_network"][name]
        assert float(sum(jnp.sum(jnp.abs(g)) for g in jax.tree_util.tree_leaves(sub))) > 0, name


def test_each_level_starts_as_the_resized_input_and_adds_the_residual():
    up = build_generator(upsampler_config())
    params = meta.unbox(init_generator(up, jax.random.PRNGKey(0), 2)["params"])
    assert all(float(jnp.max(jnp.abs(k))) == 0 for k in to_rgb_kernels(params).values())
    inputs = inputs_for(up)
    base = [resize_to(inputs["lowres"], r) for r in up.spec.levels]
    np.testing.assert_allclose(base[-1], jax.image.resize(inputs["lowres"], (2, 16, 16, 3), "bicubic"), atol=1e-6)
    for x, b in zip(up.apply({"params": params}, **inputs, noise_mode="none"), base):  # exactly the input
        np.testing.assert_allclose(x, b, atol=1e-6)
    # With non-zero toRGB kernels every level departs from its resized input.
    moved = up.apply({"params": randomise_to_rgb(params)}, **inputs, noise_mode="none")
    residuals = [x - b for x, b in zip(moved, base)]
    assert all(float(jnp.mean(jnp.abs(r))) > 0.05 for r in residuals)


def test_levels_above_the_input_start_image_first():
    """At init the 16 px level (input 8 px) reads only the resized input: changing the encoder
    moves the 4 and 8 px outputs but not its, until its path from below opens."""
    up = build_generator(upsampler_config())
    params = randomise_to_rgb(meta.unbox(init_generator(up, jax.random.PRNGKey(0), 2)["params"]))
    net = params["synthesis_network"]
    assert sorted(n for n in net if "below_gain" in net[n]) == ["up16"]
    assert float(jnp.max(jnp.abs(net["up16"]["below_gain"]))) == 0
    inputs = inputs_for(up)

    def outputs_with_encoder_scaled(p, scale):
        p = jax.tree_util.tree_map(lambda x: x, p)
        p["synthesis_network"]["from_rgb"] = jax.tree_util.tree_map(lambda k: k * scale,
                                                                    p["synthesis_network"]["from_rgb"])
        return up.apply({"params": p}, **inputs, noise_mode="none")

    for p, image_levels_move in ((params, False), (open_below_paths(params), True)):
        before, after = outputs_with_encoder_scaled(p, 1.0), outputs_with_encoder_scaled(p, 3.0)
        change = [float(jnp.max(jnp.abs(a - b))) for a, b in zip(after, before)]  # levels 4, 8, 16
        assert min(change[:2]) > 1e-2, change
        assert (min(change[2:]) > 1e-2) if image_levels_move else (max(change[2:]) == 0.0), change


def test_kernel_impls_agree_inside_the_upsampler():
    outs = []
    params = None
    for impl in ("grouped", "patches", "bank"):
        up = build_generator(upsampler_config(kernel_impl=impl))
        if params is None:
            params = meta.unbox(init_generator(up, jax.random.PRNGKey(0), 2)["params"])
            params = open_below_paths(randomise_to_rgb(params))
        outs.append(up.apply({"params": params}, **inputs_for(up), noise_mode="none")[-1])
    assert float(jnp.std(outs[0])) > 0.1
    for other in outs[1:]:
        np.testing.assert_allclose(other, outs[0], atol=2e-4, rtol=1e-4)


def test_bad_lowres_shape_is_a_clear_error():
    up = build_generator(upsampler_config())
    # Batch 2, as the tests above: the init's op-by-op programs are compiled already (batch 1
    # compiled them again: 17 s on a 2-core AVX2 EPYC).
    params = meta.unbox(init_generator(up, jax.random.PRNGKey(0), 2)["params"])
    inputs = inputs_for(up)
    inputs["lowres"] = jnp.zeros((2, 16, 16, 3))
    with pytest.raises(ValueError, match=r"lowres must have shape \[B, 8, 8, 3\]"):
        up.apply({"params": params}, **inputs, noise_mode="none")


def test_degrade():
    x = jax.random.uniform(jax.random.PRNGKey(0), (4, 8, 8, 3), minval=-1, maxval=1)
    rng = jax.random.PRNGKey(1)
    np.testing.assert_array_equal(degrade(x, rng, 0.0, 0.0), x)
    # A zero-width Gaussian is the identity; a wide one averages (constant images stay constant).
    np.testing.assert_allclose(gaussian_taps(jnp.array([0.0]), 2)[0], [0, 0, 1, 0, 0], atol=1e-6)
    const = jnp.full((2, 8, 8, 3), 0.3)
    np.testing.assert_allclose(degrade(const, rng, 2.0, 0.0), const, atol=1e-6)
    blurred = degrade(x, rng, 2.0, 0.0)
    assert float(jnp.std(blurred)) < float(jnp.std(x))
    noisy = degrade(x, rng, 0.0, 0.5)
    assert 0 < float(jnp.std(noisy - x)) < 0.5
    # Strength is drawn per sample.
    per_sample = jnp.std(degrade(x, rng, 0.0, 0.5) - x, axis=(1, 2, 3))
    assert float(jnp.max(per_sample) - jnp.min(per_sample)) > 0.01


def test_perceptual_fallback_numbers():
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 8, 8, 3))
    np.testing.assert_allclose(multiscale_l1(x, x), [0, 0])
    np.testing.assert_allclose(multiscale_l1(x, x + 0.5), [0.5, 0.5], rtol=1e-6)
    # A pixel-level checkerboard vanishes at 1/2 and 1/4 scale: only the full-size term sees it.
    checker = 0.3 * (jnp.indices((8, 8)).sum(0) % 2 * 2 - 1)[None, :, :, None]
    np.testing.assert_allclose(multiscale_l1(x, x + checker), [0.1, 0.1], rtol=1e-5)
    f = [jax.random.normal(jax.random.PRNGKey(i), (2, 5, 4)) for i in range(2)]
    np.testing.assert_allclose(feature_distance(f, f), [0, 0], atol=1e-6)
    assert float(jnp.min(feature_distance(f, [2.0 * v for v in f]))) < 1e-6  # scale-invariant
    loss = PerceptualLoss(upsampler_config())
    assert "fallback" in loss.describe() and loss.clip is None


def test_config_validation():
    c = upsampler_config()
    c.model.upsampler.input_resolution = 32
    with pytest.raises(ValueError, match="must be below config.model.resolution"):
        validate_config(c)
    c = upsampler_config()
    c.model.upsampler.down_blocks = 3
    with pytest.raises(ValueError, match="down_blocks"):
        validate_config(c)
    c = upsampler_config()
    c.model.d.input_resolutions = (8, 2)
    with pytest.raises(ValueError, match="input_resolutions contains 2"):
        validate_config(c)


# Two cases cover the three things checked: the matching term with text and without, and D with
# and without the low-res input. Every D step takes R1 (r1_interval 1), so each case compiles two
# steps, not three (the plain D step runs in test_cli.py's upsampler run).
@pytest.mark.parametrize("conditioning,input_residual", [("text", True), ("none", False)])
def test_d_and_g_steps_train_the_upsampler(conditioning, input_residual):
    """A few D/G steps: finite losses, matching only when conditioned, the residual path trains
    (also with D reading the low-res input, R1 steps included)."""
    config = upsampler_config(conditioning)
    config.model.d.input_residual = input_residual
    config.loss.r1_interval = 1
    config.optim.g_lr = 0.01
    up, disc = build_generator(config), build_discriminator(config)
    steps = GanSteps(config, up, disc)
    state = jit_init(steps.init_state)(jax.random.PRNGKey(0))  # one executable, not hundreds op by op
    b = config.train.batch_size
    rng = np.random.default_rng(0)
    batch = {"image": jnp.asarray(ShapesSource(b, 16).get_batch(np.arange(b))["image"]),
             "label": jnp.zeros((b,), jnp.int32)}
    if conditioning == "text":
        batch["text_features"] = jnp.asarray(rng.normal(size=(b, 77, 32)), jnp.float32)
        batch["eot_index"] = jnp.asarray(rng.integers(2, 10, b), jnp.int32)
    d_step = jax.jit(functools.partial(steps.d_step, with_r1=True))
    g_step = jax.jit(steps.g_step, static_argnames=("with_vision",))
    perceptual = []
    for i in range(8):
        key = jax.random.PRNGKey(i)
        state, dm = d_step(state, batch, key)
        state, gm = g_step(state, batch, jax.random.fold_in(key, 1))
        assert np.isfinite(float(dm["d/loss"])) and np.isfinite(float(gm["g/loss"]))
        perceptual.append(float(gm["g/perceptual"]))
    assert ("d/match" in dm) == (conditioning == "text") and np.isfinite(float(dm["d/r1_penalty"]))
    # The perceptual term is reported and stays near its start (the output starts at the
    # up-sampled input), while training moves the toRGB kernels of the levels a loss reads
    # (D: 16 and 8 px; perceptual: 16 px) off zero. Level 4 is read by none: it stays zero.
    assert all(0 < p < 0.5 for p in perceptual)
    moved = {name: float(jnp.max(jnp.abs(k))) > 0 for name, k in to_rgb_kernels(state.g_params).items()}
    assert moved == {"up4": False, "up8": True, "up16": True}


def test_g_step_with_lpips_weights_passed_as_an_argument(tmp_path):
    """config.loss.lpips_path: the G step's perceptual term is LPIPS of (output, real), with the
    converted weights handed to the jitted step as an argument (not baked in as constants)."""
    torch = pytest.importorskip("torch")

    from gigagan_jax.pixels import to_signed
    from gigagan_jax.pretrained.lpips import load_lpips, lpips_distance
    from gigagan_jax.tools import convert_lpips
    from test_lpips import random_state_dicts

    vgg, lin = random_state_dicts()
    torch.save(vgg, tmp_path / "vgg16.pth")
    torch.save(lin, tmp_path / "lin.pth")
    out = str(tmp_path / "lpips.npz")
    assert convert_lpips.main(["--vgg16", str(tmp_path / "vgg16.pth"), "--lin", str(tmp_path / "lin.pth"),
                               "--out", out]) in (0, None)
    config = upsampler_config("none")
    config.loss.update(perceptual="lpips", lpips_path=out)
    up, disc = build_generator(config), build_discriminator(config)
    steps = GanSteps(config, up, disc)
    assert steps.perceptual.describe() == f"LPIPS-VGG from {out}"
    state = jit_init(steps.init_state)(jax.random.PRNGKey(0))
    b = config.train.batch_size
    images = jnp.asarray(ShapesSource(b, 16).get_batch(np.arange(b))["image"])
    batch = {"image": images, "label": jnp.zeros((b,), jnp.int32)}
    rng = jax.random.PRNGKey(0)
    lpips_params = load_lpips(out)
    _, metrics = jax.jit(steps.g_step)(state, batch, rng, None, lpips_params)
    # At init the output is the bicubic up-sampled input: recompute LPIPS of that by hand.
    @jax.jit  # op by op, the generator and VGG compiled hundreds of programs
    def lpips_of_generated(g_params, lpips_params):
        fakes = steps.generate(g_params, batch, jax.random.split(rng)[0])
        return jnp.mean(lpips_distance(lpips_params, fakes[-1], to_signed(images)))

    expected = lpips_of_generated(state.g_params, lpips_params)
    np.testing.assert_allclose(metrics["g/perceptual"], expected, rtol=1e-4)
    assert float(expected) > 0
