"""The built-in conditions: what a rule can watch, over miners, meters or reported facts.

A condition scans many subjects at once in one tight loop (one rule over 10,000 miners is one
pass of attribute reads, no call per miner) and returns the subjects for which it holds, with
the value that made it hold. Hysteresis is the engine's: a condition is scanned with its
*loose* limits (where a firing alert still holds, e.g. 85 °C) and a new alert needs the *tight*
ones (90 °C), checked on the few subjects the loose scan returned.

A reading only counts while it is fresh (the miner answered its last poll): a miner that stops
answering keeps its last reading, and its temperature alert neither fires nor resolves on it.
``unknown(subject)`` tells the engine so, and the alert stays as it is.

Conditions of kind ``reported`` are not scanned: another room (power control) raises and
resolves them through :meth:`AlertEngine.report <webbo.agent.alerts.engine.AlertEngine.report>`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.model import WorkMode

__all__ = ["CONDITIONS", "PHASES", "Condition", "Limits", "Memory"]

OFFLINE_STATES = frozenset({"unreachable", "timeout"})
PHASES = ("voltage_l1_v", "voltage_l2_v", "voltage_l3_v")
REJECT_WINDOW = 300.0
"""Rejected-share ratio is taken over about this long (counters since boot say too little)."""


@dataclass(frozen=True)
class Limits:
    """A rule's numbers for one scan: ``threshold`` (and ``low``/``high`` for a band)."""

    threshold: float = 0.0
    low: float = 0.0
    high: float = 0.0


@dataclass
class Memory:
    """What conditions need from earlier polls, kept per miner: uptime (a reboot is the
    uptime going back), the most boards seen (a board that vanished), share counters a few
    minutes back (a ratio over a window). Updated once per evaluation, in one pass, and saved
    with the alert state so a restart does not forget a board that went missing."""

    seen: dict[str, int] = field(default_factory=dict)
    """mac → time_ns of the last reading observed."""
    uptime: dict[str, int] = field(default_factory=dict)
    rebooted_at: dict[str, float] = field(default_factory=dict)
    boards: dict[str, int] = field(default_factory=dict)
    shares: dict[str, tuple[float, int, int]] = field(default_factory=dict)
    """mac → (time, accepted, rejected) at the start of the current window."""
    reject_pct: dict[str, float] = field(default_factory=dict)

    def observe(self, devices: Iterable[Device], now: float) -> None:
        seen = self.seen
        for d in devices:
            r = d.reading
            if r is None or d.state != "ok":
                continue
            mac = d.mac
            if seen.get(mac) == r.time_ns:
                continue
            seen[mac] = r.time_ns
            up = r.uptime_s
            if up is not None:
                last = self.uptime.get(mac)
                if last is not None and up + 30 < last:
                    self.rebooted_at[mac] = now
                self.uptime[mac] = up
            if r.boards and len(r.boards) > self.boards.get(mac, 0):
                self.boards[mac] = len(r.boards)
            if r.accepted is not None and r.rejected is not None:
                self._shares(mac, now, r.accepted, r.rejected)

    def _shares(self, mac: str, now: float, accepted: int, rejected: int) -> None:
        base = self.shares.get(mac)
        if base is None or accepted < base[1] or rejected < base[2]:
            self.shares[mac] = (now, accepted, rejected)
            self.reject_pct.pop(mac, None)
            return
        d_acc, d_rej = accepted - base[1], rejected - base[2]
        if d_acc + d_rej > 0:
            self.reject_pct[mac] = 100.0 * d_rej / (d_acc + d_rej)
        if now - base[0] >= REJECT_WINDOW:
            self.shares[mac] = (now, accepted, rejected)

    def forget(self, keep: set[str]) -> None:
        """Drop miners no longer in the inventory."""
        for table in (self.seen, self.uptime, self.rebooted_at, self.boards, self.shares,
                      self.reject_pct):
            for mac in [m for m in table if m not in keep]:
                del table[mac]

    def to_dict(self) -> dict[str, Any]:
        return {"boards": self.boards, "uptime": self.uptime, "rebooted_at": self.rebooted_at}

    def load(self, data: dict[str, Any]) -> None:
        self.boards = {str(k): int(v) for k, v in dict(data.get("boards", {})).items()}
        self.uptime = {str(k): int(v) for k, v in dict(data.get("uptime", {})).items()}
        self.rebooted_at = {str(k): float(v)
                            for k, v in dict(data.get("rebooted_at", {})).items()}


Scan = Callable[[list[Any], Limits, float, Memory], list[tuple[Any, float]]]


@dataclass(frozen=True)
class Condition:
    """One built-in condition: what it scans, its default limits, and how its values compare.

    ``direction``: "above" (holds while value > threshold), "below" (value <= threshold),
    "atleast" (value >= threshold), "within" (value < threshold), "band" (value outside
    [low, high]) or "flag" (holds when the scan returns it)."""

    name: str
    kind: str
    """miner, meter or reported."""
    direction: str
    threshold: float = 0.0
    hysteresis: float = 0.0
    low: float = 0.0
    high: float = 0.0
    unit: str = ""
    scan: Scan | None = None
    description: str = ""

    def limits(self, threshold: float | None, hysteresis: float | None, low: float | None,
               high: float | None) -> tuple[Limits, Limits]:
        """(tight, loose): where a new alert fires, and where a firing one still holds."""
        th = self.threshold if threshold is None else threshold
        hy = self.hysteresis if hysteresis is None else hysteresis
        lo = self.low if low is None else low
        hi = self.high if high is None else high
        tight = Limits(th, lo, hi)
        if self.direction == "above":
            return tight, Limits(th - hy, lo, hi)
        if self.direction == "below":
            return tight, Limits(th + hy, lo, hi)
        if self.direction == "band":
            return tight, Limits(th, lo + hy, hi - hy)
        return tight, tight

    def holds(self, value: float, lim: Limits) -> bool:
        """Whether ``value`` satisfies the condition at ``lim``."""
        direction = self.direction
        if direction == "above":
            return value > lim.threshold
        if direction == "below":
            return value <= lim.threshold
        if direction == "atleast":
            return value >= lim.threshold
        if direction == "within":
            return value < lim.threshold
        if direction == "band":
            return value < lim.low or value > lim.high
        return True

    def widest(self, limits: list[Limits]) -> Limits:
        """One limit that lets through whatever any of ``limits`` does: several rules of this
        condition share one scan, then each keeps its own hits."""
        ths = [lim.threshold for lim in limits]
        th = max(ths) if self.direction in ("below", "within") else min(ths)
        return Limits(th, max(lim.low for lim in limits), min(lim.high for lim in limits))

    def unknown(self, subject: Any) -> bool:
        """True when nothing fresh is known of ``subject``: a firing alert stays as it is."""
        if self.kind == "miner":
            if self.name in ("miner_offline", "miner_failing"):
                return subject.state == "new"
            return subject.state != "ok" or subject.reading is None
        if self.kind == "meter":
            return self.name != "meter_offline" and subject.get("state") != "ok"
        return False


# -- miner scans (one pass each; the hot part of an evaluation) --------------------------------


def _offline(devices: list[Device], lim: Limits, now: float, _: Memory
             ) -> list[tuple[Any, float]]:
    th = lim.threshold
    out = []
    for d in devices:
        if d.state in OFFLINE_STATES:
            silent = now - d.last_seen if d.last_seen else now
            if silent >= th:
                out.append((d, silent))
    return out


def _failing(devices: list[Device], lim: Limits, now: float, _: Memory
             ) -> list[tuple[Any, float]]:
    th = lim.threshold
    out = []
    for d in devices:
        if d.state == "error":
            silent = now - d.last_seen if d.last_seen else now
            if silent >= th:
                out.append((d, silent))
    return out


def _reading_above(attr: str) -> Scan:
    def scan(devices: list[Device], lim: Limits, now: float, _: Memory
             ) -> list[tuple[Any, float]]:
        th = lim.threshold
        out = []
        for d in devices:
            r = d.reading
            if r is not None and d.state == "ok":
                v = getattr(r, attr)
                if v is not None and v > th:
                    out.append((d, v))
        return out

    return scan


def _asleep(d: Device) -> bool:
    r = d.reading
    return d.work_mode_set == "sleep" or (r is not None and r.work_mode == WorkMode.SLEEP)


def _hashrate_low(devices: list[Device], lim: Limits, now: float, _: Memory
                  ) -> list[tuple[Any, float]]:
    th = lim.threshold / 100.0
    sleep = WorkMode.SLEEP
    out = []
    for d in devices:
        r = d.reading
        if r is None:
            continue
        expected = r.expected_hashrate_ths
        if not expected:
            continue
        rate = r.hashrate_ths or 0.0
        if rate <= expected * th and d.state == "ok" and r.work_mode != sleep \
                and d.work_mode_set != "sleep":
            out.append((d, 100.0 * rate / expected))
    return out


def _fan_low(devices: list[Device], lim: Limits, now: float, _: Memory
             ) -> list[tuple[Any, float]]:
    th = lim.threshold
    out = []
    for d in devices:
        r = d.reading
        if r is not None:
            fans = r.fans_rpm
            if fans and min(fans) <= th and d.state == "ok":
                out.append((d, float(min(fans))))
    return out


def _boards_bad(devices: list[Device], lim: Limits, now: float, mem: Memory
                ) -> list[tuple[Any, float]]:
    th = lim.threshold
    most = mem.boards
    out = []
    for d in devices:
        r = d.reading
        if r is None:
            continue
        boards = r.boards
        bad = most.get(d.mac, 0) - len(boards)
        bad = bad if bad > 0 else 0
        hashing = (r.hashrate_ths or 0.0) > 0
        for b in boards:
            if b.chips == 0 or (hashing and b.hashrate_ths is not None and b.hashrate_ths <= 0):
                bad += 1
        if bad >= th and d.state == "ok":
            out.append((d, float(bad)))
    return out


def _no_pool(devices: list[Device], lim: Limits, now: float, _: Memory
             ) -> list[tuple[Any, float]]:
    out = []
    for d in devices:
        r = d.reading
        if r is None or not r.pools:
            continue
        for p in r.pools:
            if p.active:
                break
        else:
            if d.state == "ok" and not _asleep(d):
                out.append((d, 0.0))
    return out


def _rejected(devices: list[Device], lim: Limits, now: float, mem: Memory
              ) -> list[tuple[Any, float]]:
    th = lim.threshold
    pct = mem.reject_pct
    out = []
    for d in devices:
        v = pct.get(d.mac)
        if v is not None and v > th and d.state == "ok":
            out.append((d, v))
    return out


def _rebooted(devices: list[Device], lim: Limits, now: float, mem: Memory
              ) -> list[tuple[Any, float]]:
    hold = lim.threshold
    at = mem.rebooted_at
    if not at:
        return []
    out = []
    for d in devices:
        when = at.get(d.mac)
        if when is not None and now - when < hold:
            out.append((d, now - when))
    return out


def _mode_mismatch(devices: list[Device], lim: Limits, now: float, _: Memory
                   ) -> list[tuple[Any, float]]:
    out = []
    for d in devices:
        wanted = d.work_mode_set
        if not wanted or d.state != "ok":
            continue
        r = d.reading
        mode = r.work_mode if r is not None else None
        if mode is not None and mode != WorkMode.UNKNOWN and mode.value != wanted:
            out.append((d, 1.0))
    return out


# -- meter scans (meters are few: the Meters page's live view of each) --------------------------


def _meter_offline(meters: list[dict[str, Any]], lim: Limits, now: float, _: Memory
                   ) -> list[tuple[Any, float]]:
    out = []
    for m in meters:
        if m.get("state") != "error":
            continue
        since = now - float(m.get("updated_at") or m.get("watched_since") or now)
        if since >= lim.threshold:
            out.append((m, since))
    return out


def _phases(m: dict[str, Any]) -> list[float]:
    values = m.get("values") or {}
    return [float(values[p]) for p in PHASES if values.get(p) is not None]


def _voltage_band(meters: list[dict[str, Any]], lim: Limits, now: float, _: Memory
                  ) -> list[tuple[Any, float]]:
    out = []
    for m in meters:
        if m.get("state") != "ok":
            continue
        worst = None
        for v in _phases(m):
            if v < PHASE_LOST_BELOW:
                continue  # a lost phase is the other condition's
            if (v < lim.low or v > lim.high) and (
                    worst is None or abs(v - 230.0) > abs(worst - 230.0)):
                worst = v
        if worst is not None:
            out.append((m, worst))
    return out


PHASE_LOST_BELOW = 50.0


def _phase_lost(meters: list[dict[str, Any]], lim: Limits, now: float, _: Memory
                ) -> list[tuple[Any, float]]:
    out = []
    for m in meters:
        if m.get("state") != "ok":
            continue
        phases = _phases(m)
        if len(phases) >= 2 and min(phases) <= lim.threshold:
            out.append((m, min(phases)))
    return out


CONDITIONS: dict[str, Condition] = {c.name: c for c in (
    Condition("miner_offline", "miner", "atleast", threshold=60.0, unit="s", scan=_offline,
              description="the miner has not answered for threshold seconds"),
    Condition("miner_failing", "miner", "atleast", threshold=0.0, unit="s", scan=_failing,
              description="the miner answers, but garbled or with an error"),
    Condition("temp_chip_high", "miner", "above", threshold=90.0, hysteresis=5.0, unit="°C",
              scan=_reading_above("temp_chip_max_c"),
              description="the hottest chip is above threshold °C"),
    Condition("temp_board_high", "miner", "above", threshold=80.0, hysteresis=5.0, unit="°C",
              scan=_reading_above("temp_board_max_c"),
              description="the hottest board is above threshold °C"),
    Condition("hashrate_low", "miner", "below", threshold=80.0, hysteresis=5.0, unit="%",
              scan=_hashrate_low,
              description="hashrate at or below threshold % of the expected (not asleep)"),
    Condition("fan_low", "miner", "below", threshold=0.0, unit="rpm", scan=_fan_low,
              description="a fan at or below threshold rpm (0: stopped)"),
    Condition("board_dead", "miner", "atleast", threshold=1.0, scan=_boards_bad,
              description="at least threshold hash boards dead (no chips, no hashrate) or "
                          "missing"),
    Condition("pool_none", "miner", "flag", scan=_no_pool,
              description="no active pool (not asleep)"),
    Condition("rejected_high", "miner", "above", threshold=5.0, hysteresis=1.0, unit="%",
              scan=_rejected,
              description="rejected shares above threshold % over the last minutes"),
    Condition("miner_rebooted", "miner", "within", threshold=600.0, unit="s", scan=_rebooted,
              description="the uptime went back (shown for threshold seconds)"),
    Condition("work_mode_mismatch", "miner", "flag", scan=_mode_mismatch,
              description="the work mode differs from the one last set through the agent"),
    Condition("meter_offline", "meter", "atleast", threshold=60.0, unit="s", scan=_meter_offline,
              description="the meter has not answered for threshold seconds"),
    Condition("voltage_out_of_band", "meter", "band", hysteresis=2.0, low=198.0, high=253.0,
              unit="V", scan=_voltage_band,
              description="a phase voltage outside [low, high] V"),
    Condition("phase_lost", "meter", "below", threshold=PHASE_LOST_BELOW, hysteresis=20.0,
              unit="V", scan=_phase_lost,
              description="a phase at or below threshold V (lost)"),
    Condition("feed_over_budget", "reported", "flag",
              description="a power feed draws more than its budget (reported by power "
                          "control)"),
    Condition("meter_stale", "reported", "flag",
              description="a feed's meter gave no fresh reading (reported by power control)"),
)}
