"""The restart that puts XLA:CPU's per-call buffers in huge pages (gigagan_jax/host_memory.py)."""

import os
import subprocess
import sys
import textwrap

import pytest

from gigagan_jax import host_memory
from gigagan_jax.host_memory import OPT_OUT, TUNABLE, hugepage_tunables, restart_with_hugepages, thp_mode

GLIBC = (2, 36)


def test_the_tunable_is_added_to_what_the_user_set():
    assert hugepage_tunables({}, "madvise", GLIBC) == f"{TUNABLE}=1"
    assert hugepage_tunables({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "madvise", GLIBC) == (
        f"glibc.malloc.arena_max=2:{TUNABLE}=1")


@pytest.mark.parametrize("environ, mode, glibc", [
    ({"GLIBC_TUNABLES": f"{TUNABLE}=0"}, "madvise", GLIBC),  # the user's own choice, and the restart's loop guard
    ({OPT_OUT: "0"}, "madvise", GLIBC),
    ({}, "always", GLIBC),  # huge pages come unasked
    ({}, "never", GLIBC),  # and not at all
    ({}, None, GLIBC),  # no such kernel setting (not Linux, or no THP)
    ({}, "madvise", (2, 31)),  # a glibc without the tunable
    ({}, "madvise", None),  # not glibc
])
def test_no_restart_where_it_would_change_nothing(environ, mode, glibc):
    assert hugepage_tunables(environ, mode, glibc) is None


def test_the_kernel_mode_is_the_bracketed_word(tmp_path):
    path = tmp_path / "enabled"
    path.write_text("always [madvise] never\n")
    assert thp_mode(str(path)) == "madvise"
    assert thp_mode(str(tmp_path / "missing")) is None


def test_restart_runs_the_same_command_with_the_tunable(monkeypatch):
    monkeypatch.setattr(host_memory, "thp_mode", lambda: "madvise")
    monkeypatch.setattr(host_memory, "glibc_version", lambda: GLIBC)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    monkeypatch.delenv(OPT_OUT, raising=False)
    calls = []
    restart_with_hugepages(["python", "-m", "gigagan_jax.eval", "--x", "1"], execve=lambda *a: calls.append(a))
    (executable, argv, env), = calls
    assert executable == sys.executable and argv == [sys.executable, "-m", "gigagan_jax.eval", "--x", "1"]
    assert env["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{TUNABLE}=1" and env["PATH"] == os.environ["PATH"]

    calls.clear()
    monkeypatch.setenv(OPT_OUT, "0")
    restart_with_hugepages(["python", "x.py"], execve=lambda *a: calls.append(a))
    assert calls == []


_CHILD = textwrap.dedent("""
    import os, resource, sys
    from gigagan_jax.host_memory import restart_with_hugepages
    print("started", flush=True)
    restart_with_hugepages()
    import ctypes
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    ctypes.memset(libc.malloc(256 << 20), 1, 256 << 20)  # 256 MiB from malloc, as XLA:CPU's are (numpy
    # would advise huge pages itself), touched
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    print(sys.argv[1:], os.environ.get("GLIBC_TUNABLES", ""), faults)
""")


@pytest.mark.skipif(hugepage_tunables({}, thp_mode(), host_memory.glibc_version()) is None,
                    reason="needs Linux, glibc >= 2.35 and transparent huge pages in madvise mode")
def test_a_restarted_process_faults_its_buffers_in_huge_pages(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def run(**extra):  # -> (lines printed "started", argv, GLIBC_TUNABLES, page faults)
        lines = subprocess.run([sys.executable, str(script), "a", "--b=1"], env={**env, **extra},
                               capture_output=True, text=True, check=True).stdout.splitlines()
        args, tunables, faults = lines[-1].rsplit(" ", 2)
        return lines.count("started"), args, tunables, int(faults)

    starts, args, tunables, faults = run()
    assert starts == 2 and args == "['a', '--b=1']" and tunables == f"{TUNABLE}=1"  # ran again, restarted
    assert faults < 65536 // 8  # in 4 KiB pages the block takes 65536 faults

    starts, args, tunables, faults = run(**{OPT_OUT: "0"})
    assert starts == 1 and args == "['a', '--b=1']" and tunables == ""
    assert faults > 60000  # the same block in 4 KiB pages: the check above can fail
