"""One program on many hosts: joining the cluster, and the few decisions every host must share.

JAX on a pod is multi-controller: every host runs this same program, and every jitted
computation over arrays sharded across hosts must be entered by all of them, in the same order.
So a choice that can differ between hosts (a checkpoint's verdict, whether a background save has
finished, whether to stop) is made once and shared before anyone acts on it; otherwise one host
enters a collective the others never reach and the pod hangs. On one process every function here
is the identity, at no cost.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import numpy as np

_TEXT_BYTES = 4096  # a shared message (an error line) is cut to this many UTF-8 bytes


class ClusterError(RuntimeError):
    """The distributed runtime could not start (no cluster found, coordinator unreachable)."""


def join_cluster(train_config) -> None:
    """`jax.distributed.initialize()` with the config's explicit coordinator / process count /
    process id where set (auto-detected on TPU pods, SLURM and Open MPI otherwise). Must run
    before anything touches a device; a second call is a no-op."""
    if jax.distributed.is_initialized():
        return
    explicit = {}
    if train_config.coordinator_address:
        explicit["coordinator_address"] = train_config.coordinator_address
    if train_config.num_processes > 0:
        explicit["num_processes"] = int(train_config.num_processes)
    if train_config.process_id >= 0:
        explicit["process_id"] = int(train_config.process_id)
    try:
        jax.distributed.initialize(**explicit)
    except (ValueError, RuntimeError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ClusterError(
            f"config.train.distributed=True but JAX found no cluster to join ({reason}); launch under a "
            "TPU pod, SLURM or Open MPI, or set config.train.coordinator_address, num_processes and "
            "process_id") from None


def is_main() -> bool:
    """Process 0: the one that writes files, prints progress and decides shared questions."""
    return jax.process_index() == 0


def all_hosts(flag: bool) -> bool:
    """True when `flag` is true on every host (a collective: every host must call it)."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(np.all(multihost_utils.process_allgather(np.asarray([flag], np.bool_))))


def main_host_text(text: str) -> str:
    """Process 0's `text` on every host (a collective); the others' arguments are ignored."""
    if jax.process_count() == 1:
        return text
    from jax.experimental import multihost_utils

    buffer = np.zeros(_TEXT_BYTES, np.uint8)
    if is_main():
        raw = text.encode("utf-8")[:_TEXT_BYTES]
        buffer[:len(raw)] = np.frombuffer(raw, np.uint8)
    shared = np.asarray(multihost_utils.broadcast_one_to_all(buffer))
    return bytes(shared[shared != 0]).decode("utf-8", errors="replace")


def main_host_int(value: int) -> int:
    """Process 0's `value` on every host (a collective)."""
    if jax.process_count() == 1:
        return int(value)
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.asarray(value, np.int64)))


def main_first(name: str, fn: Callable[[], Any], timeout_s: int = 24 * 3600) -> None:
    """Run `fn` on process 0 alone while the others wait at barrier `name` (preparing a file that
    every host then reads). Its outcome is shared: when it raises, process 0 re-raises and every
    other host raises ValueError with the same message, instead of waiting forever."""
    if jax.process_count() == 1:
        fn()
        return
    error: Optional[BaseException] = None
    if is_main():
        try:
            fn()
        except Exception as e:  # shared below, then re-raised
            error = e
    barrier(name, timeout_s)
    message = main_host_text("" if error is None else str(error) or type(error).__name__)
    if error is not None:
        raise error
    if message:
        raise ValueError(message)


def barrier(name: str, timeout_s: int = 3600) -> None:
    """Wait until every host reaches `name` (e.g. while process 0 writes a file all then read).
    Goes through the coordination service, so a long wait (minutes of work on process 0) is
    not a device collective that can time out."""
    if jax.process_count() == 1:
        return
    import orbax.checkpoint as ocp

    ocp.multihost.sync_global_processes(name, timeout=timeout_s)
