"""Saying so when an output's buffer overflows: once at once, then once a minute.

Measured before this existed: a 3-minute InfluxDB outage at 1,000 miners dropped 26,311
metrics and not one log line said so. Now the first dropped metric of an overflow is logged at
warning with the output, the buffer's limit and how long the buffer held the outage; while
drops go on, one summary line a minute; when the output writes again, one line with the total.
:meth:`DropReporter.status` feeds ``webbo status``, the API and the UI's banner.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

__all__ = ["DropReporter"]

SUMMARY_EVERY = 60.0
"""Seconds between two summary lines while drops go on."""
QUIET_ENDS = 60.0
"""Seconds without a drop after which the next drop starts a new overflow (logged again)."""


class DropReporter:
    """Counts the metrics one output's buffer drops and logs them as described above."""

    def __init__(self, log: structlog.typing.FilteringBoundLogger, limit: str,
                 summary_every: float | None = None) -> None:
        self.log = log
        self.limit = limit
        """The bound as text for the log ("100000 metrics in memory", "1 GB on disk")."""
        self.summary_every = SUMMARY_EVERY if summary_every is None else summary_every
        self.total = 0
        self.episode = 0
        """Dropped since this overflow began."""
        self.first_at: float | None = None
        """Wall-clock time of the first drop of this overflow (None: not dropping)."""
        self.last_at: float | None = None
        self._since_summary = 0
        self._summary_at = 0.0
        self._last_mono = 0.0

    def dropped(self, count: int, held_s: float | None) -> None:
        """``count`` metrics were dropped; the oldest of them had waited ``held_s`` seconds."""
        if count <= 0:
            return
        now = time.monotonic()
        self.total += count
        if self.first_at is None or now - self._last_mono > QUIET_ENDS:
            self.first_at = time.time()
            self.episode = 0
            self._since_summary = 0
            self._summary_at = now
            self.log.warning(
                "output buffer full: dropping the oldest metrics", limit=self.limit,
                held_s=None if held_s is None else round(held_s, 1),
                hint="the server has been unreachable longer than the buffer holds; see "
                     "docs/deploy.md for sizing")
        self.episode += count
        self._since_summary += count
        self._last_mono = now
        self.last_at = time.time()
        if now - self._summary_at >= self.summary_every:
            self.log.warning("output buffer still dropping", dropped=self._since_summary,
                             in_s=round(now - self._summary_at, 1), total=self.episode,
                             limit=self.limit)
            self._summary_at = now
            self._since_summary = 0

    def recovered(self) -> None:
        """The output wrote again: close the overflow with its total."""
        if self.first_at is None:
            return
        self.log.warning("output writing again; metrics dropped while its server was away",
                         dropped=self.episode, since=_iso(self.first_at), limit=self.limit)
        self.first_at = None
        self.episode = 0
        self._since_summary = 0

    @property
    def dropping(self) -> bool:
        return self.first_at is not None and time.monotonic() - self._last_mono <= QUIET_ENDS

    def status(self) -> dict[str, Any]:
        return {"dropping": self.dropping, "dropping_since": self.first_at,
                "dropped_in_overflow": self.episode, "last_drop_at": self.last_at}


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(ts))
