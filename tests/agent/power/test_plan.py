"""The planner's rules on synthetic feeds (no devices): the band, the order, the lightest step,
the ramp, the dwell, restoring under the budget, and the projection to the budget."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from webbo.agent.power.plan import (
    FULL,
    LOW,
    REDUCED,
    SLEEP,
    Tuning,
    Unit,
    decide,
    project,
    restore_step,
    shed_step,
)


def unit(n: int, jth: float, *, pct: bool = False, low: bool = False, watts: float = 3300,
         **kw) -> Unit:
    """``pct``: the firmware has power targets; ``at``: the percent it runs at."""
    return Unit(f"00:00:00:00:00:{n:02x}", kw.pop("est_w", watts), watts, jth,
                pct=kw.pop("at", 100), limit_w=3600 if pct else 0.0,
                low_w=watts * 0.72 if low else None, can_pct=pct,
                can_mode=kw.pop("can_mode", True), **kw)


def tuning(budget_kw: float, *, band_pct: float = 2.0, ramp_kw: float = 1000.0,
           most: int = 100, min_pct: int = 50) -> Tuning:
    budget = budget_kw * 1000
    return Tuning(budget, budget * band_pct / 100, ramp_kw * 1000, most, min_pct)


def test_within_the_band_nothing_happens():
    units = [unit(i, 30) for i in range(10)]
    assert decide(units, 32_900, tuning(33)).direction == "hold"
    assert decide(units, 32_400, tuning(33)).direction == "hold"  # band: 32.34..33 kW


def test_sheds_least_efficient_first_each_by_its_lightest_step():
    units = [unit(1, 25, pct=True), unit(2, 40, low=True), unit(3, 35), unit(4, 30, pct=True)]
    plan = decide(units, 13_200, tuning(8))
    assert plan.direction == "shed"
    order = [s.mac[-2:] for s in plan.steps]
    assert order[:3] == ["02", "03", "04"]  # by J/TH, worst first
    by_mac = {s.mac[-2:]: s for s in plan.steps}
    assert by_mac["02"].to == LOW  # low power before sleep
    assert by_mac["03"].to == SLEEP  # no lighter step on this one
    assert by_mac["04"].to == REDUCED and by_mac["04"].actions[0][0] == "set_power_limit"
    assert sum(-s.delta_w for s in plan.steps) >= 13_200 - (8000 - 80)


def test_a_power_percent_takes_just_what_is_needed():
    step = shed_step(unit(1, 30, pct=True), 500, 50)
    assert step is not None and step.to == REDUCED
    assert 3300 - 600 < step.after_w <= 3300 - 500 + 36  # the percent is a whole number
    watts = step.actions[0][1]["watts"]
    assert math.floor(watts * 100 / 3600) == step.pct  # what the driver turns it back into
    assert shed_step(unit(1, 30, pct=True), 9_999, 50).pct == 50  # no deeper than min_pct
    at_floor = unit(1, 30, pct=True, level=REDUCED, at=50, est_w=1800)
    assert shed_step(at_floor, 500, 50).to == SLEEP  # then sleep


def test_ramp_and_miners_per_step_bound_one_cycle():
    units = [unit(i, 30 + i) for i in range(40)]
    plan = decide(units, 132_000, tuning(60, ramp_kw=10, most=100))
    assert sum(-s.delta_w for s in plan.steps) <= 10_000
    plan = decide(units, 132_000, tuning(60, ramp_kw=1000, most=5))
    assert len(plan.steps) == 5
    # a step bigger than the whole allowance is taken alone (a feed of big miners still moves)
    plan = decide(units, 132_000, tuning(60, ramp_kw=1, most=5))
    assert len(plan.steps) == 1


def test_busy_and_uncontrollable_miners_are_left_alone():
    units = [unit(1, 50, free=False), unit(2, 40), unit(3, 45, can_mode=False)]
    plan = decide(units, 9900, tuning(6))
    assert [s.mac[-2:] for s in plan.steps] == ["02"]


def test_restores_most_efficient_first_and_never_above_the_budget():
    asleep = [unit(i, 20 + i, level=SLEEP, managed=True, est_w=30) for i in range(6)]
    plan = decide(asleep, 5_000, tuning(12))  # room: 12 kW − band/4 − 5 kW
    assert plan.direction == "restore"
    assert [s.mac[-2:] for s in plan.steps] == ["00", "01"]
    assert 5_000 + plan.delta_w <= 12_000 - 240 / 4
    # a miner the controller did not curtail is never "restored"
    theirs = [unit(1, 20, level=SLEEP, managed=False, est_w=30)]
    assert decide(theirs, 0, tuning(12)).steps == []
    # a reduced miner comes back by as much as fits
    reduced = unit(9, 20, pct=True, level=REDUCED, at=50, est_w=1800, managed=True)
    step = restore_step(reduced, 600)
    assert step is not None and step.to == REDUCED and 1800 < step.after_w <= 2400
    assert restore_step(reduced, 5000).to == FULL


def test_waking_a_reduced_sleeper_resets_its_percent():
    sleeper = unit(1, 20, pct=True, level=SLEEP, at=60, est_w=15, managed=True)
    step = restore_step(sleeper, 10_000)
    assert [a for a, _ in step.actions] == ["set_work_mode", "set_power_limit"]


def test_projection_reaches_the_band_respecting_dwell():
    units = [unit(i, 30 + i % 7, pct=i % 2 == 0, low=i % 3 == 0) for i in range(60)]
    start = sum(u.est_w for u in units)
    t = tuning(start / 1000 * 0.6, ramp_kw=20, most=10)
    cycles = project(units, start, t, dwell_cycles=2)
    final = start + sum(p.delta_w for _, p in cycles)
    assert t.budget_w - t.deadband_w <= final <= t.budget_w
    seen: dict[str, int] = {}
    for cycle, plan in cycles:
        assert sum(abs(s.delta_w) for s in plan.steps) <= t.ramp_w or len(plan.steps) == 1
        for step in plan.steps:
            if step.mac in seen:
                assert cycle - seen[step.mac] > 2  # its dwell
            seen[step.mac] = cycle


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(15, 60), st.booleans(), st.booleans(),
                          st.sampled_from([1500.0, 3300.0, 5500.0])), min_size=1, max_size=40),
       st.floats(0.2, 1.2))
def test_a_shed_never_overshoots_when_a_finer_step_exists(specs, share):
    units = [unit(i, jth, pct=pct, low=low, watts=watts)
             for i, (jth, pct, low, watts) in enumerate(specs)]
    start = sum(u.est_w for u in units)
    t = tuning(start / 1000 * share, ramp_kw=10_000, most=1000)
    plan = decide(units, start, t)
    after = start + plan.delta_w
    if plan.direction == "shed":
        assert plan.delta_w < 0
        assert after <= t.budget_w or len(plan.steps) == sum(
            1 for u in units if shed_step(u, 1e9, t.min_pct) is not None)
    else:
        assert plan.steps == []
