"""Equalized-lr layers, FIR resampling and the sample-adaptive modulated convolution."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import meta
from jax.test_util import check_grads

from gigagan_jax.models.layers import (MODCONV_IMPLS, AdaptiveModulatedConv, EqualizedConv, EqualizedDense,
                                      KernelSelection, add_bias, conv2d, conv2d_stride2, lrelu, matmul_last_axis)
from gigagan_jax.models.resample import blur2d, downsample2d, upsample2d


def _init(module, *args):
    return meta.unbox(jax.jit(module.init)(jax.random.PRNGKey(0), *args))


def _randomize(params, seed=1):
    """Replace every param by N(0, 1) so biases and selection logits are not at their init."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return jax.tree_util.tree_unflatten(
        treedef, [jax.random.normal(k, l.shape, l.dtype) for k, l in zip(keys, leaves)])


def test_equalized_dense_scales_weights_at_run_time():
    layer = EqualizedDense(7, lr_mult=0.01, bias_init=0.5)
    x = jax.random.normal(jax.random.PRNGKey(2), (3, 200))
    params = _init(layer, x)
    kernel, bias = params["params"]["kernel"], params["params"]["bias"]
    # Stored N(0, 1/lr^2): std ~ 100; the bias is stored divided by lr.
    assert 85 < float(np.std(kernel)) < 115
    np.testing.assert_allclose(bias * 0.01, 0.5, rtol=1e-6)
    expected = x @ (kernel * 0.01 / math.sqrt(200)) + bias * 0.01
    np.testing.assert_allclose(layer.apply(params, x), expected, rtol=1e-5, atol=1e-5)


def _reference_modconv(x, w, p, demodulate=True):
    """Plain numpy: mix the bank per sample, modulate, demodulate, SAME cross-correlation."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    bank = np.asarray(p["kernel"], np.float64)  # [N, k, k, Cin, Cout]
    n, k, _, cin, cout = bank.shape
    wd = w.shape[1]
    styles = w @ (np.asarray(p["affine"]["kernel"]) / math.sqrt(wd)) + np.asarray(p["affine"]["bias"])
    if n > 1:
        logits = w @ (np.asarray(p["select"]["kernel"]) / math.sqrt(wd)) + np.asarray(p["select"]["bias"])
        a = np.exp(logits - logits.max(1, keepdims=True))
        a /= a.sum(1, keepdims=True)
    else:
        a = np.ones((w.shape[0], 1))
    b, h, wdth, _ = x.shape
    out = np.zeros((b, h, wdth, cout))
    pad = k // 2
    for i in range(b):
        kern = np.tensordot(a[i], bank, axes=1) / math.sqrt(k * k * cin) * styles[i][None, None, :, None]
        if demodulate:
            kern = kern / np.sqrt((kern**2).sum(axis=(0, 1, 2)) + 1e-8)
        xp = np.pad(x[i], [(pad, pad), (pad, pad), (0, 0)])
        for dy in range(k):
            for dx in range(k):
                out[i] += xp[dy:dy + h, dx:dx + wdth] @ kern[dy, dx]
    return out


@pytest.mark.parametrize("impl", MODCONV_IMPLS)
@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_matches_numpy_reference(impl, demodulate):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 6, 3))
    w = jax.random.normal(jax.random.PRNGKey(1), (2, 8))
    layer = AdaptiveModulatedConv(4, 3, num_kernels=3, demodulate=demodulate, impl=impl)
    params = _randomize(_init(layer, x, w))
    y = layer.apply(params, x, w)
    np.testing.assert_allclose(y, _reference_modconv(x, w, params["params"], demodulate), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", ["bank", "per_sample"])
@pytest.mark.parametrize("num_kernels", [1, 3])
@pytest.mark.parametrize("size,features", [((5, 6), 4), ((2, 2), 8)])
def test_a_1x1_modulated_conv_matches_numpy_reference(impl, num_kernels, size, features):
    """A 1x1 kernel is one matmul whatever the impl, its style folded into each sample's kernel
    (30 pixels > 4 outputs: ToRGB's case) or into x (4 pixels <= 8 outputs: D's small heads)."""
    x = jax.random.normal(jax.random.PRNGKey(0), (2, *size, 3))
    w = jax.random.normal(jax.random.PRNGKey(1), (2, 8))
    for demodulate in (True, False):
        layer = AdaptiveModulatedConv(features, 1, num_kernels=num_kernels, demodulate=demodulate, impl=impl)
        params = _randomize(_init(layer, x, w))
        want = _reference_modconv(x, w, params["params"], demodulate)
        np.testing.assert_allclose(layer.apply(params, x, w), want, rtol=1e-4, atol=1e-4)
        assert "convolution" not in jax.jit(layer.apply).lower(params, x, w).as_text()


def test_1x1_convs_are_matmuls_equal_to_the_convolution():
    """conv2d writes a 1x1 kernel as a dot (XLA:CPU runs the conv 1.5-18x slower)."""
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 9, 9, 5))
    kernel = jax.random.normal(jax.random.PRNGKey(1), (1, 1, 5, 7))
    want = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(conv2d(x, kernel), want, rtol=1e-5, atol=1e-5)
    text = jax.jit(conv2d).lower(x, kernel).as_text()
    assert "convolution" not in text and "dot_general" in text
    three = jax.random.normal(jax.random.PRNGKey(2), (3, 3, 5, 7))  # a 3x3 kernel stays a convolution
    assert "convolution" in jax.jit(conv2d).lower(x, three).as_text()


def test_a_dense_layer_s_weight_gradient_reads_the_output_gradient_as_it_lies():
    """matmul_last_axis: one 2-D matmul, equal to the 4-D einsum, whose weight gradient XLA:CPU
    computes without a transposed copy of the output gradient ([C, N]); the einsum form makes
    one (D's 64 px from_rgb: 77 ms of a 1.3 s step)."""
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 32, 32, 3))
    kernel = jax.random.normal(jax.random.PRNGKey(1), (3, 64))
    conv = jax.random.normal(jax.random.PRNGKey(2), (3, 3, 64, 64))
    einsum = lambda x, w: jnp.einsum("bhwi,io->bhwo", x, w)
    np.testing.assert_allclose(matmul_last_axis(x, kernel), einsum(x, kernel), rtol=1e-6, atol=1e-6)

    def transposed_copies(dense):  # a from_rgb, its activation and a strided conv after it
        def loss(w, b):
            y = lrelu(add_bias(dense(x, w), b))
            z = jax.lax.conv_general_dilated(y, conv, (2, 2), [(1, 1), (1, 1)],
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
            return jnp.sum(z ** 2)

        hlo = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(kernel, jnp.zeros(64)).compile().as_text()
        return len(re.findall(r"= f32\[64,4096\]", hlo))

    assert transposed_copies(einsum) > 0  # what the check would catch
    assert transposed_copies(matmul_last_axis) == 0


def test_bias_gradient_is_a_matmul_with_the_derivatives_of_a_plain_add():
    """add_bias's own gradient (a dot with ones, not a reduce) equals autodiff's of `y + bias`, to
    first and second order: R1 differentiates D's gradient again."""
    y = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 6, 4))
    bias = jax.random.normal(jax.random.PRNGKey(1), (4,))

    def loss(add):
        return lambda y, b: jnp.sum(jnp.sin(lrelu(add(y, b))) ** 2)

    plain, ours = loss(jnp.add), loss(add_bias)
    np.testing.assert_array_equal(add_bias(y, bias), y + bias)
    for got, want in zip(jax.grad(ours, argnums=(0, 1))(y, bias), jax.grad(plain, argnums=(0, 1))(y, bias)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    r1 = lambda f: jax.grad(lambda b: jnp.sum(jax.grad(f)(y, b) ** 2))(bias)  # d/db |d loss/dy|^2
    np.testing.assert_allclose(r1(ours), r1(plain), rtol=1e-5, atol=1e-5)
    backward = jax.jit(lambda dy: jax.vjp(add_bias, y, bias)[1](dy)).lower(y).as_text()
    assert "dot_general" in backward and "reduce" not in backward
    y16, bias16 = y.astype(jnp.bfloat16), bias.astype(jnp.bfloat16)
    low = jax.grad(lambda b: jnp.sum(add_bias(y16, b).astype(jnp.float32)))(bias16)
    assert low.dtype == jnp.bfloat16 and np.all(np.asarray(low, np.float32) == 3 * 5 * 6)


@pytest.mark.parametrize("up", [False, True])
@pytest.mark.parametrize("num_kernels", [1, 4])
def test_all_implementations_agree(up, num_kernels):
    x = jax.random.normal(jax.random.PRNGKey(3), (3, 8, 8, 16))
    w = jax.random.normal(jax.random.PRNGKey(4), (3, 12))
    grouped = AdaptiveModulatedConv(24, 3, num_kernels, up=up, impl="grouped")
    params = _randomize(_init(grouped, x, w), seed=5)
    y_grouped = grouped.apply(params, x, w)
    assert y_grouped.shape == (3, 16 if up else 8, 16 if up else 8, 24)
    for impl in ("bank", "patches", "per_sample"):
        other = AdaptiveModulatedConv(24, 3, num_kernels, up=up, impl=impl).apply(params, x, w)
        np.testing.assert_allclose(other, y_grouped, rtol=1e-4, atol=1e-4, err_msg=impl)


def test_all_implementations_have_equal_gradients():
    """Training runs the backward pass, which each implementation builds differently."""
    x = jax.random.normal(jax.random.PRNGKey(9), (3, 8, 8, 16))
    w = jax.random.normal(jax.random.PRNGKey(10), (3, 12))
    target = jax.random.normal(jax.random.PRNGKey(11), (3, 8, 8, 24))
    params = _randomize(_init(AdaptiveModulatedConv(24, 3, 4, impl="grouped"), x, w), seed=12)

    def grads(impl):
        layer = AdaptiveModulatedConv(24, 3, 4, impl=impl)
        loss = lambda p, x, w: jnp.sum(layer.apply(p, x, w) * target)
        return jax.grad(loss, argnums=(0, 1, 2))(params, x, w)

    reference = jax.tree_util.tree_leaves(grads("grouped"))
    for impl in ("bank", "patches", "per_sample"):
        for got, want in zip(jax.tree_util.tree_leaves(grads(impl)), reference):
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3, err_msg=impl)


def test_demodulation_gives_unit_variance_output():
    x = jax.random.normal(jax.random.PRNGKey(6), (4, 32, 32, 64))
    w = jax.random.normal(jax.random.PRNGKey(7), (4, 32))
    layer = AdaptiveModulatedConv(64, 3, num_kernels=4)
    params = _randomize(_init(layer, x, w), seed=8)
    y = np.asarray(layer.apply(params, x, w))[:, 1:-1, 1:-1]  # borders see zero padding
    per_channel_std = y.reshape(-1, 64).std(axis=0)
    assert np.all(np.abs(per_channel_std - 1.0) < 0.1), per_channel_std


def test_kernel_selection_is_a_softmax_that_depends_on_w():
    x = jnp.zeros((2, 4, 4, 5))
    layer = AdaptiveModulatedConv(6, 3, num_kernels=5)
    w = jax.random.normal(jax.random.PRNGKey(9), (2, 10))
    params = _randomize(_init(layer, x, w), seed=10)
    a = KernelSelection(5).apply({"params": params["params"]["select"]}, w)
    assert a.shape == (2, 5)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=1e-6)
    assert np.all(a > 0)
    # Two different w select different mixtures, hence different kernels.
    assert float(jnp.abs(a[0] - a[1]).max()) > 1e-3
    bank = params["params"]["kernel"]
    k0, k1 = (jnp.einsum("n,nxyio->xyio", a[i], bank) for i in range(2))
    assert float(jnp.abs(k0 - k1).max()) > 1e-3


def test_fir_resampling_preserves_constants_and_shapes():
    x = jnp.full((1, 8, 8, 2), 3.0)
    up = upsample2d(x)
    assert up.shape == (1, 16, 16, 2)
    np.testing.assert_allclose(up[:, 2:-2, 2:-2], 3.0, rtol=1e-6)  # interior: DC gain 1
    down = downsample2d(x)
    assert down.shape == (1, 4, 4, 2)
    np.testing.assert_allclose(down[:, 1:-1, 1:-1], 3.0, rtol=1e-6)
    # The low-pass removes the Nyquist checkerboard almost entirely when downsampling.
    checker = jnp.asarray((np.indices((16, 16)).sum(0) % 2 * 2 - 1), jnp.float32)[None, :, :, None]
    assert float(jnp.abs(downsample2d(checker)[:, 1:-1, 1:-1]).max()) < 1e-6


def test_equalized_conv_down_halves_resolution():
    x = jax.random.normal(jax.random.PRNGKey(11), (2, 16, 16, 4))
    for k in (1, 3):
        conv = EqualizedConv(8, kernel_size=k, down=True)
        y = conv.apply(_init(conv, x), x)
        assert y.shape == (2, 8, 8, 8)


def _upfirdn_reference(x, up, down, pad0, pad1, gain):
    """numpy upfirdn2d with the [1, 3, 3, 1] filter: zero-insert, pad, 2-D filter, subsample."""
    f = np.outer([1, 3, 3, 1], [1, 3, 3, 1]).astype(np.float64)
    f = f / f.sum() * gain
    b, h, w, c = x.shape
    z = np.zeros((b, h * up, w * up, c))
    z[:, ::up, ::up] = x
    z = np.pad(z, [(0, 0), (pad0, pad1), (pad0, pad1), (0, 0)])
    out_h = z.shape[1] - 3
    out = np.zeros((b, out_h, out_h, c))
    for i in range(4):
        for j in range(4):
            out += z[:, i:i + out_h, j:j + out_h] * f[3 - i, 3 - j]
    return out[:, ::down, ::down]


def test_strided_1x1_down_conv_blurs_only_the_pixels_it_keeps():
    """D's skip (a 1x1 conv-down) is downsample2d, which blurs at stride 2 directly: the values of
    blurring every pixel and subsampling (StyleGAN2's form, the numpy reference here), with no
    full-resolution blur in the compiled program."""
    x = jax.random.normal(jax.random.PRNGKey(13), (2, 16, 16, 4))
    conv = EqualizedConv(8, kernel_size=1, down=True, use_bias=False)
    params = _init(conv, x)
    kernel = np.asarray(params["params"]["kernel"]).reshape(4, 8) / 2.0  # equalized lr: 1 / sqrt(fan_in 4)
    want = _upfirdn_reference(np.asarray(x, np.float64), 1, 2, 1, 1, 1.0) @ kernel
    np.testing.assert_allclose(conv.apply(params, x), want, rtol=1e-5, atol=1e-5)
    text = jax.jit(conv.apply).lower(params, x).as_text()
    assert "x15x" not in text and "15x15" not in text  # no full-resolution blur (18 padded - 3 = 15 rows)


@pytest.mark.parametrize("k,size", [(3, (9, 10)), (3, (10, 9)), (1, (7, 8)), (2, (8, 8)), (4, (11, 12)), (5, (9, 9))])
def test_strided_conv_input_gradient_by_phase_equals_autodiffs(k, size):
    """`conv2d_stride2`'s input gradient, four stride-1 convs of dy (one per pixel parity), is
    autodiff's to rounding for every kernel size and odd or even input, correct to second order
    (R1 differentiates it), and its program multiplies no zeros inserted into dy (autodiff's
    input gradient is a convolution over dy dilated by 2: lhs_dilate)."""
    x = jax.random.normal(jax.random.PRNGKey(16), (2, *size, 3))
    kernel = jax.random.normal(jax.random.PRNGKey(17), (k, k, 3, 4))

    def plain(x, kernel):
        return jax.lax.conv_general_dilated(x, kernel, (2, 2), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    y, vjp = jax.vjp(conv2d_stride2, x, kernel)
    want, want_vjp = jax.vjp(plain, x, kernel)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    dy = jax.random.normal(jax.random.PRNGKey(18), y.shape)
    for got, ref in zip(vjp(dy), want_vjp(dy)):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4)
    check_grads(conv2d_stride2, (x, kernel), order=2, modes=["rev"], atol=2e-2, rtol=2e-2)
    assert (2, 2) not in _conv_input_dilations(vjp, dy)
    assert (2, 2) in _conv_input_dilations(want_vjp, dy)


def _conv_input_dilations(fn, *args) -> set:
    """lhs_dilation of every convolution in fn's jaxpr, nested jaxprs included."""
    found = set()

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "conv_general_dilated":
                found.add(tuple(eqn.params["lhs_dilation"]))
            for sub in jax.core.jaxprs_in_params(eqn.params):
                walk(sub)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return found


@pytest.mark.parametrize("name", ["blur", "down", "up"])
def test_fir_gradients_are_the_adjoint_filters_to_second_order(name):
    """The FIRs' hand-written input gradient (`resample._fir_bwd`): the adjoint of the filter
    (<dy, F x> = <F^T dy, x>), correct to second order (R1 differentiates D's gradient), and one
    pad of dy per axis where autodiff's transpose of the slices padded dy once per tap."""
    fn = {"blur": lambda x: blur2d(x, (2, 1)), "down": downsample2d, "up": upsample2d}[name]
    x = jax.random.normal(jax.random.PRNGKey(14), (2, 9, 10, 3))
    y, vjp = jax.vjp(fn, x)
    dy = jax.random.normal(jax.random.PRNGKey(15), y.shape)
    (dx,) = vjp(dy)
    np.testing.assert_allclose(float(jnp.vdot(dy, y)), float(jnp.vdot(dx, x)), rtol=1e-5)
    check_grads(lambda x: jnp.sum(fn(x) ** 3), (x,), order=2, modes=["rev"], atol=1e-2, rtol=1e-2)
    pads = [e for e in jax.make_jaxpr(vjp)(dy).eqns if e.primitive.name == "pad"]
    assert len(pads) == (3 if name == "up" else 2)  # autodiff's: 8 (9 for "up", whose zero insertion is a pad)


def test_fir_resampling_matches_a_numpy_upfirdn_reference():
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(12), (2, 6, 6, 3)))
    np.testing.assert_allclose(upsample2d(jnp.asarray(x)), _upfirdn_reference(x, 2, 1, 2, 1, 4.0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(downsample2d(jnp.asarray(x)), _upfirdn_reference(x, 1, 2, 1, 1, 1.0), rtol=1e-5, atol=1e-5)
