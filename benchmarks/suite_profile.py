"""Where the test suite's time goes: a pytest plugin that splits each test's wall time into
JAX tracing, lowering, XLA compilation (or a persistent-cache read) and the rest (running,
subprocesses, Python), and counts op-by-op ("eager") compilations apart from whole programs.

    python -m pytest -p benchmarks.suite_profile [the suite's usual arguments]
    python -m benchmarks.suite_profile runs/suite_profile   # the summary of a finished run

Each xdist worker writes `<dir>/<worker>.json` (dir: $SUITE_PROFILE_DIR, default
/tmp/suite_profile); the summary adds the workers up per test file and over the suite. JAX's
monitoring events are read in the pytest process only: a test's train.py / sample.py
subprocesses fall under "rest".
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time

EVENTS = {"/jax/core/compile/jaxpr_trace_duration": "trace",
          "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
          "/jax/core/compile/backend_compile_duration": "compile"}
OUT_DIR = os.environ.get("SUITE_PROFILE_DIR", "/tmp/suite_profile")
# A program JAX dispatches op by op is named after its primitive; whole programs carry their
# function's name. Primitive and jax.numpy names are lower case words that jax.lax and jax.numpy
# export (read at configure time: jax is imported only after the suite's conftest has set its
# environment).
_PRIMITIVES: set[str] = set()

_current: dict | None = None  # the running test's seconds per kind, from its first setup on
_started = 0.0
_records: dict[str, dict] = {}


def _is_eager(fun_name: str) -> bool:
    """`jit(multiply)`, `jit(_reduce_sum)`, `jit(_where)`: one op of code that ran outside any jit."""
    name = fun_name.removeprefix("jit(").removesuffix(")").lstrip("_")
    return name in _PRIMITIVES or name.removeprefix("reduce_") in _PRIMITIVES


def _listener(event: str, seconds: float, **kwargs) -> None:
    kind = EVENTS.get(event)
    if kind is None or _current is None:
        return
    _current[kind] += seconds
    if kind == "compile":
        name = str(kwargs.get("fun_name", "?"))
        if _is_eager(name):
            _current["eager_compiles"] += 1
            _current["eager_compile"] += seconds
        else:
            _current["programs"][name] = _current["programs"].get(name, 0.0) + seconds


def pytest_configure(config):
    import jax
    from jax import monitoring

    _PRIMITIVES.update(name for module in (jax.lax, jax.numpy) for name in dir(module)
                       if name.islower() and not name.startswith("_"))
    monitoring.register_event_duration_secs_listener(_listener)


def pytest_runtest_protocol(item, nextitem):
    """Open one test's record, for its setup, call and teardown (a module fixture's cost lands on
    the first test that asks for it)."""
    global _current, _started
    _current = collections.defaultdict(float, programs={}, eager_compiles=0)
    _started = time.perf_counter()
    return None  # pytest's own protocol runs the test


def pytest_runtest_logfinish(nodeid, location):
    global _current
    if _current is None:
        return
    _records[nodeid] = {**_current, "wall": time.perf_counter() - _started}
    _current = None


def pytest_unconfigure(config):
    if not _records:
        return
    os.makedirs(OUT_DIR, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(os.path.join(OUT_DIR, f"{worker}.json"), "w") as f:
        json.dump(_records, f)


def summarise(directory: str, top: int = 25) -> str:
    records = {}
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json"):
            with open(os.path.join(directory, name)) as f:
                records.update(json.load(f))
    fields = ("wall", "trace", "lower", "compile", "eager_compile")
    per_file = collections.defaultdict(lambda: collections.defaultdict(float))
    programs = collections.Counter()
    for nodeid, r in records.items():
        row = per_file[nodeid.split("::")[0]]
        for k in fields:
            row[k] += r.get(k, 0.0)
        row["eager_compiles"] += r.get("eager_compiles", 0)
        for prog, s in r.get("programs", {}).items():
            programs[prog] += s
    total = {k: sum(row[k] for row in per_file.values()) for k in (*fields, "eager_compiles")}
    lines = [f"{len(records)} tests; seconds summed over workers: wall {total['wall']:.0f}, trace {total['trace']:.0f}, "
             f"lower {total['lower']:.0f}, compile {total['compile']:.0f} (of which op-by-op "
             f"{total['eager_compile']:.0f} in {int(total['eager_compiles'])} programs), rest "
             f"{total['wall'] - total['trace'] - total['lower'] - total['compile']:.0f}",
             f"{'file':<48} {'wall':>7} {'trace':>6} {'lower':>6} {'compile':>8} {'eager':>6} {'#eager':>7}"]
    for path, row in sorted(per_file.items(), key=lambda kv: -kv[1]["wall"])[:top]:
        lines.append(f"{path:<48} {row['wall']:>7.0f} {row['trace']:>6.0f} {row['lower']:>6.0f} {row['compile']:>8.0f} "
                     f"{row['eager_compile']:>6.0f} {int(row['eager_compiles']):>7}")
    lines.append("programs by compile seconds: " + ", ".join(f"{p} {s:.0f}" for p, s in programs.most_common(15)))
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarise(sys.argv[1] if len(sys.argv) > 1 else OUT_DIR))
