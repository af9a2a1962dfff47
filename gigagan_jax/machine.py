"""What a speed measurement depends on, and a per-machine cache of the choices measured.

Machines of one kind differ ~3x in speed, and what is fastest on one (an XLA:CPU library, an
adaptive conv implementation) loses on another, so such choices are measured on first use and
cached under `$GIGAGAN_JAX_CACHE/<name>/`, keyed by `machine()`: the backend, the CPU with its
vector instructions, the software and the compiler flags.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import re
import sys
import tempfile
import time
from typing import Callable, Optional, Sequence

import jax

# Widest first; x86 names from the kernel's `flags`, Arm's from `Features`.
VECTOR_ISAS = (
    ("AVX-512 + AMX", lambda f: "amx_tile" in f and "avx512f" in f),
    ("AVX-512", lambda f: "avx512f" in f),
    ("AVX2", lambda f: "avx2" in f),
    ("AVX", lambda f: "avx" in f),
    ("SVE", lambda f: "sve" in f),
    ("NEON", lambda f: "asimd" in f),
)


def machine() -> dict:
    """What a measured choice depends on besides the shape: backend, device, CPU, software, flags."""
    device = jax.devices()[0]
    return {"backend": jax.default_backend(), "device_kind": device.device_kind, "cpu": cpu_model(),
            "threads": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "jax": jax.__version__, "jaxlib": importlib.metadata.version("jaxlib"),
            "xla_flags": compiler_flags(), "python": sys.version.split()[0]}


def compiler_flags() -> str:
    """XLA_FLAGS without the simulated device count, which changes no generated code."""
    return " ".join(f for f in os.environ.get("XLA_FLAGS", "").split()
                    if not f.startswith("--xla_force_host_platform_device_count"))


def cpu_model() -> str:
    """'<model name> x<logical cores>, <widest vector ISA>' (Linux /proc/cpuinfo, else `platform`):
    every measurement names the machine it was made on."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            described = describe_cpuinfo(f.read())
        if described:
            return described
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_cpuinfo(cpuinfo: str) -> Optional[str]:
    """The model name, the logical cores and the widest vector instructions of a /proc/cpuinfo.

    A virtual machine often names only the vendor ("AMD EPYC") for CPUs with AVX-512 and without:
    XLA generates different code for them and they ran the test suite 2x apart, so a choice cached
    on one (a home folder shared by a cluster's nodes) must not be read on the other."""
    names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    if not names:
        return None
    flag_lines = re.findall(r"^(?:flags|Features)\s*:\s*(.*)$", cpuinfo, re.M)
    flags = set(flag_lines[0].split()) if flag_lines else set()
    isa = next((label for label, present in VECTOR_ISAS if present(flags)), None)
    return f"{names[0].strip()} x{len(names)}" + (f", {isa}" if isa else "")


def timed(call: Callable[[], object]) -> float:
    """Wall seconds of one call of `call()`, waited for."""
    t0 = time.perf_counter()
    jax.block_until_ready(call())
    return time.perf_counter() - t0


def choice_file(folder: str, key: dict) -> str:
    """The cache file in `folder` of a choice measured for `key` (the machine, what was measured)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return os.path.join(folder, digest + ".json")


def read_choice(path: str, choices: Sequence[str]) -> Optional[str]:
    """The cached choice at `path` when it is one of `choices`; None when absent, damaged or stale."""
    try:
        with open(path, encoding="utf-8") as f:
            choice = json.load(f).get("choice")
    except (OSError, ValueError, AttributeError):
        return None  # absent or damaged: measured again
    return choice if choice in choices else None


def write_choice(path: str, record: dict, choices: Sequence[str]) -> str:
    """Cache `record` (its "choice", and what it was measured on) and return the choice every
    process on this machine will use: the first one written wins (processes measuring at once may
    rank close candidates differently, and two runs compared bit for bit must run one program).
    A damaged file is replaced. A cache that cannot be written costs only a measurement next time."""
    record = {**record, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
        try:
            os.link(tmp, path)  # fails when another process wrote first
        except FileExistsError:
            if read_choice(path, choices) is None:
                os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    except OSError:
        return record["choice"]
    return read_choice(path, choices) or record["choice"]
