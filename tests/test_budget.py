"""config.train.time_budget_minutes: the plan's arithmetic on a simulated clock (a real budgeted
run is in test_train.py, where the compiled tiny steps are at hand)."""

import pytest

from gigagan_jax.config import load_config, validate_config
from gigagan_jax.train.budget import MIN_RESERVE_S, GanStepPlan, TimeBudget, planned_end, warm_step


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_warm_step_follows_every_executables_first_run():
    assert warm_step(0, 16) == 2  # step 0: R1 and G compiled, step 1: the plain D step
    assert warm_step(5, 16) == 17  # resumed at 5: the next R1 step is 16
    assert warm_step(16, 16) == 18
    assert warm_step(0, 1) == 1 and warm_step(7, 1) == 8  # R1 on every step: one D executable


def test_planned_end_fits_the_time_left_within_the_cap():
    assert planned_end(20, 0.5, 100.0, 10.0, 1000) == 200
    assert planned_end(20, 0.5, 100.0, 10.0, 150) == 150
    assert planned_end(20, 0.5, 5.0, 10.0, 1000) == 20  # over already: end now


def _simulate(budget_minutes, compile_s, step_s, r1_interval=4, log_every=10, grid_s=3.0, start=0, num_steps=10**6):
    """Steps on a fake clock, as train() calls the plan; returns (plan, end step, seconds used with the final grid)."""
    clock = FakeClock()
    budget = TimeBudget(budget_minutes, clock)
    plan = GanStepPlan(budget, start, num_steps, r1_interval, log_every)
    end, done = num_steps, start
    for step in range(start, num_steps):
        clock.now += step_s(step) + (compile_s if step < plan.warm - 1 else 0.0)
        done = step + 1
        if plan.wants_sync(done):
            if done == plan.warm and plan.has_time():
                clock.now += grid_s
                plan.timed_grid(grid_s)
            end = plan.update(done)
        if done >= end:
            break
    clock.now += grid_s + 1.0  # the final grid and checkpoint
    return plan, done, budget.elapsed()


def test_the_reserve_holds_the_latest_grid_and_grows_with_the_budget():
    plan = GanStepPlan(TimeBudget(10.0, FakeClock()), 0, 100, 16, 50)
    plan.timed_grid(33.0)  # the first grid compiles the sampler
    assert plan.reserve == pytest.approx(0.02 * 600 + 33.0)
    plan.timed_grid(2.0)
    assert plan.reserve == pytest.approx(0.02 * 600 + 2.0)
    assert GanStepPlan(TimeBudget(1.0, FakeClock()), 0, 100, 16, 50).reserve == MIN_RESERVE_S


def test_a_simulated_run_ends_on_time_and_uses_the_budget():
    plan, end, used = _simulate(2.0, compile_s=20.0, step_s=lambda s: 0.8 if s % 4 == 0 else 0.2)
    assert plan.seconds_per_step == pytest.approx(0.35, rel=0.05)  # one R1 step in four
    assert used <= 120.0
    assert used >= 120.0 - plan.reserve - 10 * 0.35 - 1.0  # unspent: the reserve and at most one log interval
    assert plan.reserve == pytest.approx(MIN_RESERVE_S + 3.0)


def test_a_pace_that_slows_is_caught_at_the_next_log_step():
    plan, end, used = _simulate(2.0, compile_s=5.0, step_s=lambda s: 0.1 if s < 100 else 0.5)
    assert used <= 120.0 and plan.seconds_per_step > 0.1


def test_a_budget_spent_while_compiling_ends_the_run_at_once():
    plan, end, used = _simulate(0.25, compile_s=20.0, step_s=lambda s: 0.1)
    assert end == 1 and plan.seconds_per_step is None


def test_bad_budgets_are_refused():
    with pytest.raises(ValueError, match="must be > 0 minutes"):
        TimeBudget(0.0)
    config = load_config("configs/tiny.py")
    config.train.time_budget_minutes = -1.0
    with pytest.raises(ValueError, match="time_budget_minutes must be >= 0"):
        validate_config(config)
    config.train.time_budget_minutes, config.clip.budget_share = 1.0, 1.0
    with pytest.raises(ValueError, match=r"budget_share must be in \(0, 1\)"):
        validate_config(config)
