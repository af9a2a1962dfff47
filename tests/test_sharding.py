"""FSDP over a fake 8-device CPU mesh: params really split, outputs equal to one device."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax.core import meta
from jax.sharding import PartitionSpec

from gigagan_jax.config import load_config
from gigagan_jax.models.build import build_generator
from gigagan_jax.models.generator import init_generator
from gigagan_jax.train.sharding import batch_sharding, logical_to_spec, make_mesh, param_shardings


def test_logical_rules_fall_back_to_replication_when_not_divisible():
    mesh = make_mesh((1, 8), ("data", "fsdp"))
    assert logical_to_spec(("embed", "mlp"), (32, 64), mesh) == PartitionSpec(None, "fsdp")
    assert logical_to_spec(("embed", "mlp"), (32, 3), mesh) == PartitionSpec(None, None)
    assert logical_to_spec(("batch", None), (16, 5), mesh) == PartitionSpec(("data", "fsdp"), None)


def test_generator_fsdp_sharded_equals_unsharded():
    assert jax.device_count() == 8, "tests/conftest.py should simulate 8 devices"
    config = load_config("configs/tiny.py")
    generator = build_generator(config)
    spec = generator.spec
    init = functools.partial(init_generator, generator, batch=8)
    mesh = make_mesh((2, 4), ("data", "fsdp"))
    boxed_abstract = jax.eval_shape(init, jax.random.PRNGKey(0))
    shardings = param_shardings(boxed_abstract, mesh)
    sharded_params = jax.jit(lambda k: meta.unbox(init(k)), out_shardings=shardings)(jax.random.PRNGKey(0))
    plain_params = meta.unbox(jax.jit(init)(jax.random.PRNGKey(0)))

    # Large conv kernels are split over fsdp: each device holds a quarter of the output channels.
    kernel = sharded_params["params"]["synthesis_network"]["b16"]["conv0"]["conv"]["kernel"]
    assert kernel.sharding.spec == PartitionSpec(None, None, None, None, "fsdp")
    assert kernel.addressable_shards[0].data.shape[-1] == kernel.shape[-1] // 4

    z = jax.random.normal(jax.random.PRNGKey(1), (8, spec.z_dim))
    feats = jax.random.normal(jax.random.PRNGKey(2), (8, spec.text_len, spec.text_encoder_dim))
    eot = jnp.arange(8, dtype=jnp.int32) + 2

    def sample(params, z, feats, eot):
        return generator.apply(params, z, feats, eot, noise_mode="none")

    reference = jax.jit(sample)(plain_params, z, feats, eot)
    inputs = (z, feats, eot)
    input_shardings = tuple(batch_sharding(mesh, a.ndim) for a in inputs)
    sharded = jax.jit(sample, in_shardings=(shardings, *input_shardings))(
        sharded_params, *(jax.device_put(a, s) for a, s in zip(inputs, input_shardings)))
    for ref, out in zip(reference, sharded):
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
