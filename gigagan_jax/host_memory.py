"""XLA:CPU's per-call buffers in 2 MiB pages: a command restarts itself once with glibc's malloc
told to ask the kernel for transparent huge pages.

XLA:CPU allocates an executable's temporaries afresh on every call (375 MiB for sampling 64
images at configs/bench64.py), from a worker thread's malloc arena, which maps a block that large
anew and unmaps it when freed. Every call then faults the block in 4 KiB at a time: ~96,000
page faults and 0.16 s of kernel time per sampling call on a 2-core EPYC, ~70,000-80,000 per D or
G step. glibc's `glibc.malloc.hugetlb=1` makes malloc advise 2 MiB pages for what it maps, which
the kernel honours where its transparent huge pages are in "madvise" mode (Debian's and
Ubuntu's default): a few hundred faults (BENCHMARKS.md). glibc reads its tunables once, when
the process starts, hence the restart. GIGAGAN_JAX_HUGEPAGES=0 leaves malloc as it is, and a
GLIBC_TUNABLES that names the tunable already is the user's choice, kept.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Mapping, Optional, Sequence

TUNABLE = "glibc.malloc.hugetlb"
OPT_OUT = "GIGAGAN_JAX_HUGEPAGES"  # "0": no restart
THP_MODE_FILE = "/sys/kernel/mm/transparent_hugepage/enabled"
MIN_GLIBC = (2, 35)  # the first glibc with the tunable


def thp_mode(path: str = THP_MODE_FILE) -> Optional[str]:
    """The kernel's transparent-huge-page mode ("always", "madvise" or "never"), None if unknown."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    chosen = [word[1:-1] for word in text.split() if word.startswith("[") and word.endswith("]")]
    return chosen[0] if chosen else None


def glibc_version() -> Optional[tuple[int, int]]:
    """(major, minor) of the C library if it is glibc, else None (musl, macOS, Windows)."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
        major, minor = version.split(".")[:2]
        return (int(major), int(minor)) if name == "glibc" else None
    except (AttributeError, OSError, ValueError):
        return None


def hugepage_tunables(environ: Mapping[str, str], mode: Optional[str],
                      glibc: Optional[tuple[int, int]]) -> Optional[str]:
    """The GLIBC_TUNABLES a restart should run with, or None when a restart would change nothing:
    opted out, the tunable already set, glibc without it, or huge pages the kernel would not give
    on advice ("never") or gives unasked ("always")."""
    current = environ.get("GLIBC_TUNABLES", "")
    if (environ.get(OPT_OUT, "1") == "0" or TUNABLE in current or mode != "madvise"
            or glibc is None or glibc < MIN_GLIBC):
        return None
    return f"{current}:{TUNABLE}=1" if current else f"{TUNABLE}=1"


def tunables_for_this_process() -> Optional[str]:
    """hugepage_tunables for this process's environment, kernel and C library (None off Linux:
    there is no THP mode to read)."""
    return hugepage_tunables(os.environ, thp_mode(), glibc_version())


def restart_with_hugepages(argv: Optional[Sequence[str]] = None,
                           execve: Callable[[str, list, dict], None] = os.execve) -> None:
    """Replace this process by the same command with huge pages advised, where that changes
    anything (hugepage_tunables); else return. Call it first thing in a command, before its
    imports take seconds: what ran before the restart runs again."""
    tunables = tunables_for_this_process()
    if tunables is None:
        return
    argv = list(sys.orig_argv if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):  # what was printed before the restart is not lost with it
        stream.flush()
    execve(sys.executable, [sys.executable, *argv[1:]], {**os.environ, "GLIBC_TUNABLES": tunables})
