"""From the fleet's devices to the planner's :class:`~.plan.Unit`: each miner's draw, its
efficiency, its level, what it can do — and whether a change sent to it has landed.

Where a number comes from:

* a miner that reports its power (Whatsminer): its latest fresh reading;
* one that does not (stock Antminer): the model table at its level, times what the meters
  taught about the model (shown as an estimate);
* a change in flight: where the change takes it (so the controller neither repeats a step
  nor over-restores while a miner wakes up).

A change has landed when a reading taken after the write shows it (the power near the target
where the miner reports power; else the work mode and a hashrate that fits), or when
``settle_timeout`` has passed. A write of unknown outcome counts as applied ("maybe applied")
until a reading says otherwise; if none does within ``settle_timeout`` the miner is marked
*uncertain* and left alone until one does. It is never written again blindly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from webbo.agent.fleet.driver import Action
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.model import Reading, WorkMode
from webbo.agent.power.models import ModelTable, Refinements
from webbo.agent.power.plan import EFFICIENCY_STEP, FULL, LOW, REDUCED, SLEEP, Unit
from webbo.agent.power.state import MinerState

__all__ = ["Context", "Profile", "build_unit", "level_of", "reading_matches", "settle"]

_MODE_LEVEL = {WorkMode.SLEEP: SLEEP, WorkMode.LOW_POWER: LOW, WorkMode.NORMAL: FULL}


@dataclass
class Context:
    """What building units needs besides the device and its state."""

    table: ModelTable
    refinements: Refinements
    now: float
    fresh_s: float
    """A reading older than this is not used for the draw."""
    min_dwell: float
    settle_min: float
    settle_timeout: float
    excluded: frozenset[str]
    critical: frozenset[str]
    supports: Callable[[Device], frozenset[Action]] = lambda device: frozenset()
    """What the driver that owns a device can do with it."""
    profiles: dict[str, Profile] = field(default_factory=dict)
    """Per-miner facts that change with its identity or the config (kept across cycles)."""
    generation: int = 0
    """Bumped when the config or the refinements change: every profile is made again."""


def level_of(reading: Reading | None) -> str:
    """The level a reading shows (a miner the controller did not curtail)."""
    if reading is None or reading.work_mode is None:
        return FULL if reading is None or reading.is_mining is not False else SLEEP
    return _MODE_LEVEL.get(WorkMode(reading.work_mode), FULL)


def _fresh(reading: Reading | None, ctx: Context) -> bool:
    return reading is not None and ctx.now - reading.time_ns / 1e9 <= ctx.fresh_s


def reading_matches(reading: Reading, to: str, after_w: float, expected_ths: float | None
                    ) -> bool | None:
    """Does ``reading`` show a miner at ``to`` (drawing about ``after_w``)? None: it cannot
    tell (no power and no readable mode)."""
    if reading.power_w is not None:
        return abs(reading.power_w - after_w) <= max(100.0, 0.08 * after_w)
    mode = reading.work_mode
    rate = reading.hashrate_ths
    expected = expected_ths or reading.expected_hashrate_ths
    if to == SLEEP:
        if mode is not None and mode != WorkMode.SLEEP:
            return False
        return rate is not None and rate < 0.5
    if to == LOW:
        return mode == WorkMode.LOW_POWER if mode is not None else None
    if to == FULL:
        if mode is not None and mode not in (WorkMode.NORMAL,):
            return False
        if rate is None or not expected:
            return None
        return rate >= 0.9 * expected
    return None


def settle(state: MinerState, device: Device, ctx: Context) -> bool:
    """Update ``state``'s change in flight from what the device shows now; True while the
    change is still in flight."""
    pending = state.pending
    if pending is None:
        if state.uncertain:
            _resolve_uncertain(state, device)
        return False
    if pending.outcome == "running":
        return True
    reading = device.reading
    if reading is not None and reading.time_ns / 1e9 > pending.done_at:
        matches = reading_matches(reading, pending.to, pending.after_w, None)
        if matches and reading.power_w is None and ctx.now - pending.at < ctx.settle_min:
            matches = False  # its mode shows at once; its draw takes a while
        if matches:
            state.pending = None
            return False
        if pending.outcome == "unknown" and _shows_level(reading, pending.prev_level):
            # the write did not happen after all: the miner is where it was
            state.level, state.pct = pending.prev_level, pending.prev_pct
            state.managed = state.level != state.top
            state.pending = None
            return False
    if ctx.now - pending.at >= ctx.settle_timeout:
        if pending.outcome == "unknown":
            state.uncertain = True
        state.pending = None
        return False
    return True


def _shows_level(reading: Reading, level: str) -> bool:
    if reading.work_mode is None or level == REDUCED:
        return False
    return _MODE_LEVEL.get(WorkMode(reading.work_mode)) == level


def _resolve_uncertain(state: MinerState, device: Device) -> None:
    reading = device.reading
    if reading is None or reading.work_mode is None:
        return
    shown = _MODE_LEVEL.get(WorkMode(reading.work_mode))
    if shown is not None and (shown == state.level or state.level == REDUCED):
        state.level = shown if state.level != REDUCED or shown != FULL else state.level
        state.uncertain = False


def _learn(state: MinerState, device: Device, level: str, reports: bool,
           model_full_w: float) -> None:
    """What a settled, fresh reading at full tells: the miner's draw and efficiency."""
    reading = device.reading
    if reading is None or state.pending is not None:
        return
    if reading.power_limit_w:
        state.limit_w = reading.power_limit_w
    if level != FULL:
        return
    if reports and reading.power_w:
        state.full_w = reading.power_w if state.full_w is None else \
            0.7 * state.full_w + 0.3 * reading.power_w
    full = state.full_w or model_full_w
    rate = reading.hashrate_ths
    expected = reading.expected_hashrate_ths
    if full and rate and expected and rate >= 0.8 * expected:
        raw = full / rate
        raw = state.jth_raw = raw if state.jth_raw is None else 0.9 * state.jth_raw + 0.1 * raw
        # the efficiency the plan orders by moves in whole steps, and only when the reading
        # has moved past the step: the noise of readings does not reorder the plan
        if state.jth is None or abs(raw - state.jth) > EFFICIENCY_STEP:
            state.jth = round(raw / EFFICIENCY_STEP) * EFFICIENCY_STEP


@dataclass(slots=True)
class Profile:
    """What changes only with a miner's identity, its place or the config (cached per miner,
    so a cycle over 10,000 miners does not look up tables and drivers 10,000 times)."""

    key: tuple[object, ...]
    normal_w: float
    """The model table's draw at full, times what the meters taught about the model."""
    low_w: float | None
    sleep_w: float
    fw_pct: bool
    """The driver can set a power target on this miner."""
    can_mode: bool
    excluded: bool


def _profile(device: Device, ctx: Context, key: tuple[object, ...]) -> Profile:
    reading = device.reading
    rate = None
    if reading is not None:
        rate = reading.expected_hashrate_ths or reading.hashrate_ths
    watts = ctx.table.watts(device.model, rate)
    factor = ctx.refinements.factor(device.model)
    supports = ctx.supports(device)
    place = {device.mac, device.group, device.group_id, device.range, device.range_id}
    return Profile(key, watts.normal * factor,
                   None if watts.low_power is None else watts.low_power * factor,
                   watts.sleep, Action.SET_POWER_LIMIT in supports,
                   Action.SET_WORK_MODE in supports,
                   device.mac in ctx.excluded or bool(place & ctx.critical))


def build_unit(device: Device, state: MinerState, ctx: Context
               ) -> tuple[Unit, bool, bool, str]:
    """(the unit, its draw comes from the model table, a change is in flight, its status for
    the page: free, in_flight, dwell, excluded, uncertain, unreachable, not_controllable)."""
    key = (device.model, device.driver, device.range_id, device.extra.get("api_ver"),
           ctx.generation)
    profile = ctx.profiles.get(device.mac)
    if profile is None or profile.key != key:
        profile = ctx.profiles[device.mac] = _profile(device, ctx, key)
    reading = device.reading
    fresh = reading is not None and ctx.now - reading.time_ns * 1e-9 <= ctx.fresh_s
    in_flight = False
    if state.pending is not None or state.uncertain:
        in_flight = settle(state, device, ctx)
    pending = state.pending
    if not state.managed and pending is None and not state.uncertain:
        if reading is None:
            level = FULL
        elif reading.work_mode is None:
            level = SLEEP if reading.is_mining is False else FULL
        else:
            level = _MODE_LEVEL.get(reading.work_mode, FULL)  # type: ignore[call-overload]
        state.level = state.top = level
        state.pct = 100
    level = state.level
    power = reading.power_w if fresh and reading is not None else None
    if fresh:
        _learn(state, device, level, power is not None, profile.normal_w)
    full_w = state.full_w or profile.normal_w
    limit_w = state.limit_w or 0.0
    low_w = None if state.low_unsupported else profile.low_w
    if pending is not None:
        est = pending.after_w
    elif power is not None:
        est = power
    elif level == SLEEP:
        est = profile.sleep_w
    elif level == LOW:
        est = low_w if low_w is not None else full_w
    elif level == REDUCED and limit_w:
        est = min(full_w, limit_w * state.pct / 100)
    else:
        est = full_w
    jth = state.jth
    if jth is None:
        expected = reading.expected_hashrate_ths if reading is not None else None
        jth = full_w / expected if expected else math.inf
    can_pct = profile.fw_pct and limit_w > 0
    can_mode = profile.can_mode
    if profile.excluded:
        status = "excluded"
    elif device.state != "ok" or not fresh:
        status = "unreachable"
    elif in_flight:
        status = "in_flight"
    elif state.uncertain:
        status = "uncertain"
    elif not (can_pct or can_mode):
        status = "not_controllable"
    elif ctx.now - state.changed_at < ctx.min_dwell:
        status = "dwell"
    else:
        status = "free"
    unit = Unit(device.mac, est, full_w, jth, level, state.pct, limit_w, low_w,
                profile.sleep_w, can_pct, can_mode, status == "free", state.managed)
    return unit, power is None, in_flight, status
