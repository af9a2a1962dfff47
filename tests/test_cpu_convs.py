"""Who runs a CPU's convolutions: measured once per machine, cached, applied at compile time."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gigagan_jax import cpu_convs, machine
from gigagan_jax.machine import describe_cpuinfo


@pytest.fixture
def measured(tmp_path, monkeypatch):
    """The measured path: no forced choice (conftest pins one for the suite), an empty cache."""
    monkeypatch.delenv(cpu_convs.ENV, raising=False)
    monkeypatch.setenv("GIGAGAN_JAX_CACHE", str(tmp_path))
    monkeypatch.setattr(cpu_convs, "_decided", {})
    return tmp_path / cpu_convs.CACHE_NAME


class FakeMeasure:
    def __init__(self, seconds):
        self.seconds, self.calls = seconds, 0

    def __call__(self):
        self.calls += 1
        return dict(self.seconds)


def test_the_faster_is_measured_once_cached_and_kept_apart_per_machine(measured, monkeypatch):
    fake, lines = FakeMeasure({"ynnpack": 0.3, "xla": 0.2}), []
    assert cpu_convs.choice(fake, lines.append) == "xla" and fake.calls == 1
    assert "xla" in lines[0] and str(measured) in lines[0]
    assert cpu_convs.compiler_options() == {"xla_cpu_experimental_ynn_fusion_type": ""}
    monkeypatch.setattr(cpu_convs, "_decided", {})  # a new process reads the file
    assert cpu_convs.choice(FakeMeasure({"ynnpack": 0.1, "xla": 0.2})) == "xla"
    (record_file,) = measured.iterdir()
    record = json.loads(record_file.read_text())
    assert record["seconds"] == {"ynnpack": 0.3, "xla": 0.2} and record["machine"] == machine.machine()

    avx512 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: avx2 avx512f\n"
    monkeypatch.setattr(machine, "cpu_model", lambda: describe_cpuinfo(avx512))
    other = FakeMeasure({"ynnpack": 0.1, "xla": 0.2})
    assert cpu_convs.choice(other) == "ynnpack" and other.calls == 1  # another CPU: measured anew
    assert cpu_convs.compiler_options() == {}  # XLA's defaults
    assert len(list(measured.iterdir())) == 2


def test_the_environment_decides_without_a_measurement(measured, monkeypatch):
    never = FakeMeasure({})
    for name in cpu_convs.CHOICES:
        monkeypatch.setenv(cpu_convs.ENV, name)
        assert cpu_convs.choice(never) == name
    assert never.calls == 0 and not measured.exists()
    monkeypatch.setenv(cpu_convs.ENV, "onednn")
    with pytest.raises(ValueError, match=r"GIGAGAN_JAX_CPU_CONVS must be one of \['xla', 'ynnpack'\], got 'onednn'"):
        cpu_convs.choice(never)


def test_jit_compiles_with_the_choice_and_both_give_the_same_numbers(measured, monkeypatch):
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 16, 16, 32))  # [B, H, W, C]; smaller ones YNNPACK leaves to XLA
    w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 32, 32))

    def conv(x, w):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    outputs = {}
    for name in cpu_convs.CHOICES:
        monkeypatch.setenv(cpu_convs.ENV, name)
        jitted = cpu_convs.jit(conv)  # decided at its first call, not here
        compiled = jitted.lower(x, w).compile().as_text()
        assert ("__ynn_fusion" in compiled) == (name == "ynnpack"), name
        outputs[name] = jitted(x, w)
    np.testing.assert_allclose(outputs["xla"], outputs["ynnpack"], rtol=1e-5, atol=1e-4)

    monkeypatch.setenv(cpu_convs.ENV, "xla")
    later = cpu_convs.jit(conv)
    monkeypatch.setenv(cpu_convs.ENV, "ynnpack")  # after wrapping, before the first call: the call decides
    assert "__ynn_fusion" in later.lower(x, w).compile().as_text()


def test_the_measurement_times_both_choices(monkeypatch):
    seconds = cpu_convs.measure()
    assert set(seconds) == set(cpu_convs.CHOICES) and all(0 < s < 60 for s in seconds.values())
    monkeypatch.setitem(cpu_convs.CHOICES, "xla", {"xla_cpu_no_such_option": ""})  # a jaxlib without it
    monkeypatch.setattr(cpu_convs, "PROBES", cpu_convs.PROBES[:1])
    seconds = cpu_convs.measure()
    assert seconds["xla"] == float("inf") and 0 < seconds["ynnpack"] < 60


def test_the_wrapper_takes_jits_arguments_as_decorator_and_call():
    @functools.partial(cpu_convs.jit, static_argnames="n")
    def tile(x, n: int):
        return jnp.tile(x, n)

    assert tile(jnp.ones(2), n=3).shape == (6,) and tile.__name__ == "tile"
    assert float(cpu_convs.jit(lambda x: x * 2.0)(jnp.ones(()))) == 2.0
