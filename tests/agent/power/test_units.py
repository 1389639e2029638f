"""Each miner as the controller sees it: where its draw comes from (its reading, or the model
table for a miner that reports none), when a change has landed, what a write of unknown outcome
counts as, and who may be touched at all (excluded, critical, unreachable, dwelling)."""

from __future__ import annotations

import math
import time

from webbo.agent.fleet.driver import Action
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.model import Reading, WorkMode
from webbo.agent.power.models import ModelTable, Refinements
from webbo.agent.power.plan import FULL, SLEEP
from webbo.agent.power.state import MinerState, Pending
from webbo.agent.power.units import Context, build_unit

EVERYTHING = frozenset({Action.SET_WORK_MODE, Action.SET_POWER_LIMIT})


def ctx(now: float, **kw) -> Context:
    base = {"fresh_s": 30.0, "min_dwell": 300.0, "settle_min": 30.0, "settle_timeout": 180.0,
            "excluded": frozenset(), "critical": frozenset(),
            "supports": lambda device: EVERYTHING}
    base.update(kw)
    return Context(ModelTable(), Refinements(), now, **base)


def antminer(now: float, mode: WorkMode = WorkMode.NORMAL, rate: float = 104.0) -> Device:
    reading = Reading(time_ns=int(now * 1e9), hashrate_ths=rate, expected_hashrate_ths=104.0,
                      work_mode=mode, is_mining=mode != WorkMode.SLEEP)
    return Device(mac="e0:a5:09:00:00:01", ip="127.0.0.1", driver="bitmain_http",
                  make="Antminer", model="Antminer S19j Pro", group="Зал 1", group_id="g1",
                  range="Стойка 1", range_id="r1", state="ok", reading=reading)


def whatsminer(now: float, watts: float = 5500.0) -> Device:
    reading = Reading(time_ns=int(now * 1e9), hashrate_ths=212.0, expected_hashrate_ths=212.0,
                      power_w=watts, power_limit_w=5800.0, work_mode=WorkMode.NORMAL)
    return Device(mac="c4:7a:00:00:00:01", ip="127.0.0.2", driver="whatsminer",
                  make="Whatsminer", model="M56S_VH30", group="Зал 1", group_id="g1",
                  range="Стойка 1", range_id="r1", state="ok", reading=reading)


def test_the_draw_comes_from_the_reading_or_the_model_table():
    now = time.time()
    unit, table, flying, status = build_unit(whatsminer(now), MinerState("w"), ctx(now))
    assert (unit.est_w, table, flying, status) == (5500.0, False, False, "free")
    assert unit.can_pct and unit.limit_w == 5800.0 and unit.jth == 26.0  # 5500/212, graded
    unit, table, _, _ = build_unit(antminer(now), MinerState("a"), ctx(now))
    assert table and unit.est_w == 3068.0 and not unit.can_pct and unit.low_w is not None
    asleep = build_unit(antminer(now, WorkMode.SLEEP, 0.0), MinerState("a"), ctx(now))[0]
    assert asleep.level == SLEEP and asleep.est_w == 30.0 and not asleep.managed
    stale = build_unit(antminer(now - 100), MinerState("a"), ctx(now))
    assert stale[3] == "unreachable" and not stale[0].free


def test_excluded_critical_and_dwelling_miners_are_not_free():
    now = time.time()
    device = antminer(now)
    for kw in ({"excluded": frozenset({device.mac})}, {"critical": frozenset({"Стойка 1"})},
               {"critical": frozenset({"g1"})}):
        unit, _, _, status = build_unit(device, MinerState("a"), ctx(now, **kw))
        assert status == "excluded" and not unit.free
    changed = MinerState("a", changed_at=now - 10)
    assert build_unit(device, changed, ctx(now))[3] == "dwell"
    none = ctx(now, supports=lambda d: frozenset())
    assert build_unit(device, MinerState("a"), none)[3] == "not_controllable"


def pending(now: float, outcome: str, to: str = SLEEP, after: float = 30.0) -> Pending:
    return Pending("s1", to, 100, 3068.0, after, at=now - 5, prev_level=FULL, prev_pct=100,
                   outcome=outcome, done_at=now - 4)


def test_a_change_lands_when_a_later_reading_shows_it():
    now = time.time()
    state = MinerState("a", level=SLEEP, managed=True, changed_at=now - 5,
                       pending=pending(now, "ok"))
    # its mode shows at once, but a miner without a power reading is given settle_min
    unit, _, flying, status = build_unit(antminer(now, WorkMode.SLEEP, 0.0), state, ctx(now))
    assert flying and status == "in_flight" and unit.est_w == 30.0
    later = now + 40
    unit, _, flying, _ = build_unit(antminer(later, WorkMode.SLEEP, 0.0), state, ctx(later))
    assert not flying and state.pending is None and unit.level == SLEEP and unit.managed


def test_an_unknown_outcome_counts_as_maybe_applied_and_is_never_resent():
    now = time.time()
    state = MinerState("a", level=SLEEP, managed=True, changed_at=now - 5,
                       pending=pending(now, "unknown"))
    unit, _, flying, _ = build_unit(antminer(now - 4.5), state, ctx(now))
    assert flying and unit.est_w == 30.0 and not unit.free  # as if applied, left alone
    # a reading after the write shows the miner still at normal: it did not happen
    unit, _, flying, _ = build_unit(antminer(now), state, ctx(now))
    assert not flying and state.level == FULL and not state.managed and unit.est_w == 3068.0
    assert not unit.free  # its dwell still holds: no immediate second write
    # no reading tells within settle_timeout: uncertain, left alone until one does
    state = MinerState("a", level=SLEEP, managed=True, changed_at=now - 400,
                       pending=pending(now - 395, "unknown"))
    device = antminer(now - 399.5)  # only a reading from before the write
    unit, _, _, status = build_unit(device, state, ctx(now, fresh_s=1e6))
    assert state.uncertain and status == "uncertain" and not unit.free
    device = antminer(now, WorkMode.SLEEP, 0.0)
    unit, _, _, status = build_unit(device, state, ctx(now))
    assert not state.uncertain and status == "free" and unit.level == SLEEP


def test_a_miner_without_a_known_efficiency_is_shed_first():
    now = time.time()
    device = antminer(now)
    device.reading.expected_hashrate_ths = None
    device.reading.hashrate_ths = None
    unit = build_unit(device, MinerState("a"), ctx(now))[0]
    assert math.isinf(unit.jth)


def test_a_write_cut_short_by_a_restart_is_an_unknown_outcome(tmp_path):
    from webbo.agent.power.state import PowerState

    state = PowerState(path=tmp_path / "power.json")
    miner = state.miner("e0:a5:09:00:00:01")
    miner.managed, miner.level = True, SLEEP
    miner.pending = Pending("s1", SLEEP, 100, 3068.0, 30.0, at=1000.0, prev_level=FULL,
                            prev_pct=100)
    state.save()
    assert oct((tmp_path / "power.json").stat().st_mode & 0o777) == "0o600"
    again = PowerState.load(tmp_path / "power.json").miners["e0:a5:09:00:00:01"]
    assert again.pending.outcome == "unknown" and again.pending.done_at == 1000.0
    assert again.managed and again.level == SLEEP
