"""What the meters measure, as the power controller hears it: every ``meter`` metric the agent
gathers (tag ``serial``, fields ``power_active_w`` and ``online``) passes through
:meth:`MeterWatch.observe` — on the poll path, so it only stores two numbers.

A feed's measured draw is the sum of its meters' latest readings, provided every one of them
is fresh (read within ``stale_after``); otherwise it is *stale* and the feed's controller holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from webbo.agent.core.metric import Metric
from webbo.agent.power.config import meter_key

__all__ = ["Measured", "MeterWatch"]


@dataclass
class Measured:
    watts: float | None
    """The sum of the feed's meters, or None when one of them is stale or missing."""
    at: float
    """Unix time of the oldest reading in the sum (0 when none)."""
    problem: str = ""
    note: tuple[str, dict[str, object]] = ("", {})
    """The problem as a text key and its values (the web UI says it in the page's language)."""


class MeterWatch:
    """The latest good reading and the latest failure of every meter, by its 8 digits."""

    def __init__(self) -> None:
        self.readings: dict[str, tuple[float, float]] = {}
        """meter key → (unix time, active power W) of its latest good reading."""
        self.failures: dict[str, tuple[float, str]] = {}
        self.seen = 0

    def observe(self, metric: Metric) -> None:
        if metric.name != "meter":
            return
        serial = metric.tags.get("serial")
        if not serial:
            return
        self.seen += 1
        fields = metric.fields
        key = meter_key(serial)
        watts = fields.get("power_active_w")
        at = metric.time / 1e9 if metric.time else time.time()
        if fields.get("online") is True and isinstance(watts, int | float) and \
                not isinstance(watts, bool):
            self.readings[key] = (at, float(watts))
        elif fields.get("online") is False:
            self.failures[key] = (at, str(fields.get("error", "no answer")))

    def measure(self, serials: list[str], stale_after: float,
                now: float | None = None) -> Measured:
        """The feed's draw from ``serials``, or why there is none."""
        now = time.time() if now is None else now
        total = 0.0
        oldest = now
        for serial in serials:
            key = meter_key(serial)
            reading = self.readings.get(key)
            if reading is None:
                failure = self.failures.get(key)
                why = f": {failure[1]}" if failure else ""
                return Measured(None, 0.0, f"meter {serial} has no reading yet{why}",
                                ("no_reading", {"serial": serial,
                                                "error": failure[1] if failure else ""}))
            at, watts = reading
            age = now - at
            if age > stale_after:
                failure = self.failures.get(key)
                why = f" ({failure[1]})" if failure and failure[0] > at else ""
                return Measured(None, at, f"meter {serial}: no reading for {age:.0f} s{why}",
                                ("stale", {"serial": serial, "age": round(age),
                                           "error": failure[1] if why and failure else ""}))
            total += watts
            oldest = min(oldest, at)
        return Measured(total, oldest)
