"""A wall-clock budget for one training run (`config.train.time_budget_minutes`).

A user with 30 minutes wants a checkpoint and samples at minute 30, on whatever machine. The
budget starts when `train()` does. A small CLIP that must be trained gets
`config.clip.budget_share` of it and sizes its own steps from its measured pace
(`train_small_clip(seconds=...)`). The GAN gets the rest: once every step executable has been
compiled (the warm step, `warm_step`), the loop times its steps and sets the last one so that
the run, with its final checkpoint and sample grid (the reserve), ends before the deadline; it
re-plans one R1 interval after the warm step and then at every log step, as the pace settles.
On several hosts process 0's plan is every host's, so all of them stop at the same step.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Optional

from gigagan_jax.hosts import main_host_int

# Kept back from the GAN's share besides the measured sample grid: the final checkpoint (saved
# in the background, waited for at the end) and the rounding of a pace measured over few steps.
MIN_RESERVE_S = 10.0
RESERVE_SHARE = 0.02


class TimeBudget:
    """Seconds left before a deadline set `minutes` after construction (`clock` for tests)."""

    def __init__(self, minutes: float, clock: Callable[[], float] = time.monotonic):
        if not (math.isfinite(minutes) and minutes > 0):
            raise ValueError(f"a time budget must be > 0 minutes, got {minutes}")
        self.seconds = 60.0 * minutes
        self.clock = clock
        self.start = clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()

    def share(self, fraction: float) -> float:
        return fraction * self.seconds


def warm_step(start: int, r1_interval: int) -> int:
    """The first step that starts with every step executable compiled: the G step and an R1 D
    step and (with lazy R1) a plain D step have all run once since `start`."""
    first_r1 = -(-start // r1_interval) * r1_interval
    first_plain = first_r1 if r1_interval == 1 else (start if start % r1_interval else start + 1)
    return max(first_r1, first_plain) + 1


def planned_end(done: int, seconds_per_step: float, seconds_left: float, reserve: float, num_steps: int) -> int:
    """The step count to end at: as many steps after `done` as fit in `seconds_left - reserve`
    at the measured pace, never past `num_steps`, never before `done`."""
    affordable = math.floor(max(0.0, seconds_left - reserve) / seconds_per_step)
    return max(done, min(num_steps, done + affordable))


class GanStepPlan:
    """Where a budgeted GAN run ends. The loop asks `wants_sync(done)` after each step; when it
    says so, the loop waits for the step to finish and calls `update(done)`, which returns the
    step count to end at (process 0's, on every host)."""

    def __init__(self, budget: TimeBudget, start: int, num_steps: int, r1_interval: int, log_every: int):
        self.budget, self.num_steps, self.log_every = budget, num_steps, log_every
        self.warm = warm_step(start, r1_interval)
        self.first_plan = self.warm + max(r1_interval, 2)  # the pace covers an R1 step
        self.end = num_steps
        self.warm_time: Optional[float] = None
        self.seconds_per_step: Optional[float] = None
        self.grid_seconds = 0.0

    @property
    def reserve(self) -> float:
        """Seconds kept for the end: the final checkpoint, the last measured grid, the pace's rounding."""
        return max(MIN_RESERVE_S, RESERVE_SHARE * self.budget.seconds) + self.grid_seconds

    def timed_grid(self, seconds: float) -> None:
        """A sample grid took `seconds`: the last one will take about as long. The first, which
        compiles the sampler, overstates it; the next periodic grid corrects it."""
        self.grid_seconds = seconds

    def wants_sync(self, done: int) -> bool:
        if done < self.warm:  # still compiling: only a spent budget ends the run here
            return True
        return done == self.warm or done == self.first_plan or (
            done > self.first_plan and (done - self.first_plan) % self.log_every == 0)

    def has_time(self) -> bool:
        """Whether more than the reserve is left (process 0's answer, on every host: what follows
        may be a collective, such as sampling)."""
        return bool(main_host_int(self.budget.left() > self.reserve))

    def update(self, done: int) -> int:
        now = self.budget.elapsed()
        if done <= self.warm:
            self.warm_time = now
            end = self.num_steps if self.budget.left() > self.reserve else done  # agreed below
        else:
            self.seconds_per_step = (now - self.warm_time) / (done - self.warm)
            end = planned_end(done, self.seconds_per_step, self.budget.left(), self.reserve, self.num_steps)
        self.end = main_host_int(end)
        return self.end

    def describe(self) -> str:
        """One line for the log, once the pace is measured: the pace, the end step and when it comes."""
        eta = time.strftime("%H:%M:%S", time.localtime(time.time() + self.budget.left() - self.reserve))
        return (f"time budget: {self.seconds_per_step:.3f} s/step measured since step {self.warm}: ending at step "
                f"{self.end} at about {eta}, {self.reserve:.0f} s kept for the last checkpoint and samples")


def describe_budget(config) -> str:
    """The plan printed before anything runs."""
    minutes, share = config.train.time_budget_minutes, config.clip.budget_share
    clip = (f"a small CLIP, if one must be trained, gets up to {share * minutes:.1f} min (steps from its measured "
            f"pace, at most config.clip.train_steps={config.clip.train_steps}); " if not config.clip.path else "")
    return (f"time budget: {minutes:g} min from now: {clip}the GAN gets the rest, its pace timed once every step "
            f"is compiled, and its last step (at most config.train.num_steps={config.train.num_steps}) set to "
            f"leave time for the final checkpoint and sample grid")
