"""A short, in-memory history of every miner: hashrate and hottest temperatures over time.

The web UI's miner page draws it as a chart ("the recent past"); InfluxDB keeps the long history.
It lives in the agent's memory only: nothing is written to disk, and a restart starts it afresh.

Why arrays and not a deque of tuples: at 10,000 miners a tuple per point would cost hundreds of
megabytes. Each miner gets one fixed-size ring instead: a ``uint32`` timestamp, the hashrate as
a ``float32`` and the two temperatures as ``int16`` hundredths of a degree per point (12 bytes:
2 KB a miner, 108 MB at 50,000), :data:`DEFAULT_POINTS` points, allocated on its first reading.
Recording is a few index stores on the hot poll path; no allocation after the first.

Points closer together than ``step`` seconds replace the newest one instead of adding another,
so the window covers at least ``points × step`` seconds whatever the poll interval is.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["DEFAULT_POINTS", "DEFAULT_STEP", "MinerHistory", "Point"]

DEFAULT_POINTS = 180
DEFAULT_STEP = 20.0
"""180 points at least 20 s apart: the last hour at least."""
DEFAULT_MAX_MINERS = 100_000
"""More MACs than this (a churning DHCP lab, a test that made up MACs): the oldest rings go.
Twice the 50,000 miners one agent is built for, so a full farm and its replaced units never
evict each other's history."""

_NAN = math.nan
_NO_TEMP = -32768
"""An absent temperature (the temperatures are int16 hundredths of a degree)."""


def _centi(value: float | None) -> int:
    if value is None or not -327.67 <= value <= 327.67:  # also NaN and ±inf
        return _NO_TEMP
    return round(value * 100)


def _temp(value: int) -> float | None:
    return None if value == _NO_TEMP else value / 100


@dataclass(frozen=True)
class Point:
    """One stored point; None where the miner did not report the value."""

    time: float
    hashrate_ths: float | None
    temp_board_max_c: float | None
    temp_chip_max_c: float | None


def _value(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


class _Ring:
    __slots__ = ("count", "hashrates", "head", "temps", "times")

    def __init__(self, size: int) -> None:
        self.times = array("I", bytes(4 * size))
        self.hashrates = array("f", [_NAN]) * size
        self.temps = array("h", [_NO_TEMP]) * (2 * size)
        self.head = 0
        """Index of the newest point."""
        self.count = 0


class MinerHistory:
    """Per-MAC rings of (time, hashrate TH/s, board max °C, chip max °C)."""

    def __init__(self, points: int = DEFAULT_POINTS, step: float = DEFAULT_STEP,
                 max_miners: int = DEFAULT_MAX_MINERS) -> None:
        if points < 2:
            raise ValueError("a history needs at least 2 points")
        self.points = points
        self.step = step
        self.max_miners = max_miners
        self._rings: dict[str, _Ring] = {}

    def __len__(self) -> int:
        return len(self._rings)

    def record(self, mac: str, hashrate_ths: float | None, temp_board_max_c: float | None,
               temp_chip_max_c: float | None, now: float | None = None) -> None:
        """Add one reading (called after every successful poll)."""
        t = int(time.time() if now is None else now)
        ring = self._rings.get(mac)
        if ring is None:
            if len(self._rings) >= self.max_miners:
                del self._rings[next(iter(self._rings))]
            ring = self._rings[mac] = _Ring(self.points)
            index = 0
            ring.count = 1
        elif t - ring.times[ring.head] < self.step:
            index = ring.head  # too soon after the newest point: replace it
        else:
            index = (ring.head + 1) % self.points
            if ring.count < self.points:
                ring.count += 1
        ring.head = index
        ring.times[index] = t
        ring.hashrates[index] = _NAN if hashrate_ths is None else hashrate_ths
        ring.temps[2 * index] = _centi(temp_board_max_c)
        ring.temps[2 * index + 1] = _centi(temp_chip_max_c)

    def series(self, mac: str, since: float | None = None) -> list[Point]:
        """The stored points of ``mac``, oldest first (only those at or after ``since``)."""
        return list(self._iter(mac, since))

    def _iter(self, mac: str, since: float | None) -> Iterator[Point]:
        ring = self._rings.get(mac)
        if ring is None:
            return
        start = (ring.head - ring.count + 1) % self.points
        for k in range(ring.count):
            index = (start + k) % self.points
            t = float(ring.times[index])
            if since is not None and t < since:
                continue
            yield Point(t, _value(ring.hashrates[index]), _temp(ring.temps[2 * index]),
                        _temp(ring.temps[2 * index + 1]))

    def forget(self, mac: str) -> None:
        self._rings.pop(mac, None)

    @property
    def window_s(self) -> float:
        """The shortest span the full ring covers."""
        return self.points * self.step
