"""The electrical side of simulated devices: how a miner's draw follows its state, and the
loads a simulated meter measures.

Every simulated miner family (Antminer, Whatsminer, cgminer) gives each device a
:class:`PowerModel`: the device says where its draw is heading (:meth:`PowerModel.follow`
with "mining or not" and the steady watts of its state), the model moves there the way
firmware does, and the device reports :meth:`PowerModel.watts` wherever its real firmware
reports power (a Whatsminer's summary ``Power``; a stock Antminer reports none):

* to sleep: the hash boards stop within seconds (``sleep_s``), the draw falls to the control
  board and idling fans;
* waking up: the boards initialise first (``boot_s``, the draw barely moves), then the draw
  climbs to full over ``wake_s`` as the boards tune;
* a power-percent or power-mode change while mining ramps over ``ramp_s``.

Every duration is divided by ``speed`` (tests run "90 s of simulated time" in a few real
seconds). The options come from ``SimOptions.extra["power"]`` of ``webbo simulate``::

    {"speed": 5, "sleep_s": 5, "boot_s": 30, "wake_s": 90, "ramp_s": 20}

A simulated meter that measures part of the farm asks the process-wide :data:`LOADS` for the
draw of the miners on its address ranges: meters and miners of one ``webbo simulate`` process
only (a farm split into shard processes is not measured across them).
"""

from __future__ import annotations

import bisect
import ipaddress
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["LOADS", "Loads", "PowerModel", "PowerTiming", "parse_span"]


@dataclass(frozen=True)
class PowerTiming:
    """How fast a simulated miner's draw moves (seconds of simulated time, and the speed)."""

    speed: float = 1.0
    sleep_s: float = 5.0
    boot_s: float = 30.0
    wake_s: float = 90.0
    ramp_s: float = 20.0

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> PowerTiming:
        """From ``SimOptions.extra["power"]`` (unknown keys are refused: a typo would
        otherwise silently give the defaults)."""
        raw = extra.get("power") or {}
        if not isinstance(raw, dict):
            raise ValueError('SimOptions.extra["power"] must be a table of options')
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"power: unknown options {unknown} (known: {sorted(known)})")
        values = {k: float(v) for k, v in raw.items()}
        if values.get("speed", 1.0) <= 0 or any(v < 0 for v in values.values()):
            raise ValueError("power: speed must be positive and durations not negative")
        return cls(**values)

    def scaled(self, seconds: float) -> float:
        return seconds / self.speed


class PowerModel:
    """One device's draw in watts over time: piecewise linear between breakpoints, moved by
    :meth:`follow` whenever the device's state says its steady draw changed."""

    def __init__(self, watts: float, *, mining: bool = True, idle_w: float = 15.0,
                 timing: PowerTiming | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timing = timing or PowerTiming()
        self.clock = clock
        self.idle_w = idle_w
        self.mining = mining
        self.target = float(watts)
        self._points: list[tuple[float, float]] = [(clock(), float(watts))]

    def watts(self, now: float | None = None) -> float:
        """The draw now."""
        now = self.clock() if now is None else now
        points = self._points
        if now >= points[-1][0]:
            if len(points) > 1:
                self._points = points = [points[-1]]
            return points[-1][1]
        previous = points[0]
        for point in points[1:]:
            if now < point[0]:
                (t0, w0), (t1, w1) = previous, point
                return w0 + (w1 - w0) * (now - t0) / (t1 - t0) if t1 > t0 else w1
            previous = point
        return points[-1][1]

    def settled(self, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        return now >= self._points[-1][0]

    def follow(self, mining: bool, watts: float) -> None:
        """The device's state now means ``watts`` when steady (``mining`` False: asleep, off
        or rebooting, ``watts`` its idle draw). Starts the move there if anything changed."""
        watts = float(watts)
        if mining == self.mining and watts == self.target:
            return
        now = self.clock()
        current = self.watts(now)
        t = self.timing
        if not mining:
            points = [(now, current), (now + t.scaled(t.sleep_s), watts)]
        elif not self.mining:
            boot_end = now + t.scaled(t.boot_s)
            points = [(now, current), (boot_end, current + 0.04 * max(0.0, watts - current)),
                      (boot_end + t.scaled(t.wake_s), watts)]
        else:
            points = [(now, current), (now + t.scaled(t.ramp_s), watts)]
        self._points = points
        self.mining = mining
        self.target = watts

    def restart(self, away_s: float, watts: float) -> None:
        """A reboot: the draw falls to idle at once, stays there while the device is away for
        ``away_s`` (real seconds, as the simulator keeps it away), then wakes up to
        ``watts``."""
        now = self.clock()
        t = self.timing
        back = now + max(away_s, 0.0)
        boot_end = back + t.scaled(t.boot_s)
        self._points = [(now, self.watts(now)), (now + min(1.0, away_s), self.idle_w),
                        (back, self.idle_w),
                        (boot_end, self.idle_w + 0.04 * max(0.0, watts - self.idle_w)),
                        (boot_end + t.scaled(t.wake_s), float(watts))]
        self.mining, self.target = True, float(watts)

    def jump(self, mining: bool, watts: float) -> None:
        """Be at ``watts`` at once (a device that starts, or a test that sets the scene)."""
        self.mining, self.target = mining, float(watts)
        self._points = [(self.clock(), float(watts))]


def parse_span(text: str) -> tuple[int, int]:
    """``"127.77.0.1-127.77.0.50"`` (or one address) → its first and last as integers."""
    first, _, last = str(text).partition("-")
    low = int(ipaddress.IPv4Address(first.strip()))
    high = int(ipaddress.IPv4Address(last.strip())) if last.strip() else low
    if high < low:
        raise ValueError(f"{text!r}: the last address is before the first")
    return low, high


class Loads:
    """The power models of the simulated miners of this process, by address."""

    def __init__(self) -> None:
        self._by_ip: dict[int, PowerModel] = {}
        self._sorted: list[int] | None = None

    def register(self, ip: str, model: PowerModel) -> None:
        self._by_ip[int(ipaddress.IPv4Address(ip))] = model
        self._sorted = None

    def unregister(self, ip: str) -> None:
        if self._by_ip.pop(int(ipaddress.IPv4Address(ip)), None) is not None:
            self._sorted = None

    def members(self, spans: Iterable[tuple[int, int]]) -> list[PowerModel]:
        """The models of the miners whose addresses fall in ``spans``."""
        if self._sorted is None:
            self._sorted = sorted(self._by_ip)
        keys = self._sorted
        found: list[PowerModel] = []
        for low, high in spans:
            start = bisect.bisect_left(keys, low)
            stop = bisect.bisect_right(keys, high)
            found.extend(self._by_ip[k] for k in keys[start:stop])
        return found

    def watts(self, spans: Iterable[tuple[int, int]]) -> float:
        """The draw of every registered miner in ``spans`` now."""
        return sum(model.watts() for model in self.members(spans))


LOADS = Loads()
"""Every simulated miner of this process (its family registers it when it starts)."""
