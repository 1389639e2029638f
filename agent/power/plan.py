"""Deciding a feed's next step: pure functions over the feed's miners, fast enough for 10,000
miners on 20 feeds in one cycle (bench/power.py).

Each miner is a :class:`Unit`: where its draw is (or is heading, for a change in flight), its
draw at full, its efficiency, its level on the curtailment ladder and what its firmware can do.
The rules (design §13, issue 14):

* the band: nothing happens while the predicted draw ``P`` is between ``B − D`` and ``B``
  (budget ``B``, deadband ``D``);
* over ``B``: shed down to ``B − D/2`` — the least efficient miners first (J/TH), each by its
  lightest step: a power percent where the firmware has power targets (down to
  ``min_power_pct``), else low power, then sleep;
* under ``B − D``: restore — the most efficient curtailed miners first, each by the largest
  step that keeps ``P`` at or under ``B − D/4`` by the estimate (never above the budget);
* a cycle changes at most ``max_miners`` miners and at most ``ramp_w`` watts (the ramp limit
  of one cycle); a single step bigger than the whole allowance is taken alone, so a feed of
  big miners still moves;
* a miner that is not *free* (a change in flight, its dwell not over, excluded, unreachable)
  is not touched.

:func:`project` repeats the rule on copies, cycle by cycle, to show the whole plan to the
budget (what ``mode = "dry-run"`` shows, and what the real run then does, step by step).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FULL", "LEVELS", "LOW", "REDUCED", "SLEEP", "Plan", "Step", "Tuning", "Unit",
           "decide", "project"]

FULL, REDUCED, LOW, SLEEP = "full", "reduced", "low_power", "sleep"
LEVELS = (FULL, REDUCED, LOW, SLEEP)
"""The curtailment ladder, lightest first."""


@dataclass(slots=True)
class Unit:
    """One miner of a feed, as the planner sees it."""

    mac: str
    est_w: float
    """Its draw now, or where a change in flight takes it."""
    full_w: float
    """Its draw at full (normal mode, 100 %)."""
    jth: float
    """J/TH at full; ``inf`` when unknown (such a miner is shed first)."""
    level: str = FULL
    pct: int = 100
    """The power percent it runs at (100 unless ``level`` is reduced)."""
    limit_w: float = 0.0
    """Its power limit, the base of a power percent (0: none known)."""
    low_w: float | None = None
    """Its draw in low-power mode; None: it has none."""
    sleep_w: float = 30.0
    can_pct: bool = False
    can_mode: bool = False
    free: bool = True
    """May be changed now."""
    managed: bool = False
    """Curtailed by the controller (only these are restored)."""


@dataclass(slots=True)
class Step:
    """One miner's change."""

    mac: str
    to: str
    pct: int
    before_w: float
    after_w: float
    actions: tuple[tuple[str, dict[str, Any]], ...]
    """(action, params) for the fleet's controller, in order."""

    @property
    def delta_w(self) -> float:
        return self.after_w - self.before_w

    def describe(self) -> dict[str, Any]:
        return {"mac": self.mac, "to": self.to, "pct": self.pct,
                "before_kw": round(self.before_w / 1000, 3),
                "after_kw": round(self.after_w / 1000, 3),
                "actions": [{"action": a, "params": p} for a, p in self.actions]}


@dataclass(frozen=True, slots=True)
class Tuning:
    budget_w: float
    deadband_w: float
    ramp_w: float
    """The most one cycle may change (ramp_kw_per_min × interval)."""
    max_miners: int
    min_pct: int


@dataclass
class Plan:
    direction: str
    """"shed", "restore" or "hold"."""
    need_w: float
    """What the step aims to remove (shed) or may add (restore)."""
    steps: list[Step] = field(default_factory=list)

    @property
    def delta_w(self) -> float:
        return sum(step.delta_w for step in self.steps)


def _power_limit_step(u: Unit, pct: int, to: str) -> Step:
    watts = math.ceil(u.limit_w * pct / 100)
    after = min(u.full_w, u.limit_w * pct / 100)
    return Step(u.mac, to, pct, u.est_w, after, (("set_power_limit", {"watts": watts}),))


def _mode_step(u: Unit, mode: str, after: float, to: str) -> Step:
    actions: tuple[tuple[str, dict[str, Any]], ...] = (("set_work_mode", {"mode": mode}),)
    if mode == "normal" and u.can_pct and u.pct < 100 and u.limit_w > 0:
        actions += (("set_power_limit", {"watts": math.ceil(u.limit_w)}),)
    return Step(u.mac, to, 100, u.est_w, after, actions)


def shed_step(u: Unit, left: float, min_pct: int) -> Step | None:
    """``u``'s lightest step down, taking about ``left`` watts where the step can be sized."""
    if u.level in (FULL, REDUCED) and u.can_pct and u.limit_w > 0 and u.pct > min_pct:
        floor_w = min(u.full_w, u.limit_w * min_pct / 100)
        if u.est_w - floor_w > 1.0:
            target = max(floor_w, u.est_w - left)
            pct = max(min_pct, min(99, int(100 * target / u.limit_w)))
            if pct < u.pct and min(u.full_w, u.limit_w * pct / 100) < u.est_w - 1.0:
                return _power_limit_step(u, pct, REDUCED)
    if not u.can_mode:
        return None
    if u.level == FULL and not u.can_pct and u.low_w is not None:
        return _mode_step(u, "low_power", u.low_w, LOW)
    if u.level != SLEEP:
        return _mode_step(u, "sleep", u.sleep_w, SLEEP)
    return None


def restore_step(u: Unit, room: float) -> Step | None:
    """``u``'s largest step up that adds at most ``room`` watts."""
    gain_full = u.full_w - u.est_w
    if u.level == REDUCED:
        if gain_full <= room:
            return _power_limit_step(u, 100, FULL)
        pct = min(99, int(100 * (u.est_w + room) / u.limit_w)) if u.limit_w > 0 else 0
        if pct > u.pct:
            return _power_limit_step(u, pct, REDUCED)
        return None
    if not u.can_mode:
        return None
    if u.level in (LOW, SLEEP) and gain_full <= room:
        return _mode_step(u, "normal", u.full_w, FULL)
    if u.level == SLEEP and u.low_w is not None and u.low_w - u.est_w <= room:
        return _mode_step(u, "low_power", u.low_w, LOW)
    return None


def _take(steps: list[Step], step: Step | None, done: float, allowance: float
          ) -> float | None:
    """Add ``step`` if the cycle's ramp allows it; returns the watts changed so far, or None
    when the ramp is used up (the miner waits for the next cycle: no later one jumps the
    queue)."""
    if step is None:
        return done
    size = abs(step.delta_w)
    if done + size > allowance and steps:
        return None
    steps.append(step)
    return done + size


def decide(units: list[Unit], predicted_w: float, tuning: Tuning,
           order: tuple[list[Unit], list[Unit]] | None = None) -> Plan:
    """This cycle's step for a feed predicted to draw ``predicted_w``. ``order`` may hand over
    the units already sorted (least efficient first, most efficient first) to save the sort."""
    budget, band = tuning.budget_w, tuning.deadband_w
    if predicted_w > budget:
        need = predicted_w - (budget - band / 2)
        plan = Plan("shed", need)
        worst_first = order[0] if order else sorted(units, key=_least_efficient)
        # shedding more than this would leave the band below: such a step waits while a
        # finer one (on the next least efficient miner) can do
        floor = need + band / 2
        done = 0.0
        coarse: Step | None = None
        for unit in worst_first:
            if len(plan.steps) >= tuning.max_miners or done >= need or \
                    done >= tuning.ramp_w:
                break
            if not unit.free:
                continue
            step = shed_step(unit, need - done, tuning.min_pct)
            if step is not None and done - step.delta_w > floor:
                coarse = coarse or step
                continue
            taken = _take(plan.steps, step, done, tuning.ramp_w)
            if taken is None:
                return plan
            done = taken
        if done < need and coarse is not None and len(plan.steps) < tuning.max_miners:
            _take(plan.steps, coarse, done, tuning.ramp_w)
        return plan
    if predicted_w < budget - band:
        room = (budget - band / 4) - predicted_w
        plan = Plan("restore", room)
        best_first = order[1] if order else sorted(units, key=_most_efficient)
        done = 0.0
        for unit in best_first:
            if len(plan.steps) >= tuning.max_miners or done >= tuning.ramp_w:
                break
            if unit.free and unit.managed and unit.level != FULL and room - done > 0:
                taken = _take(plan.steps, restore_step(unit, room - done), done,
                              tuning.ramp_w)
                if taken is None:
                    break
                done = taken
        return plan
    return Plan("hold", 0.0)


EFFICIENCY_STEP = 0.5
"""J/TH: miners closer than this are equally efficient (ordered by MAC), so the noise of a
hashrate reading does not reorder the plan from one cycle to the next."""


def _grade(jth: float) -> float:
    return jth if math.isinf(jth) else round(jth / EFFICIENCY_STEP) * EFFICIENCY_STEP


def _least_efficient(u: Unit) -> tuple[float, str]:
    return (-_grade(u.jth), u.mac)


def _most_efficient(u: Unit) -> tuple[float, str]:
    return (_grade(u.jth), u.mac)


def sort_orders(units: list[Unit]) -> tuple[list[Unit], list[Unit]]:
    """(least efficient first, most efficient first)."""
    return sorted(units, key=_least_efficient), sorted(units, key=_most_efficient)


def project(units: list[Unit], predicted_w: float, tuning: Tuning, *, dwell_cycles: int,
            cycles: int = 40) -> list[tuple[int, Plan]]:
    """The plan to the budget, cycle by cycle, assuming every step lands as estimated and a
    miner changed waits ``dwell_cycles`` before it moves again. Stops at the first cycle with
    nothing to do (or after ``cycles``)."""
    copies = [dataclasses.replace(u) for u in units]
    by_mac = {u.mac: u for u in copies}
    order = sort_orders(copies)
    released: dict[int, list[Unit]] = {}
    out: list[tuple[int, Plan]] = []
    for cycle in range(cycles):
        for unit in released.pop(cycle, ()):
            unit.free = True
        plan = decide(copies, predicted_w, tuning, order)
        if not plan.steps:
            break
        out.append((cycle, plan))
        for step in plan.steps:
            unit = by_mac[step.mac]
            unit.est_w, unit.level, unit.pct = step.after_w, step.to, step.pct
            unit.managed = step.to != FULL
            unit.free = False
            released.setdefault(cycle + 1 + dwell_cycles, []).append(unit)
        predicted_w += plan.delta_w
    return out
