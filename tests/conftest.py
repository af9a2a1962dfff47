"""Test session set-up: simulate an 8-device host so sharding tests run on a CPU-only machine.

XLA reads the flag once, when the backend starts, so it must be set before jax is imported.
"""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
