"""bf16 compute (config.model.dtype): params, optimiser state and losses stay float32, the convolutions
run in bf16, and 100 training steps of the tiny config follow the float32 run's losses (`slow`: the
two runs cost 135 s of the default suite's worker time on a 2-core AMD EPYC)."""

import collections
import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gigagan_jax.config import load_config
from gigagan_jax.models.build import build_discriminator, build_generator
from gigagan_jax.train.step import GanSteps

B, STEPS = 8, 100


def tiny_steps(dtype: str) -> GanSteps:
    config = load_config("configs/tiny.py")
    config.model.dtype = dtype
    config.loss.r1_interval = 1  # one D executable per dtype: every D step takes R1
    # One implementation for both dtypes: "auto" measures each dtype's probe on its own, and where two
    # candidates time alike (bank and patches here) the dtypes could get different ones.
    config.model.g.kernel_impl = "patches"
    return GanSteps(config, build_generator(config), build_discriminator(config))


def blob_batches(count: int) -> list[dict]:
    """Flat colours with an inverted centre square: images a 16 px G learns within 100 steps."""
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(count):
        images = np.broadcast_to(rng.integers(0, 256, (B, 1, 1, 3)), (B, 16, 16, 3)).copy()
        images[:, 4:12, 4:12] = 255 - images[:, 4:12, 4:12]
        batches.append({"image": jnp.asarray(images, jnp.uint8),
                        "text_features": jnp.asarray(rng.normal(size=(B, 77, 32)), jnp.float32),
                        "eot_index": jnp.arange(B, dtype=jnp.int32) + 3})
    return batches


def train_curve(dtype: str) -> np.ndarray:
    """[STEPS, 2] (d/loss, g/loss) per step from the same init, data and keys."""
    steps = tiny_steps(dtype)
    state = jax.jit(steps.init_state)(jax.random.PRNGKey(0))
    d_step = jax.jit(functools.partial(steps.d_step, with_r1=True), donate_argnums=0)
    g_step = jax.jit(steps.g_step, donate_argnums=0)
    batches, losses = blob_batches(4), []
    for step in range(STEPS):
        key = jax.random.fold_in(jax.random.PRNGKey(1), step)
        state, d_metrics = d_step(state, batches[step % 4], jax.random.fold_in(key, 0))
        state, g_metrics = g_step(state, batches[step % 4], jax.random.fold_in(key, 1))
        assert d_metrics["d/loss"].dtype == g_metrics["g/loss"].dtype == jnp.float32
        losses.append((d_metrics["d/loss"], g_metrics["g/loss"]))
    return np.asarray(jax.device_get(losses))


@pytest.fixture(scope="module")
def curves():
    return {dtype: train_curve(dtype) for dtype in ("float32", "bfloat16")}


def _abstract_step(dtype: str, step: str) -> tuple:
    """(the D + R1 or the G step, its abstract arguments: state, batch, key)."""
    steps = tiny_steps(dtype)
    state = jax.eval_shape(steps.init_state, jax.random.PRNGKey(0))
    batch = jax.eval_shape(lambda: blob_batches(1)[0])
    fn = functools.partial(steps.d_step, with_r1=True) if step == "d" else steps.g_step
    return fn, (state, batch, jax.random.PRNGKey(0))


def _conv_and_dot_dtypes(dtype: str, step: str) -> collections.Counter:
    """(op, 'bf16' | 'f32') counts of the convolutions and dots in the lowered D or G step."""
    fn, args = _abstract_step(dtype, step)
    counts = collections.Counter()
    for line in jax.jit(fn).lower(*args).as_text().splitlines():
        op = re.search(r"stablehlo\.(convolution|dot_general)", line)
        if op:
            counts[(op.group(1), "bf16" if "bf16" in line.rsplit(":", 1)[-1] else "f32")] += 1
    return counts


@pytest.mark.parametrize("step", ["d", "g"])
def test_bf16_runs_every_convolution_in_bf16_and_float32_none(step):
    f32, bf16 = _conv_and_dot_dtypes("float32", step), _conv_and_dot_dtypes("bfloat16", step)
    assert f32[("convolution", "bf16")] == f32[("dot_general", "bf16")] == 0
    assert bf16[("convolution", "f32")] == 0 and bf16[("convolution", "bf16")] == f32[("convolution", "f32")] > 0
    # Dense layers and attention values run in bf16; the demodulation, kernel selection, attention logits
    # and losses stay float32.
    assert 0 < bf16[("dot_general", "bf16")] < f32[("dot_general", "f32")]


@pytest.mark.parametrize("step", ["d", "g"])
def test_bf16_steps_keep_params_optimiser_state_and_g_ema_in_float32(step):
    """What a step returns is fixed when it is traced: every floating leaf of the state it hands
    the next step is float32, whatever the compute dtype."""
    fn, args = _abstract_step("bfloat16", step)
    new, metrics = jax.eval_shape(fn, *args)
    kinds = {leaf.dtype for leaf in jax.tree_util.tree_leaves((new.g_params, new.d_params, new.g_ema, new.g_opt,
                                                               new.d_opt)) if jnp.issubdtype(leaf.dtype, jnp.floating)}
    assert kinds == {jnp.dtype(jnp.float32)}
    assert {m.dtype for m in jax.tree_util.tree_leaves(metrics)} == {jnp.dtype(jnp.float32)}


@pytest.mark.slow
def test_100_steps_in_bf16_follow_the_float32_losses(curves):
    f32, bf16 = curves["float32"], curves["bfloat16"]
    # Training happened: D's loss fell by over a third.
    assert f32[-20:, 0].mean() < 0.67 * f32[0, 0]
    relative = np.abs(bf16 - f32) / np.abs(f32)  # [STEPS, (d, g)]
    print("bf16 vs f32 relative loss gap: first", relative[0], "max", relative.max(0),
          "last-20 means", np.abs(bf16[-20:].mean(0) - f32[-20:].mean(0)) / f32[-20:].mean(0))
    # Measured (d, g) on a 2-core AMD EPYC at XLA -O0: first step 6e-4 / 2e-4, worst step 0.010 / 0.026,
    # last-20 means 6e-5 / 3.8e-3.
    np.testing.assert_array_less(relative[0], 0.005)
    np.testing.assert_array_less(relative.max(0), 0.05)
    np.testing.assert_array_less(np.abs(bf16[-20:].mean(0) - f32[-20:].mean(0)) / f32[-20:].mean(0), 0.02)
