"""One output instance at run time: its buffer, its flush loop, its retry policy.

Each output owns a buffer — a ring in memory (``metric_buffer_limit``, drop-oldest) or a folder
on disk (``buffer = "disk"``, bounded by ``buffer_max_bytes``, :mod:`.disk_buffer`) — and
flushes every ``flush_interval``, or early when a batch is full. A failed write is retried with
back-off capped by the flush interval (Retry-After honoured), so writing resumes within one
flush interval of the server coming back; 413 halves the batch; another permanent error drops
the batch and says why. Overflow is counted and logged (:mod:`.overflow`). An output replaced by
a reload hands its buffer to its successor (:meth:`detach`, :func:`adopt_buffer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from webbo.agent.core.buffer import MetricBuffer, OutputBuffer
from webbo.agent.core.config import Config, PluginInstance, config_key, output_buffer_dir
from webbo.agent.core.contract import Output
from webbo.agent.core.disk_buffer import DiskBuffer, move_folder
from webbo.agent.core.errors import BatchTooLargeError, PermanentWriteError, RetryableWriteError
from webbo.agent.core.metric import FieldValue, Metric
from webbo.agent.core.overflow import DropReporter

log = structlog.get_logger("webbo.agent")

__all__ = ["BufferSettings", "OutputRunner", "OutputStats", "adopt_buffer"]


@dataclass(frozen=True)
class BufferSettings:
    """Where and how much one output buffers (from its table and ``[agent]``)."""

    kind: str
    limit: int
    directory: Path | None
    max_bytes: int
    flush_interval: float
    label: str

    @classmethod
    def of(cls, inst: PluginInstance, config: Config, memory_only: bool = False
           ) -> BufferSettings:
        cfg, agent = inst.config, config.agent
        kind = "memory" if memory_only else getattr(cfg, "buffer", "memory")
        return cls(kind=kind,
                   limit=getattr(cfg, "metric_buffer_limit", None) or agent.metric_buffer_limit,
                   directory=output_buffer_dir(config, inst) if kind == "disk" else None,
                   max_bytes=int(getattr(cfg, "buffer_max_bytes", 0) or 0),
                   flush_interval=float(getattr(cfg, "flush_interval", None)
                                        or agent.flush_interval),
                   label=inst.label)

    def make(self) -> OutputBuffer:
        if self.kind == "disk" and self.directory is not None:
            return DiskBuffer(self.directory, self.max_bytes, limit=self.limit,
                              flush_interval=self.flush_interval, label=self.label)
        return MetricBuffer(self.limit)

    def describe_limit(self) -> str:
        if self.kind == "disk":
            return f"{human_bytes(self.max_bytes)} on disk"
        return f"{self.limit} metrics in memory"


def human_bytes(count: int) -> str:
    """``1073741824`` → ``"1.07 GB"`` (decimal units, as the config's sizes read)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count} B"


async def adopt_buffer(previous: OutputBuffer, settings: BufferSettings) -> OutputBuffer:
    """The buffer of a replaced output, made fit for its successor: the same one with new
    bounds when its kind and folder stay, else a new one that takes over what it held."""
    if isinstance(previous, MetricBuffer) and settings.kind == "memory":
        previous.resize(settings.limit)
        return previous
    if isinstance(previous, DiskBuffer) and settings.kind == "disk" \
            and previous.directory == settings.directory:
        previous.reconfigure(settings.max_bytes, settings.limit, settings.flush_interval)
        return previous
    if isinstance(previous, DiskBuffer) and settings.directory is not None:
        await previous.close()
        moved = await asyncio.to_thread(move_folder, previous.directory, settings.directory)
        log.info("disk buffer moved" if moved else "disk buffer left in place (the new folder "
                 "already holds data; both are sent)", old=str(previous.directory),
                 new=str(settings.directory))
        return settings.make()
    successor = settings.make()
    metrics = await previous.take_all(settings.limit)  # type: ignore[attr-defined]
    for metric in metrics:
        successor.add(metric)
    await previous.close()
    log.info("output buffer switched", to=settings.kind, metrics=len(metrics))
    return successor


@dataclass
class OutputStats:
    written: int = 0
    write_errors: int = 0
    dropped_batches: int = 0
    """Metrics dropped because the server refused them for good (not buffer overflow)."""
    write_time: float = 0.0
    last_error: str = ""


class OutputRunner:
    """One output instance: its buffer, its flush loop, its retry policy."""

    def __init__(
        self,
        inst: PluginInstance,
        output: Output,
        config: Config,
        buffer: OutputBuffer | None = None,
        *,
        memory_only: bool = False,
    ) -> None:
        """``buffer``: the predecessor's, already fit (:func:`adopt_buffer`); else a new one.
        ``memory_only``: a memory ring whatever the config says (``webbo once``)."""
        self.inst = inst
        self.output = output
        agent = config.agent
        cfg = inst.config
        self.batch_size: int = getattr(cfg, "metric_batch_size", None) or agent.metric_batch_size
        self.settings = BufferSettings.of(inst, config, memory_only)
        self.flush_interval: float = self.settings.flush_interval
        self.flush_jitter = float(agent.flush_jitter)
        self.max_backoff = float(agent.retry_max_backoff)
        self.namepass: list[str] = list(getattr(cfg, "namepass", []) or [])
        self.namedrop: list[str] = list(getattr(cfg, "namedrop", []) or [])
        self.log = log.bind(output=inst.label)
        self.drops = DropReporter(self.log, self.settings.describe_limit())
        self.buffer: OutputBuffer = buffer if buffer is not None else self.settings.make()
        self.buffer.on_drop = self.drops.dropped
        self.stats = OutputStats()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failures = 0
        self._split = 0  # >0 while halving batches after a 413
        self._retry_after: float | None = None
        self._stop_event = asyncio.Event()

    @staticmethod
    def key_for(inst: PluginInstance, config: Config) -> bytes:
        agent = config.agent
        return inst.key + config_key(
            [agent.metric_batch_size, agent.metric_buffer_limit, agent.flush_interval,
             agent.flush_jitter, agent.retry_max_backoff]
        )

    def wants(self, name: str) -> bool:
        if self.namepass and not any(fnmatch.fnmatchcase(name, p) for p in self.namepass):
            return False
        return not (self.namedrop and any(fnmatch.fnmatchcase(name, p) for p in self.namedrop))

    def add(self, metric: Metric) -> None:
        self.buffer.add(metric)
        if len(self.buffer) >= self.batch_size:
            self._wake.set()

    def start(self) -> None:
        self.buffer.start()
        self._task = asyncio.create_task(self._loop(), name=f"output {self.inst.label}")

    async def _usable_buffer(self, failing: bool = False) -> None:
        """A disk buffer whose folder cannot be used (or that cannot write and has nothing left
        to send: ``failing``) gives way to a memory ring (logged), so metrics still flow. What
        it already holds stays in its folder, sent at the next start."""
        buffer = self.buffer
        if not isinstance(buffer, DiskBuffer):
            return
        if not failing and await buffer.opened() is not None:
            return
        pending = int(buffer.describe()["buffer_pending"])
        self.log.error("disk buffer unusable; buffering in memory instead", error=buffer.error,
                       limit=self.settings.limit, kept_on_disk=len(buffer) - pending)
        ring = MetricBuffer(self.settings.limit)
        ring.on_drop = self.drops.dropped
        for metric in await buffer.take_pending():
            ring.add(metric)
        self.buffer = ring
        await buffer.close()

    async def _loop(self) -> None:
        await self._usable_buffer()
        try:
            await self.output.connect()
        except Exception as exc:  # a dead output at start is not fatal: writes retry
            self.stats.last_error = str(exc)
            self.log.warning("output not reachable at start; will retry", error=str(exc))
        retrying = False
        while not self._stopping:
            if not retrying:
                delay = self.flush_interval + random.uniform(0, self.flush_jitter)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                self._wake.clear()
            if self._stopping:
                break
            retrying = not await self.flush()
            if retrying and not self._stopping:
                await self._sleep(self._backoff())

    def _backoff(self) -> float:
        """Seconds before the next attempt: the server's Retry-After when it sent one, else
        doubling from 0.5 s, never longer than the flush interval (nor retry_max_backoff), so
        writing resumes within one flush interval of the server coming back."""
        retry_after = self._retry_after
        if retry_after is not None:
            return min(max(retry_after, 0.1), max(self.max_backoff, retry_after))
        cap = min(self.max_backoff, self.flush_interval)
        return min(cap, 0.5 * 2 ** min(self._failures - 1, 16))

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the output is being stopped."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop_event.wait()

    async def flush(self) -> bool:
        """Write everything buffered, in batches. False when a write failed and should be
        retried later (the failed batch stays at the head of the buffer)."""
        self._retry_after = None
        while len(self.buffer):
            size = self._split or self.batch_size
            batch, last_seq = await self.buffer.read(size)
            if last_seq < 0:
                if isinstance(self.buffer, DiskBuffer) and self.buffer.error:
                    await self._usable_buffer(failing=True)
                    continue
                break
            started = time.perf_counter()
            try:
                await self.output.write(batch)
            except RetryableWriteError as exc:
                self._failures += 1
                self._retry_after = exc.retry_after
                self.stats.write_errors += 1
                self.stats.last_error = str(exc)
                self.log.warning("write failed; will retry", error=str(exc),
                                 buffered=len(self.buffer), attempt=self._failures)
                return False
            except BatchTooLargeError as exc:
                self.stats.write_errors += 1
                if len(batch) > 1:
                    self._split = max(1, len(batch) // 2)
                    self.log.info("batch too large; splitting", size=len(batch), to=self._split)
                    continue
                self.buffer.ack(last_seq)
                self.stats.dropped_batches += 1
                self.log.error("metric too large for the server; dropped", error=str(exc))
                continue
            except PermanentWriteError as exc:
                self.stats.write_errors += 1
                self.stats.dropped_batches += len(batch)
                self.stats.last_error = str(exc)
                self.buffer.ack(last_seq)
                self.log.error("server refused the batch; dropped", error=str(exc),
                               size=len(batch))
                continue
            except Exception as exc:  # an output bug: treat as retryable, never lose data
                self._failures += 1
                self.stats.write_errors += 1
                self.stats.last_error = repr(exc)
                self.log.exception("output raised an unexpected error; will retry")
                return False
            self.stats.write_time += time.perf_counter() - started
            self.stats.written += self.buffer.ack(last_seq)
            if self._failures:
                self.log.info("output recovered", after_failures=self._failures,
                              buffered=len(self.buffer))
            self.drops.recovered()
            self._failures = 0
            self._split = 0
        return True

    async def stop(self, flush_timeout: float = 5.0) -> None:
        """Stop the loop, try one last flush within ``flush_timeout``, close the output."""
        self._stopping = True
        self._stop_event.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                async with asyncio.timeout(flush_timeout):
                    await self._task
            self._task = None
        if len(self.buffer) and flush_timeout > 0:
            self._stopping = False
            with contextlib.suppress(TimeoutError, Exception):
                async with asyncio.timeout(flush_timeout):
                    await self.flush()
            self._stopping = True
        with contextlib.suppress(Exception):
            await self.output.close()
        try:
            await self.buffer.close()
        except Exception:
            self.log.exception("closing the buffer failed")

    async def detach(self) -> OutputBuffer:
        """Stop without a final flush and hand the buffer over (reload of a changed output)."""
        self._stopping = True
        self._stop_event.set()
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.output.close()
        return self.buffer

    def internal_fields(self) -> dict[str, FieldValue]:
        fields: dict[str, FieldValue] = {
            "buffer_size": len(self.buffer),
            "buffer_limit": self.buffer.limit,
            "metrics_dropped": self.buffer.dropped + self.stats.dropped_batches,
            "metrics_written": self.stats.written,
            "write_errors": self.stats.write_errors,
            "write_time_s": round(self.stats.write_time, 6),
            "buffer_dropped": self.buffer.dropped,
            "buffer_oldest_s": round(self.buffer.oldest_age() or 0.0, 3),
        }
        for key, value in self.buffer.describe().items():
            if isinstance(value, int):
                fields[key] = value
        return fields

    def status(self) -> dict[str, Any]:
        """The output's figures, its buffer and whether it is dropping (``webbo status``)."""
        return {"name": self.inst.name, "label": self.inst.label, **self.internal_fields(),
                **self.buffer.describe(), **self.drops.status(),
                "failing": self._failures > 0, "last_error": self.stats.last_error}
