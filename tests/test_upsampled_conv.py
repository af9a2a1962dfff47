"""The up-conv as a transposed conv then the low-pass (models.upsampled_conv) equals
conv3x3(upsample2d(x)), in value and gradients, for every way the layers apply a kernel."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import meta

from gigagan_jax.models.layers import MODCONV_IMPLS, PER_SAMPLE_CONVS, AdaptiveModulatedConv, conv2d
from gigagan_jax.models.resample import upsample2d
from gigagan_jax.models import upsampled_conv as upsampled_conv_module
from gigagan_jax.models.upsampled_conv import upsampled_conv

SIZES = [(3, 5), (1, 1)]  # odd and non-square, and one pixel (every output an edge): the border terms' cases


def _reference(x, kernel):
    """conv3x3 SAME over upsample2d(x), one sample at a time for per-sample kernels."""
    u = upsample2d(x)
    if kernel.ndim == 4:
        return conv2d(u, kernel)
    return jnp.stack([conv2d(u[i:i + 1], kernel[i])[0] for i in range(x.shape[0])])


def _inputs(size, per_sample):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, *size, 3))
    shape = (2, 3, 3, 3, 5) if per_sample else (3, 3, 3, 5)
    return x, jax.random.normal(jax.random.PRNGKey(1), shape)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("conv", ["shared", *PER_SAMPLE_CONVS])
def test_upsampled_conv_equals_the_conv_of_the_upsampled_image(size, conv):
    x, kernel = _inputs(size, per_sample=conv != "shared")
    fn = conv2d if conv == "shared" else PER_SAMPLE_CONVS[conv]
    y = jax.jit(upsampled_conv, static_argnums=2)(x, kernel, fn)
    assert y.shape == (2, 2 * size[0], 2 * size[1], 5)
    np.testing.assert_allclose(y, jax.jit(_reference)(x, kernel), rtol=1e-5, atol=1e-5)

    def grads(f):  # of a random projection, with respect to the image and the kernel (compiled: op by op is slower)
        r = jax.random.normal(jax.random.PRNGKey(2), y.shape)
        return jax.jit(jax.grad(lambda x, k: jnp.sum(f(x, k) * r), argnums=(0, 1)))(x, kernel)

    for got, want in zip(grads(lambda x, k: upsampled_conv(x, k, fn)), grads(_reference)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_without_its_border_terms_the_edges_would_differ(monkeypatch):
    """What _subtract_border_terms corrects is real: the low-pass after the conv sees the
    upsampled image's spill past the edges. Without the border terms every edge output moves
    and no interior one does (the test above can fail)."""
    x, kernel = _inputs((4, 4), per_sample=False)
    monkeypatch.setattr(upsampled_conv_module, "_subtract_border_terms", lambda y, x, kernel: y)
    gap = np.abs(np.asarray(jax.jit(lambda x, k: upsampled_conv(x, k, conv2d) - _reference(x, k))(x, kernel))).max(-1)  # [B, 8, 8]
    edge = np.zeros((8, 8), bool)
    edge[[0, -1]] = True
    edge[:, [0, -1]] = True
    assert gap[:, edge].min() > 1e-3 and gap[:, ~edge].max() < 1e-5


@pytest.mark.parametrize("impl", MODCONV_IMPLS)
def test_an_upsampling_modulated_conv_equals_its_conv_over_the_upsampled_input(impl):
    """AdaptiveModulatedConv(up=True) against the same layer, same parameters, over upsample2d(x):
    outputs and the gradients of every parameter and of x agree."""
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 5, 4))
    w = jax.random.normal(jax.random.PRNGKey(1), (2, 8))
    up = AdaptiveModulatedConv(6, 3, num_kernels=3, up=True, impl=impl)
    plain = AdaptiveModulatedConv(6, 3, num_kernels=3, impl=impl)
    params = meta.unbox(up.init(jax.random.PRNGKey(2), x, w))
    params = jax.tree_util.tree_map(lambda p: p + 0.3 * jax.random.normal(jax.random.PRNGKey(3), p.shape), params)
    forms = {"up": lambda p, x: up.apply(p, x, w), "plain": lambda p, x: plain.apply(p, upsample2d(x), w)}
    y = jax.jit(forms["up"])(params, x)
    assert y.shape == (2, 6, 10, 6)
    np.testing.assert_allclose(y, jax.jit(forms["plain"])(params, x), rtol=1e-5, atol=1e-5)
    r = jax.random.normal(jax.random.PRNGKey(4), y.shape)
    got, want = (jax.jit(jax.grad(lambda p, x: jnp.sum(forms[f](p, x) * r), argnums=(0, 1)))(params, x)
                 for f in ("up", "plain"))
    for g, e in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", ["per_sample", "bank"])
def test_an_upsampling_modulated_conv_convolves_at_the_input_resolution(impl):
    """Its convolutions (forward and backward) produce nothing at 2H x 2W: the 36 products per
    input pixel of a conv at 2x are 16 at 1x. The layer before this module convolved at 2x."""
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 4))
    w = jax.random.normal(jax.random.PRNGKey(1), (2, 8))
    layer = AdaptiveModulatedConv(4, 3, num_kernels=2, up=True, impl=impl)
    params = meta.unbox(layer.init(jax.random.PRNGKey(2), x, w))
    grad = jax.grad(lambda p, x: jnp.sum(layer.apply(p, x, w) ** 2), argnums=(0, 1))
    conv_shapes = [e.outvars[0].aval.shape for e in _equations(jax.make_jaxpr(grad)(params, x).jaxpr)
                   if e.primitive.name == "conv_general_dilated"]
    assert conv_shapes and all(16 not in s[1:3] for s in conv_shapes)


def test_an_upsampling_modulated_conv_takes_only_a_3x3_kernel():
    x, w = jnp.zeros((1, 4, 4, 2)), jnp.zeros((1, 8))
    with pytest.raises(ValueError, match="3x3"):
        AdaptiveModulatedConv(2, 1, up=True).init(jax.random.PRNGKey(0), x, w)


def _equations(jaxpr):
    """Every equation of a jaxpr and of the jaxprs nested in it (lax.map's body, custom_vjp's rules)."""
    for eqn in jaxpr.eqns:
        yield eqn
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _equations(inner)


def test_a_1x1_conv_commutes_with_upsample2d():
    """The upsampler's shortcut convolves before upsampling (a quarter of the products): a 1x1
    kernel has no spatial extent, so the two orders agree at the borders too."""
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 5, 4))
    kernel = jax.random.normal(jax.random.PRNGKey(1), (1, 1, 4, 6))
    np.testing.assert_allclose(upsample2d(conv2d(x, kernel)), conv2d(upsample2d(x), kernel), rtol=1e-5, atol=1e-5)
