"""kernel_impl "auto": measured per machine and shape on first use, cached, one choice for all."""

import json
import os

import jax
import jax.numpy as jnp
import pytest
from flax.core import meta

from gigagan_jax import cpu_convs
from gigagan_jax.checkpoint import abstract_with_shardings
from gigagan_jax.config import load_config
from gigagan_jax.models import kernel_choice
from gigagan_jax.models.build import generator_levels, generator_spec, kernel_probe
from gigagan_jax.models.kernel_choice import Probe, choose, resolve
from gigagan_jax.models.layers import MODCONV_IMPLS, AdaptiveModulatedConv
from gigagan_jax.train.pod_plan import collective_traffic, tree_bytes
from gigagan_jax.train.sharding import batch_sharding, make_mesh, param_shardings, traced_on

FAKE_SECONDS = {"grouped": 0.9, "bank": 0.3, "patches": 0.2, "per_sample": 0.25}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GIGAGAN_JAX_CACHE", str(tmp_path))
    return tmp_path / kernel_choice.CACHE_NAME


class FakeMeasure:
    """Stands in for the timing: counts calls and returns FAKE_SECONDS for the candidates."""

    def __init__(self, seconds=FAKE_SECONDS):
        self.seconds, self.calls = seconds, []

    def __call__(self, probe, impls):
        self.calls.append((probe, tuple(impls)))
        return {i: self.seconds[i] for i in impls}


def probe(objective="train", num_devices=1, batch=8):
    return Probe.of([4, 8, 16], [64, 64, 32], batch, 2, "float32", objective, num_devices)


def test_the_probe_is_the_top_level_within_its_bounds():
    p = Probe.of([4, 8, 16, 32, 64, 128], [512, 512, 512, 512, 256, 128], 512, 8, "bfloat16", "train", 64)
    assert p.layers == ((32, kernel_choice.PROBE_MAX_CHANNELS),) and p.batch == 8 and p.num_devices == 64
    assert Probe.of([8, 16], [32, 32], 6, 2, "float32", "sample", 4).batch == 1  # 6 // 4 per device
    assert Probe.of([64, 128], [64, 32], 4, 2, "float32", "train", 1).layers == ((64, 64),)  # none within 32 px
    levels, channels = [4, 8, 16, 32, 64, 128], [64] * 6
    assert Probe.of(levels, channels, 8, 4, "float32", "sample", 1).layers == ((64, 64),)  # forward only: up to 64 px
    assert Probe.of(levels, channels, 8, 4, "float32", "train", 1).layers == ((32, 64),)
    assert probe().layers == ((16, 32),) and probe(batch=100).batch == kernel_choice.PROBE_MAX_BATCH
    with pytest.raises(ValueError, match="objective must be one of"):
        probe(objective="infer")


def test_a_configs_probe_is_its_generators_top_level():
    tiny = load_config("configs/tiny.py")  # 32 channels at 4, 8, 16 px, batch 8
    assert kernel_probe(tiny, "train", 1) == Probe(8, ((16, 32),), tiny.model.g.num_kernels, "float32", "train", 1)
    up = load_config("configs/upsampler_512.py")  # decoder levels above its 64 px input's bottom
    p = kernel_probe(up, "sample", 8)
    assert p.layers[0][0] == max(r for r in generator_levels(up) if r <= 64) and p.layers[0][1] <= 256
    assert p.batch == min(8, up.train.batch_size // 8) and p.dtype == up.model.dtype == "bfloat16"


def _largest_all_gather(impl: str, mesh) -> tuple[int, int]:
    """(largest all-gathered buffer, largest parameter) in bytes, of one adaptive conv's forward and
    backward compiled with FSDP-split parameters and a batch split over `mesh`."""
    B, H, C = 8, 16, 64  # the activation [8, 16, 16, 64] (512 KiB) and the bank [4, 3, 3, 64, 64] (576 KiB)
    layer = AdaptiveModulatedConv(C, 3, num_kernels=4, impl=impl)
    x, w = jnp.ones((B, H, H, C)), jnp.ones((B, 32))
    boxed = jax.eval_shape(layer.init, jax.random.PRNGKey(0), x, w)
    params = abstract_with_shardings(meta.unbox(boxed), param_shardings(boxed, mesh))
    inputs = [jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=batch_sharding(mesh, a.ndim)) for a in (x, w)]
    loss = lambda p, x, w: jnp.sum(jnp.square(layer.apply(p, x, w)))
    compiled = jax.jit(traced_on(mesh, jax.grad(loss, argnums=(0, 1)))).lower(params, *inputs).compile()
    gathered = collective_traffic(compiled.as_text(), mesh.size)["all-gather"].largest_bytes
    return gathered, max(tree_bytes(leaf) for leaf in jax.tree_util.tree_leaves(params))


def test_under_a_split_batch_the_candidates_are_the_impls_that_gather_only_weights():
    """FSDP means each layer gathers its weights and keeps the activations split. Which
    implementations do is read from the compiled program of one layer over 8 devices: exactly
    those are the candidates when the batch is split; on one device every implementation is."""
    assert probe(num_devices=1).candidates == MODCONV_IMPLS
    mesh = make_mesh((1, 8), ("data", "fsdp"))
    gathers = {impl: _largest_all_gather(impl, mesh) for impl in MODCONV_IMPLS}
    weights_only = tuple(i for i in MODCONV_IMPLS if gathers[i][0] <= gathers[i][1])
    assert probe(num_devices=8).candidates == weights_only == ("bank", "patches"), gathers
    assert set(kernel_choice.MEASURE_ORDER) == set(MODCONV_IMPLS)


def test_the_fastest_is_chosen_measured_once_and_cached_per_machine_and_shape(cache, monkeypatch):
    measure, lines = FakeMeasure(), []
    assert choose(probe(), measure, lines.append) == "patches" and len(measure.calls) == 1
    assert "patches" in lines[0] and str(cache) in lines[0]
    assert choose(probe(), measure, lines.append) == "patches" and len(measure.calls) == 1  # read back
    (record_file,) = cache.iterdir()
    record = json.loads(record_file.read_text())
    assert record["choice"] == "patches" and record["seconds"] == FAKE_SECONDS
    assert record["machine"] == kernel_choice.measured_on() and record["probe"]["batch"] == 8

    assert choose(probe(num_devices=8), measure) == "patches" and measure.calls[-1][1] == probe(num_devices=8).candidates
    choose(probe(objective="sample"), measure)
    choose(probe(batch=4), measure)
    assert len(measure.calls) == 4  # each shape, objective and device count measured on its own
    flags = os.environ.get("XLA_FLAGS", "")
    monkeypatch.setenv("XLA_FLAGS", flags + " --xla_force_host_platform_device_count=3")
    choose(probe(), measure)
    assert len(measure.calls) == 4  # a simulated device count changes no generated code
    monkeypatch.setenv("XLA_FLAGS", flags + " --xla_cpu_enable_fast_math=false")
    choose(probe(), measure)
    assert len(measure.calls) == 5  # other compiler flags: another machine for this purpose
    monkeypatch.setenv(cpu_convs.ENV, "xla" if cpu_convs.choice() == "ynnpack" else "ynnpack")
    choose(probe(), measure)
    assert len(measure.calls) == 6  # the probe compiled for the other conv library (gigagan_jax.cpu_convs)


def test_a_damaged_or_stale_cache_file_is_measured_again(cache):
    measure = FakeMeasure()
    choose(probe(), measure)
    (record_file,) = cache.iterdir()
    record_file.write_text("{not json")
    assert choose(probe(), measure) == "patches" and len(measure.calls) == 2
    assert json.loads(record_file.read_text())["choice"] == "patches"  # replaced
    record_file.write_text(json.dumps({"choice": "per_sample"}))  # not a candidate over 8 devices...
    path = kernel_choice.cache_path(probe(num_devices=8), kernel_choice.measured_on())
    os.replace(record_file, path)  # ...where it sits
    assert choose(probe(num_devices=8), measure) == "patches" and len(measure.calls) == 3


def test_the_first_choice_written_is_every_process_s(cache):
    """Two processes measuring at once may rank close candidates differently; the one written
    first is the one both use, so runs compared bit for bit run one program."""
    other_process = {"choice": "bank", "seconds": {}}

    def measure_while_another_writes(p, impls):
        path = kernel_choice.cache_path(p, kernel_choice.measured_on())
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(other_process, f)
        return FakeMeasure()(p, impls)

    assert choose(probe(), measure_while_another_writes) == "bank"
    assert [f.name for f in cache.iterdir() if f.suffix == ".tmp"] == []


def test_explicit_impls_and_shape_only_builds_measure_nothing(cache):
    measure = FakeMeasure()
    assert resolve("grouped", probe(), measure_fn=measure) == "grouped"
    assert resolve("auto", probe(objective="shapes"), measure_fn=measure) in MODCONV_IMPLS
    assert measure.calls == [] and not cache.exists()
    config = load_config("configs/t2i_64.py")  # paper size: only its parameter shapes are wanted
    assert generator_spec(config, "shapes").kernel_impl in MODCONV_IMPLS and not cache.exists()


def test_the_real_measurement_times_every_candidate_and_avoids_the_slow_path(cache):
    """On XLA:CPU the grouped conv's backward is the slow path (10-20x, BENCHMARKS.md): a real
    measurement must rank it behind the others for training."""
    p = Probe.of([8, 16], [32, 32], 8, 2, "float32", "train", 1)
    seconds = kernel_choice.measure(p, p.candidates)
    assert set(seconds) == set(MODCONV_IMPLS) and all(s > 0 for s in seconds.values())
    assert min(seconds, key=seconds.get) != "grouped", seconds
    assert seconds["grouped"] > 2 * min(seconds.values()), seconds
    lines = []
    assert choose(p, log=lines.append) in ("per_sample", "patches", "bank")
    assert lines and "measured for train" in lines[0]
