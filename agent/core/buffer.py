"""The per-output metric buffer: a bounded ring that drops the oldest and counts what it drops.

Each entry carries a sequence number, so a batch that is being written can be acknowledged
safely even if the ring overflowed (and dropped part of that batch) while the write was in
flight: acknowledging removes entries up to the batch's last sequence number, no more.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from itertools import islice

from webbo.agent.core.metric import Metric


class MetricBuffer:
    """A ring buffer of metrics with drop-oldest overflow."""

    __slots__ = ("_items", "_next_seq", "dropped", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: deque[tuple[int, Metric]] = deque()
        self._next_seq = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, metric: Metric) -> None:
        self._items.append((self._next_seq, metric))
        self._next_seq += 1
        if len(self._items) > self.limit:
            self._items.popleft()
            self.dropped += 1

    def extend(self, metrics: Iterable[Metric]) -> None:
        for metric in metrics:
            self.add(metric)

    def peek(self, count: int) -> tuple[list[Metric], int]:
        """The oldest ``count`` metrics and the sequence number of the last one (-1 if empty)."""
        head = list(islice(self._items, count))
        if not head:
            return [], -1
        return [m for _, m in head], head[-1][0]

    def ack(self, last_seq: int) -> int:
        """Remove every entry up to and including ``last_seq``; returns how many were removed."""
        removed = 0
        items = self._items
        while items and items[0][0] <= last_seq:
            items.popleft()
            removed += 1
        return removed

    def resize(self, limit: int) -> None:
        """Change the limit (on reload); shrinking drops the oldest, counted."""
        self.limit = limit
        while len(self._items) > limit:
            self._items.popleft()
            self.dropped += 1
