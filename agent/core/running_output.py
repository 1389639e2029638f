"""One output instance at run time: its buffer, its flush loop, its retry policy.

Each output owns a ring buffer (``metric_buffer_limit``, drop-oldest, counted) and flushes every
``flush_interval``, or early when a batch is full. A failed write is retried with back-off
(Retry-After honoured); 413 halves the batch; another permanent error drops the batch and says
why. An output replaced by a reload hands its buffer to its successor (:meth:`detach`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import random
import time
from dataclasses import dataclass

import structlog

from webbo.agent.core.buffer import MetricBuffer
from webbo.agent.core.config import Config, PluginInstance, config_key
from webbo.agent.core.contract import Output
from webbo.agent.core.errors import BatchTooLargeError, PermanentWriteError, RetryableWriteError
from webbo.agent.core.metric import FieldValue, Metric

log = structlog.get_logger("webbo.agent")

__all__ = ["OutputRunner", "OutputStats"]


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
        buffer: MetricBuffer | None = None,
    ) -> None:
        self.inst = inst
        self.output = output
        agent = config.agent
        cfg = inst.config
        self.batch_size: int = getattr(cfg, "metric_batch_size", None) or agent.metric_batch_size
        limit: int = getattr(cfg, "metric_buffer_limit", None) or agent.metric_buffer_limit
        self.flush_interval: float = getattr(cfg, "flush_interval", None) or agent.flush_interval
        self.flush_jitter = float(agent.flush_jitter)
        self.max_backoff = float(agent.retry_max_backoff)
        self.namepass: list[str] = list(getattr(cfg, "namepass", []) or [])
        self.namedrop: list[str] = list(getattr(cfg, "namedrop", []) or [])
        if buffer is None:
            buffer = MetricBuffer(limit)
        else:
            buffer.resize(limit)
        self.buffer = buffer
        self.stats = OutputStats()
        self.log = log.bind(output=inst.label)
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
        self._task = asyncio.create_task(self._loop(), name=f"output {self.inst.label}")

    async def _loop(self) -> None:
        try:
            await self.output.connect()
        except Exception as exc:  # a dead output at start is not fatal: writes retry
            self.stats.last_error = str(exc)
            self.log.warning("output not reachable at start; will retry", error=str(exc))
        while not self._stopping:
            delay = self.flush_interval + random.uniform(0, self.flush_jitter)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                break
            ok = await self.flush()
            if not ok and not self._stopping:
                await self._sleep(self._backoff())

    def _backoff(self) -> float:
        retry_after = self._retry_after
        if retry_after is not None:
            return min(max(retry_after, 0.1), max(self.max_backoff, retry_after))
        return min(self.max_backoff, 0.5 * 2 ** min(self._failures, 16))

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
            batch, last_seq = self.buffer.peek(size)
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
                self.log.info("output recovered", after_failures=self._failures)
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

    async def detach(self) -> MetricBuffer:
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
        return {
            "buffer_size": len(self.buffer),
            "buffer_limit": self.buffer.limit,
            "metrics_dropped": self.buffer.dropped + self.stats.dropped_batches,
            "metrics_written": self.stats.written,
            "write_errors": self.stats.write_errors,
            "write_time_s": round(self.stats.write_time, 6),
        }
