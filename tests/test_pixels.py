"""The one pixel convention: uint8 [0, 255] <-> float [-1, 1], on numpy and jax arrays alike."""

import jax
import jax.numpy as jnp
import numpy as np

from gigagan_jax.pixels import area_downsample, to_signed, to_uint8


def test_to_signed_maps_the_byte_range_and_keeps_the_array_kind():
    x = np.array([[0, 255, 128]], np.uint8)
    out = to_signed(x)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_allclose(out, [[-1.0, 1.0, 128 / 127.5 - 1.0]], rtol=0, atol=1e-7)
    jax_out = to_signed(jnp.asarray(x))
    assert isinstance(jax_out, jax.Array)
    np.testing.assert_array_equal(np.asarray(jax_out), out)
    assert to_signed(np.array([0.25], np.float64)).dtype == np.float32  # floats pass through
    traced = jax.jit(to_signed)(jnp.asarray(x))  # inside jit the tracer takes the jax path
    assert traced.dtype == jnp.float32  # XLA may fold the division into a multiply: within one ulp
    np.testing.assert_allclose(np.asarray(traced), out, rtol=0, atol=1.2e-7)


def test_to_uint8_inverts_to_signed_and_clips():
    x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    np.testing.assert_array_equal(to_uint8(to_signed(x)), x)
    np.testing.assert_array_equal(to_uint8(np.array([-3.0, 3.0])), [0, 255])


def test_area_downsample_averages_blocks():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    np.testing.assert_allclose(area_downsample(x, 2)[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])
