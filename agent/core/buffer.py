"""The per-output metric buffer: what every buffer does, and the memory ring.

Each entry carries a sequence number, so a batch that is being written can be acknowledged
safely even if the buffer overflowed (and dropped part of that batch) while the write was in
flight: acknowledging removes entries up to the batch's last sequence number, no more.

Two kinds implement :class:`OutputBuffer`: :class:`MetricBuffer` here (a bounded ring in
memory: the demo's and the tests'; lost on restart) and
:class:`~webbo.agent.core.disk_buffer.DiskBuffer` (segments on disk that survive a restart and a
kill -9). An output's runner only ever talks to this interface.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import Any, Protocol

from webbo.agent.core.metric import Metric

__all__ = ["DropCallback", "MetricBuffer", "OutputBuffer"]

DropCallback = Callable[[int, float | None], None]
"""Called with (metrics dropped, seconds the oldest of them had waited)."""


class OutputBuffer(Protocol):
    """What an output's runner needs of its buffer."""

    kind: str
    limit: int
    dropped: int
    on_drop: DropCallback | None

    def __len__(self) -> int: ...

    def add(self, metric: Metric) -> None:
        """Keep one metric (on the poll path: quick, never blocking, never raising)."""

    def start(self) -> None:
        """Begin background work, if any (called on the event loop)."""

    async def read(self, count: int) -> tuple[Sequence[Metric], int]:
        """The oldest ``count`` metrics and the sequence number of the last one (-1 if
        empty); the same ones again until they are acknowledged."""

    def ack(self, last_seq: int) -> int:
        """Remove every entry up to and including ``last_seq``; returns how many."""

    def oldest_age(self) -> float | None:
        """Seconds the oldest buffered metric has waited (None when empty)."""

    def describe(self) -> dict[str, Any]:
        """Figures for status and self-metrics."""

    async def close(self) -> None:
        """Keep what must be kept (the disk buffer writes and syncs); release resources."""


class MetricBuffer:
    """A ring buffer of metrics in memory with drop-oldest overflow."""

    __slots__ = ("_inflight", "_inflight_dropped", "_items", "_mark_at", "_marks", "_next_seq",
                 "dropped", "limit", "on_drop")

    kind = "memory"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: deque[tuple[int, Metric]] = deque()
        self._next_seq = 0
        self.dropped = 0
        self.on_drop: DropCallback | None = None
        self._marks: deque[tuple[int, float]] = deque()
        """(first sequence number, wall-clock time) once a second: how long entries waited."""
        self._mark_at = 0.0
        self._inflight: tuple[int, int] | None = None
        """The sequence numbers of the batch being written (the last :meth:`read`)."""
        self._inflight_dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, metric: Metric) -> None:
        seq = self._next_seq
        self._items.append((seq, metric))
        self._next_seq = seq + 1
        now = time.monotonic()
        if now - self._mark_at >= 1.0:
            self._mark_at = now
            self._marks.append((seq, time.time()))
        if len(self._items) > self.limit:
            self._drop(1)

    def _added_at(self, seq: int) -> float | None:
        """When entry ``seq`` was added (to the second); forgets marks older than it."""
        marks = self._marks
        while len(marks) > 1 and marks[1][0] <= seq:
            marks.popleft()
        return marks[0][1] if marks else None

    def _drop(self, count: int) -> None:
        seq = -1
        inflight = self._inflight
        for _ in range(count):
            seq = self._items.popleft()[0]
            if inflight is not None and inflight[0] <= seq <= inflight[1]:
                self._inflight_dropped += 1
        self.dropped += count
        if self.on_drop is not None:
            added = self._added_at(seq)
            self.on_drop(count, None if added is None else time.time() - added)

    def extend(self, metrics: Iterable[Metric]) -> None:
        for metric in metrics:
            self.add(metric)

    def start(self) -> None:
        return None

    def peek(self, count: int) -> tuple[list[Metric], int]:
        """The oldest ``count`` metrics and the sequence number of the last one (-1 if empty)."""
        head = list(islice(self._items, count))
        if not head:
            return [], -1
        return [m for _, m in head], head[-1][0]

    async def read(self, count: int) -> tuple[Sequence[Metric], int]:
        metrics, last = self.peek(count)
        self._inflight = (last - len(metrics) + 1, last) if metrics else None
        self._inflight_dropped = 0
        return metrics, last

    def ack(self, last_seq: int) -> int:
        """Remove every entry up to and including ``last_seq``; returns how many were removed."""
        if self._inflight is not None and last_seq >= self._inflight[1]:
            # Dropped from the ring while their batch was being written, yet delivered.
            self.dropped -= self._inflight_dropped
            self._inflight, self._inflight_dropped = None, 0
        removed = 0
        items = self._items
        while items and items[0][0] <= last_seq:
            items.popleft()
            removed += 1
        return removed

    def resize(self, limit: int) -> None:
        """Change the limit (on reload); shrinking drops the oldest, counted."""
        self.limit = limit
        excess = len(self._items) - limit
        if excess > 0:
            self._drop(excess)

    def oldest_age(self) -> float | None:
        if not self._items:
            return None
        added = self._added_at(self._items[0][0])
        return None if added is None else max(0.0, time.time() - added)

    def describe(self) -> dict[str, Any]:
        return {"buffer": "memory"}

    async def take_all(self, limit: int | None = None) -> list[Metric]:
        """Every buffered metric, oldest first, emptying the buffer (a switch to the disk).
        (``limit`` is for the disk buffer's; a ring holds no more than its own.)"""
        items = [m for _, m in self._items]
        self._items.clear()
        return items

    async def close(self) -> None:
        return None
