"""One feed's cycle: measure, estimate, choose the budget, plan — and what is shown of it.

:func:`assess` is the decision part of a cycle (no I/O, no waiting): it builds the feed's units
from the inventory, settles changes in flight, learns the gap between the model and the meter,
resolves the budget and decides the step. The controller (:mod:`.controller`) then acts on it
(or not: off, dry-run, hold) and records it in :class:`FeedRuntime`, which the API, the UI and
the ``power`` metric read.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from webbo.agent.fleet.inventory import Device
from webbo.agent.power.budget import Override, Source, resolve, sources
from webbo.agent.power.config import FeedConfig, PowerSection
from webbo.agent.power.meters import Measured, MeterWatch
from webbo.agent.power.plan import (
    FULL,
    LOW,
    REDUCED,
    SLEEP,
    Plan,
    Tuning,
    Unit,
    decide,
    project,
)
from webbo.agent.power.state import MinerState
from webbo.agent.power.units import Context, build_unit

__all__ = ["HISTORY", "Assessment", "FeedRuntime", "MinerView", "assess"]

HISTORY = 720
"""Cycles of history kept per feed for the page's chart (2 h at 10 s)."""
OFFSET_WEIGHT = 0.5


@dataclass(slots=True)
class MinerView:
    """One miner of a feed as the page lists it."""

    mac: str
    ip: str
    model: str
    level: str
    pct: int
    est_w: float
    estimated: bool
    """The draw comes from the model table (the miner reports none)."""
    jth: float
    status: str
    """free, in_flight, dwell, excluded, uncertain, unreachable, not_controllable."""
    managed: bool


@dataclass
class Assessment:
    """What one cycle found and decided for a feed."""

    feed: str
    mode: str
    budget: Source
    found: list[Source]
    measured: Measured
    estimated_w: float
    """The model's view: base load + every miner's draw (readings or the table)."""
    predicted_w: float | None
    """Where the feed is heading (changes in flight landed), on the meter's scale."""
    tuning: Tuning
    plan: Plan | None
    units: list[Unit]
    rows: list[tuple[Device, Unit, bool, str]]
    """(device, unit, its draw is a model-table estimate, its status) per miner."""
    in_flight: int
    counts: dict[str, int]
    dwell_cycles: int = 0
    _projection: list[tuple[int, Plan]] | None = None

    @property
    def projection(self) -> list[tuple[int, Plan]]:
        """The plan to the budget, cycle by cycle (made when someone looks: the API, the
        page; a cycle only needs its own step)."""
        if self._projection is None:
            self._projection = []
            if self.plan is not None and self.plan.steps and self.predicted_w is not None:
                self._projection = project(self.units, self.predicted_w, self.tuning,
                                           dwell_cycles=self.dwell_cycles)
        return self._projection

    @property
    def views(self) -> list[MinerView]:
        return [MinerView(d.mac, d.ip, d.model, u.level, u.pct, u.est_w, table, u.jth,
                          status, u.managed) for d, u, table, status in self.rows]


@dataclass
class FeedRuntime:
    """A feed between cycles: the learned model-to-meter gap, its history, what it showed."""

    name: str
    offset_w: float = 0.0
    offset_known: bool = False
    history: deque[tuple[float, float | None, float, float]] = field(
        default_factory=lambda: deque(maxlen=HISTORY))
    last: Assessment | None = None
    state: str = "new"
    problem: str = ""
    problem_note: tuple[str, dict[str, Any]] = ("", {})
    stale_since: float | None = None
    unmeasured_since: float | None = None
    """Since when the feed has had no fresh reading (held), alerted or not yet."""
    over_since: float | None = None
    dry_key: tuple[Any, ...] = ()
    last_step: dict[str, Any] | None = None
    steps: int = 0
    open_steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Steps whose miners have not all settled: what the meter's response may teach."""


def _counts() -> dict[str, int]:
    return {"total": 0, "full": 0, "reduced": 0, "sleeping": 0, "excluded": 0,
            "unreachable": 0, "not_controllable": 0, "in_flight": 0, "uncertain": 0,
            "estimated": 0}


_TALLIED = frozenset({"unreachable", "not_controllable", "in_flight", "uncertain"})


@dataclass
class Inputs:
    """What :func:`assess` reads besides the feed."""

    section: PowerSection
    devices: list[Device]
    """The feed's miners (those on its ranges)."""
    miners: dict[str, MinerState]
    overrides: dict[str, Override]
    meters: MeterWatch
    ctx: Context
    zone: dt.tzinfo


def assess(feed: FeedConfig, runtime: FeedRuntime, given: Inputs) -> Assessment:
    """One cycle's look at ``feed``: units, budget, measured, predicted, the step."""
    section, ctx = given.section, given.ctx
    mode = feed.mode or section.mode
    found = sources(feed, given.overrides, ctx.now, given.zone)
    budget = resolve(found)
    units: list[Unit] = []
    rows: list[tuple[Device, Unit, bool, str]] = []
    counts = _counts()
    in_flight = 0
    estimated_w = feed.base_load_kw * 1000
    miners = given.miners
    for device in given.devices:
        state = miners.get(device.mac)
        if state is None:
            state = miners[device.mac] = MinerState(device.mac)
        state.feed = feed.name
        unit, from_table, flying, status = build_unit(device, state, ctx)
        units.append(unit)
        rows.append((device, unit, from_table, status))
        in_flight += flying
        estimated_w += unit.est_w
        if status == "excluded":
            counts["excluded"] += 1
        elif unit.level == SLEEP:
            counts["sleeping"] += 1
        elif unit.level == FULL:
            counts["full"] += 1
        else:
            counts["reduced"] += 1
        if status in _TALLIED:
            counts[status] += 1
        counts["estimated"] += from_table
    counts["total"] = len(rows)
    measured = given.meters.measure(feed.meters, float(section.stale_after), ctx.now)
    if measured.watts is not None and not in_flight:
        gap = measured.watts - estimated_w
        runtime.offset_w = gap if not runtime.offset_known else \
            runtime.offset_w + OFFSET_WEIGHT * (gap - runtime.offset_w)
        runtime.offset_known = True
    predicted = estimated_w + runtime.offset_w if runtime.offset_known else measured.watts
    budget_w = (budget.budget_kw or 0.0) * 1000
    band = max(budget_w * (feed.deadband_pct or section.deadband_pct) / 100,
               section.deadband_min_kw * 1000)
    ramp = (feed.ramp_kw_per_min or section.ramp_kw_per_min) * 1000 * \
        float(section.interval) / 60
    tuning = Tuning(budget_w, band, ramp, feed.max_miners_per_step or
                    section.max_miners_per_step, section.min_power_pct)
    plan: Plan | None = None
    if mode != "off" and measured.watts is not None and predicted is not None:
        plan = decide(units, predicted, tuning)
    return Assessment(feed.name, mode, budget, found, measured, estimated_w, predicted,
                      tuning, plan, units, rows, in_flight, counts,
                      dwell_cycles=int(float(section.min_dwell) // float(section.interval)))


def record(runtime: FeedRuntime, result: Assessment) -> None:
    """Keep the cycle for the page, the chart and the metric."""
    runtime.last = result
    measured_kw = None if result.measured.watts is None else result.measured.watts / 1000
    runtime.history.append((time.time(), measured_kw, result.estimated_w / 1000,
                            result.tuning.budget_w / 1000))


def plan_dict(result: Assessment) -> dict[str, Any]:
    """The plan as the API and the page show it: this cycle's step and the cycles after it."""
    plan = result.plan
    if plan is None:
        return {"direction": "none", "need_kw": 0.0, "cycles": []}
    return {"direction": plan.direction, "need_kw": round(plan.need_w / 1000, 3),
            "cycles": [{"cycle": cycle, "delta_kw": round(p.delta_w / 1000, 3),
                        "steps": [s.describe() for s in p.steps]}
                       for cycle, p in result.projection]}


LEVEL_ORDER = (FULL, REDUCED, LOW, SLEEP)
