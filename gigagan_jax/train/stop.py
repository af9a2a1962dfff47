"""When to stop early: SIGTERM (a scheduler's preemption notice) or Ctrl-C, at one step on every host.

One process: a signal handler sets a flag that the loop reads before each step.

Several: the hosts must leave the loop at the same step, or one enters the final save (a
collective) alone and the pod hangs; a signal reaches one host, or all at slightly different
steps. JAX's preemption service agrees on the step: its own SIGTERM handler tells the
coordinator, which picks the step after the furthest any host has reached, and
`reached_preemption_sync_point(step)` turns true on every host at that same step. Ctrl-C is
passed on as SIGTERM, so it takes the same road.
"""

from __future__ import annotations

import os
import signal

import jax
from jax.experimental import multihost_utils


class StopSignal:
    """`with StopSignal() as stop:` ... `if stop.reached(step): save and leave`."""

    def __init__(self):
        self._requested = False
        self._previous = {}
        self._hosts = jax.process_count()

    def __enter__(self):
        if self._hosts == 1:
            handled = {signal.SIGTERM: self._flag, signal.SIGINT: self._flag}
        else:
            if not jax.config.jax_enable_preemption_service:
                raise ValueError("a multi-host run needs JAX's preemption service to agree on a stop step; "
                                 "do not turn off jax_enable_preemption_service")
            handled = {signal.SIGINT: self._as_sigterm}  # SIGTERM stays with JAX's handler
        for sig, handler in handled.items():
            self._previous[sig] = signal.signal(sig, handler)
        return self

    def _flag(self, signum, frame):
        self._requested = True

    @staticmethod
    def _as_sigterm(signum, frame):
        os.kill(os.getpid(), signal.SIGTERM)

    def reached(self, step: int) -> bool:
        """True at the step where this process (and, multi-host, every host) stops. Call it once
        per step, with every step, on every host."""
        if self._hosts == 1:
            return self._requested
        return multihost_utils.reached_preemption_sync_point(step)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
