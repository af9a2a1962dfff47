"""Test session set-up: simulate an 8-device host so sharding tests run on a CPU-only machine.

XLA reads the flag once, when the backend starts, so it must be set before jax is imported.
"""

import os

# The suite is dominated by compiling small programs: XLA:CPU's backend at -O0 compiles the tiny
# D/G steps in about half the time (d_step 41 -> 25 s on a 2-core AMD EPYC) for steps that run
# 1.5-2x slower, a trade every test here wins; the tests' numeric tolerances held at it.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# XLA:CPU's default conv library (YNNPACK) for every test: the suite's compile times and numbers
# then do not hang on a per-machine measurement (gigagan_jax.cpu_convs; tests/test_cpu_convs.py
# measures and applies both).
os.environ.setdefault("GIGAGAN_JAX_CPU_CONVS", "ynnpack")

# Compiled executables persist across the tests' train/sample subprocesses of one session.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"), "gigagan_jax_test_xla_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# Small CLIPs cached for reuse (gigagan_jax.workdir.user_cache_dir): one folder per test run, shared
# by its xdist workers, never the user's ~/.cache.
os.environ["GIGAGAN_JAX_CACHE"] = os.path.join(
    os.environ.get("TMPDIR", "/tmp"), f"gigagan_jax_test_cache_{os.environ.get('PYTEST_XDIST_TESTRUNUID', os.getpid())}")

# The commands' huge-page malloc (gigagan_jax.host_memory) for the xdist workers and the tests'
# subprocesses, which start after this: they run as a user's command would, and never restart.
from gigagan_jax.host_memory import tunables_for_this_process  # noqa: E402

_tunables = tunables_for_this_process()
if _tunables:
    os.environ["GLIBC_TUNABLES"] = _tunables

import pytest  # noqa: E402  (after the environment above is set)


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    """A random CLIP saved in the Hugging Face layout, 32-wide text tokens (configs/tiny.py)."""
    from clip_fixtures import save_tiny_clip

    return save_tiny_clip(str(tmp_path_factory.mktemp("clip") / "tiny"), image_size=16)
