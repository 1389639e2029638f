"""One input instance at run time, ticking on its interval, and the accumulator it fills.

Only one gather of an instance is ever in flight: a tick that finds the previous gather still
running is an *overrun*, counted and logged, never stacked. The accumulator applies the input's
tags and hands each metric on (to every output's buffer, and to whoever listens to metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from webbo.agent.core.config import Config, PluginInstance, config_key
from webbo.agent.core.contract import Input
from webbo.agent.core.metric import FieldValue, Metric

log = structlog.get_logger("webbo.agent")

__all__ = ["Accumulator", "InputRunner", "InputStats"]


@dataclass
class InputStats:
    gathers: int = 0
    errors: int = 0
    metrics: int = 0
    overruns: int = 0
    last_gather_time: float = 0.0
    last_error: str = ""


class Accumulator:
    """What a gather writes into: applies the input's tags and feeds every output's buffer."""

    __slots__ = ("_dispatch", "_stats", "_tags", "errors", "log")

    def __init__(
        self,
        dispatch: Callable[[Metric], None],
        tags: dict[str, str],
        stats: InputStats,
        logger: Any,
    ) -> None:
        self._dispatch = dispatch
        self._tags = tags
        self._stats = stats
        self.errors = 0
        self.log = logger

    def add(self, metric: Metric) -> None:
        if self._tags:
            metric.add_tags(self._tags)
        self._stats.metrics += 1
        self._dispatch(metric)

    def add_fields(
        self,
        name: str,
        tags: dict[str, str],
        fields: dict[str, FieldValue],
        time: int | None = None,
    ) -> None:
        self.add(Metric(name, tags, fields, time))

    def add_error(self, error: BaseException | str) -> None:
        self.errors += 1
        self._stats.errors += 1
        self._stats.last_error = str(error)
        self.log.warning("gather error", error=str(error))


class InputRunner:
    """One input instance ticking on its interval; at most one gather in flight."""

    def __init__(
        self,
        inst: PluginInstance | None,
        input_: Input,
        config: Config,
        dispatch: Callable[[Metric], None],
        *,
        label: str | None = None,
        key: bytes | None = None,
    ) -> None:
        self.inst = inst
        self.input = input_
        cfg = inst.config if inst is not None else None
        self.label = label or (inst.label if inst is not None else "?")
        self.name = inst.name if inst is not None else self.label
        self.alias = getattr(cfg, "alias", "") if cfg is not None else ""
        own = getattr(cfg, "interval", None) if cfg else getattr(input_, "interval", None)
        self.interval: float = float(own or config.agent.interval)
        self.jitter = float(config.agent.jitter)
        self.tags: dict[str, str] = dict(getattr(cfg, "tags", {}) or {}) if cfg else {}
        self.dispatch = dispatch
        self.stats = InputStats()
        self.log = log.bind(input=self.label)
        self.key = key if key is not None else self.key_for(inst, config) if inst else b""
        self._task: asyncio.Task[None] | None = None
        self._gather: asyncio.Task[bool] | None = None

    @staticmethod
    def key_for(inst: PluginInstance, config: Config) -> bytes:
        return inst.key + config_key([config.agent.interval, config.agent.jitter])

    async def start(self) -> None:
        starter = getattr(self.input, "start", None)
        if starter is not None:
            await starter()
        self._task = asyncio.create_task(self._loop(), name=f"input {self.label}")

    async def _loop(self) -> None:
        interval = self.interval
        # Align ticks to the interval (like Telegraf's round_interval) so metrics of all inputs
        # share timestamps' rhythm; the first gather happens right away.
        next_tick = time.monotonic()
        while True:
            delay = next_tick - time.monotonic() + random.uniform(0, self.jitter)
            if delay > 0:
                await asyncio.sleep(delay)
            if self._gather is not None and not self._gather.done():
                self.stats.overruns += 1
                self.log.warning("gather still running at the next tick; skipped",
                                 interval=interval, overruns=self.stats.overruns)
            else:
                self._gather = asyncio.create_task(self.gather_once(), name=f"gather {self.label}")
            next_tick += interval
            now = time.monotonic()
            if next_tick < now:  # fell behind (long overrun): skip the missed ticks
                next_tick += ((now - next_tick) // interval + 1) * interval

    async def gather_once(self, dispatch: Callable[[Metric], None] | None = None) -> bool:
        """Run one gather. True if it finished without errors."""
        acc = Accumulator(dispatch or self.dispatch, self.tags, self.stats, self.log)
        started = time.perf_counter()
        ok = True
        try:
            await self.input.gather(acc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            ok = False
            self.stats.errors += 1
            self.stats.last_error = repr(exc)
            self.log.exception("gather failed")
        self.stats.gathers += 1
        self.stats.last_gather_time = time.perf_counter() - started
        return ok and acc.errors == 0

    async def stop(self) -> None:
        for task in (self._task, self._gather):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = self._gather = None
        stopper = getattr(self.input, "stop", None)
        if stopper is not None:
            try:
                await stopper()
            except Exception:
                self.log.exception("input stop failed")

    def internal_fields(self) -> dict[str, FieldValue]:
        fields: dict[str, FieldValue] = {
            "gather_time_s": round(self.stats.last_gather_time, 6),
            "gathers": self.stats.gathers,
            "gather_errors": self.stats.errors,
            "metrics_gathered": self.stats.metrics,
            "overruns": self.stats.overruns,
        }
        extra = getattr(self.input, "internal_fields", None)
        if extra is not None:
            try:
                fields.update(extra())
            except Exception:
                self.log.exception("internal_fields failed")
        return fields
