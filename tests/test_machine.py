"""How a measurement names its machine, and the per-machine cache of measured choices."""

import json

import pytest

from gigagan_jax import machine
from gigagan_jax.machine import describe_cpuinfo, read_choice, write_choice


def _cpuinfo(model, flags, cores=2, flags_name="flags"):
    return "".join(f"processor\t: {i}\nmodel name\t: {model}\n{flags_name}\t\t: {flags}\n\n" for i in range(cores))


AVX2 = _cpuinfo("AMD EPYC", "fpu sse sse2 avx avx2 fma")
AVX512 = _cpuinfo("AMD EPYC", "fpu sse sse2 avx avx2 fma avx512f avx512bw avx512_vnni")


def test_the_widest_vector_instructions_are_named():
    """Cloud VMs name AVX-512 and AVX2-only EPYCs alike ("AMD EPYC"); the name must not."""
    assert describe_cpuinfo(AVX2) == "AMD EPYC x2, AVX2"
    assert describe_cpuinfo(AVX512) == "AMD EPYC x2, AVX-512"
    assert describe_cpuinfo(_cpuinfo("Xeon", "avx2 avx512f amx_tile amx_bf16", 4)) == "Xeon x4, AVX-512 + AMX"
    assert describe_cpuinfo(_cpuinfo("Neoverse", "fp asimd sve", 1, "Features")) == "Neoverse x1, SVE"
    assert describe_cpuinfo(_cpuinfo("Old", "fpu sse2")) == "Old x2"
    assert describe_cpuinfo("processor\t: 0\n") is None


def test_cpus_named_alike_with_other_vector_units_are_other_machines(monkeypatch):
    keys = []
    for info in (AVX2, AVX512, AVX2):
        monkeypatch.setattr(machine, "cpu_model", lambda info=info: describe_cpuinfo(info))
        keys.append(json.dumps(machine.machine(), sort_keys=True))
    assert keys[0] != keys[1] and keys[0] == keys[2]


def test_the_first_choice_written_wins_and_a_damaged_file_is_replaced(tmp_path):
    path = str(tmp_path / "cache" / "choice.json")
    assert read_choice(path, ("a", "b")) is None
    assert write_choice(path, {"choice": "a", "seconds": {"a": 1.0}}, ("a", "b")) == "a"
    assert write_choice(path, {"choice": "b"}, ("a", "b")) == "a"  # another process measured first
    record = json.loads(open(path).read())
    assert record["seconds"] == {"a": 1.0} and "measured_at" in record
    assert read_choice(path, ("b",)) is None  # "a" is no longer a candidate: stale
    open(path, "w").write("{not json")
    assert read_choice(path, ("a", "b")) is None
    assert write_choice(path, {"choice": "b"}, ("a", "b")) == "b"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["choice.json"]  # no temporary files left


@pytest.mark.parametrize("flags, expected", [("", ""), ("--xla_force_host_platform_device_count=8", ""),
                                             ("--a=1 --xla_force_host_platform_device_count=3 --b", "--a=1 --b")])
def test_the_simulated_device_count_is_no_compiler_flag(monkeypatch, flags, expected):
    monkeypatch.setenv("XLA_FLAGS", flags)
    assert machine.compiler_flags() == expected
