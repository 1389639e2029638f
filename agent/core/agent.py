"""The agent loop: inputs on their intervals, outputs with buffers, reload, self-metrics.

Nothing here knows any device. Data flows one way: an input's gather adds metrics to an
accumulator, the accumulator copies each metric into the buffer of every output that wants it,
and each output drains its own buffer in batches.

* Each input instance ticks on its own interval, with jitter. Only one gather of an instance is
  ever in flight: a tick that finds the previous gather still running is an *overrun*, counted
  and logged, never stacked.
* Each output owns a ring buffer (``metric_buffer_limit``, drop-oldest, counted) and flushes
  every ``flush_interval``, or early when a batch is full. Failed writes are retried with
  backoff (Retry-After honoured), 413 halves the batch, other permanent errors drop the batch.
* A reload validates first and keeps the running config when the new one is invalid. Only the
  plugin instances whose settings changed are restarted; an output that is replaced hands its
  buffer to its successor, so nothing buffered before a reload is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from webbo.agent.core import systemd
from webbo.agent.core.buffer import MetricBuffer
from webbo.agent.core.config import (
    Config,
    ConfigError,
    Mutation,
    PluginInstance,
    config_key,
    edit_config,
    load_config,
    persist_generated_uuids,
    to_json,
    write_atomically,
)
from webbo.agent.core.contract import Input, Output, PluginContext
from webbo.agent.core.errors import BatchTooLargeError, PermanentWriteError, RetryableWriteError
from webbo.agent.core.metric import FieldValue, Metric, now_ns
from webbo.agent.core.plugins import PluginRegistry
from webbo.agent.fleet.discovery import fleet_inputs

log = structlog.get_logger("webbo.agent")

INTERNAL = "webbo_internal"


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


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
            for key, value in self._tags.items():
                metric.tags.setdefault(key, value)
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
        self.interval: float = (getattr(cfg, "interval", None) if cfg else None) or float(
            config.agent.interval
        )
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


# --------------------------------------------------------------------------------------------
# The agent
# --------------------------------------------------------------------------------------------


@dataclass
class ReloadState:
    count: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_ok_at: float | None = None


CoreInput = tuple[bytes, str, Callable[[], Input]]
CoreInputFactory = Callable[["Agent", Config], list[CoreInput]]
"""Describes inputs that belong to the core (not to one ``[[inputs.*]]`` table) as
(identity key, label, builder) triples. A running core input keeps running across a reload while
its key stays the same; the builder is only called for a new key."""


@dataclass
class _FileSignature:
    mtime_ns: int = 0
    size: int = 0
    inode: int = 0

    @classmethod
    def of(cls, path: str) -> _FileSignature | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return cls(st.st_mtime_ns, st.st_size, st.st_ino)


class Agent:
    """The running agent: builds plugin instances from a Config and keeps them going."""

    def __init__(
        self,
        registry: PluginRegistry,
        config: Config,
        core_inputs: Sequence[CoreInputFactory] | None = None,
    ) -> None:
        self.registry = registry
        self.core_input_factories: list[CoreInputFactory] = list(
            (fleet_inputs,) if core_inputs is None else core_inputs
        )
        self.config = config
        self.inputs: list[InputRunner] = []
        self.outputs: list[OutputRunner] = []
        self.reload_state = ReloadState()
        self.started_at = time.time()
        self.services: dict[str, Any] = {}
        """Long-lived core services (inventory, tasks, ...) shared across reloads."""
        self._lock = asyncio.Lock()
        self._stopped = asyncio.Event()
        self._internal_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._status_task: asyncio.Task[None] | None = None
        self._file_sig = _FileSignature.of(config.path) if config.path else None
        self._running = False
        self._sighup = False
        self._reload_listeners: list[Callable[[Config], Awaitable[None] | None]] = []

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._running

    # -- metrics flow -----------------------------------------------------------------------

    def dispatch(self, metric: Metric) -> None:
        for output in self.outputs:
            if output.wants(metric.name):
                output.add(metric)

    def context(self, inst: PluginInstance | None, config: Config) -> PluginContext:
        label = inst.label if inst is not None else "core"
        return PluginContext(config=config, state_dir=config.state_dir,
                             log=log.bind(plugin=label), agent=self)

    # -- building ---------------------------------------------------------------------------

    def _make_output(self, inst: PluginInstance, config: Config,
                     buffer: MetricBuffer | None = None) -> OutputRunner | None:
        otype = self.registry.outputs[inst.name]
        try:
            output = otype.factory(inst.config, self.context(inst, config))
        except Exception as exc:
            log.error("output failed to start", output=inst.label, error=repr(exc))
            return None
        return OutputRunner(inst, output, config, buffer)

    def _gather_instances(self, config: Config) -> list[PluginInstance]:
        return [i for i in config.inputs if self.registry.inputs[i.name].kind == "gather"]

    def _make_input(self, inst: PluginInstance, config: Config) -> InputRunner | None:
        itype = self.registry.inputs[inst.name]
        try:
            obj = itype.factory(inst.config, self.context(inst, config))
        except Exception as exc:
            log.error("input failed to start", input=inst.label, error=repr(exc))
            return None
        return InputRunner(inst, obj, config, self.dispatch)

    def _core_inputs(self, config: Config) -> list[CoreInput]:
        built: list[CoreInput] = []
        for factory in self.core_input_factories:
            try:
                built.extend(factory(self, config))
            except Exception as exc:
                log.error("core input failed to start", factory=getattr(factory, "__name__", "?"),
                          error=repr(exc))
        return built

    # -- life cycle -------------------------------------------------------------------------

    async def start(self, *, watch: bool = True, signals: bool = True,
                    status_file: bool = False) -> None:
        """Start every output, then every input; watch the config file and SIGHUP."""
        async with self._lock:
            config = self.config
            if config.generated_uuids and config.path:
                try:
                    config = self.config = persist_generated_uuids(config, self.registry)
                    self._file_sig = _FileSignature.of(config.path) if config.path else None
                except (ConfigError, OSError) as exc:
                    log.warning("could not write generated uuids back", error=str(exc))
            for inst in config.outputs:
                runner = self._make_output(inst, config)
                if runner is not None:
                    runner.start()
                    self.outputs.append(runner)
            await self._start_inputs(config)
            self._running = True
        if config.agent.internal_metrics:
            self._internal_task = asyncio.create_task(self._internal_loop(), name="internal")
        if watch and config.path and config.agent.watch_config:
            self._watch_task = asyncio.create_task(self._watch_loop(), name="config watch")
        if status_file:
            self._status_task = asyncio.create_task(self._status_loop(), name="status file")
        if signals:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().add_signal_handler(
                    signal.SIGHUP, lambda: asyncio.ensure_future(self.reload_from_file("SIGHUP"))
                )
                self._sighup = True
        log.info("agent started", inputs=len(self.inputs), outputs=len(self.outputs),
                 config=config.path)

    async def _start_inputs(self, config: Config) -> None:
        for inst in self._gather_instances(config):
            runner = self._make_input(inst, config)
            if runner is not None:
                await self._start_input(runner)
        for key, label, build in self._core_inputs(config):
            runner = self._build_core(key, label, build, config)
            if runner is not None:
                await self._start_input(runner)

    def _build_core(self, key: bytes, label: str, build: Callable[[], Input], config: Config
                    ) -> InputRunner | None:
        try:
            obj = build()
        except Exception as exc:
            log.error("core input failed to start", input=label, error=repr(exc))
            return None
        return InputRunner(None, obj, config, self.dispatch, label=label, key=key)

    async def _start_input(self, runner: InputRunner) -> None:
        try:
            await runner.start()
        except Exception as exc:
            runner.log.error("input failed to start", error=repr(exc))
            return
        self.inputs.append(runner)

    async def run(self) -> None:
        """Run until :meth:`stop` is called (SIGINT/SIGTERM in ``webbo run``)."""
        await self._stopped.wait()

    async def stop(self, flush_timeout: float = 5.0) -> None:
        """Stop inputs, flush what is buffered (within ``flush_timeout``), close outputs."""
        if self._sighup:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._sighup = False
        for task in (self._watch_task, self._internal_task, self._status_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        async with self._lock:
            await asyncio.gather(*(r.stop() for r in self.inputs))
            self.inputs = []
            if self.config.agent.internal_metrics:
                self._emit_internal()
            await asyncio.gather(*(o.stop(flush_timeout) for o in self.outputs))
            for output in self.outputs:
                if len(output.buffer):
                    log.warning("metrics left unsent at exit", output=output.inst.label,
                                count=len(output.buffer))
            self.outputs = []
            self._running = False
        for name, service in list(self.services.items()):
            closer = getattr(service, "close", None)
            if closer is not None:
                try:
                    await closer()
                except Exception:
                    log.exception("service close failed", service=name)
        self._stopped.set()

    # -- reload -----------------------------------------------------------------------------

    def on_reload(self, listener: Callable[[Config], Awaitable[None] | None]) -> None:
        """Call ``listener(new_config)`` after every successful reload (the web app uses it)."""
        self._reload_listeners.append(listener)

    async def reload_from_file(self, reason: str = "request") -> bool:
        """Re-read the config file; apply it if valid, else keep running and remember why."""
        path = self.config.path
        if not path:
            return False
        self._file_sig = _FileSignature.of(path)
        try:
            config = load_config(path, self.registry)
        except ConfigError as exc:
            self._reload_failed(str(exc), reason)
            return False
        await self.apply(config, reason)
        return True

    def _reload_failed(self, error: str, reason: str) -> None:
        self.reload_state.last_error = error
        self.reload_state.last_error_at = time.time()
        log.error("config reload refused; the running config stays", reason=reason, error=error)

    async def edit(self, mutate: Mutation) -> Config:
        """Change the config file through :func:`edit_config` and apply the result.

        Raises :class:`ConfigError` (and changes nothing) when the result would be invalid.
        """
        path = self.config.path
        if not path:
            raise ConfigError("", "the agent was not started from a config file")
        config = await asyncio.to_thread(edit_config, path, mutate, self.registry)
        self._file_sig = _FileSignature.of(path)
        await self.apply(config, "edit")
        return config

    async def apply(self, config: Config, reason: str = "request") -> None:
        """Switch to ``config``, restarting only the plugin instances whose settings changed."""
        async with self._lock:
            if not self._running:
                self.config = config
                return
            old = self.config
            await self._apply_outputs(config)
            await self._apply_inputs(config)
            self.config = config
            self.reload_state.count += 1
            self.reload_state.last_error = None
            self.reload_state.last_ok_at = time.time()
            if config.agent.internal_metrics and self._internal_task is None:
                self._internal_task = asyncio.create_task(self._internal_loop(), name="internal")
            elif not config.agent.internal_metrics and self._internal_task is not None:
                self._internal_task.cancel()
                self._internal_task = None
            log.info("config reloaded", reason=reason, inputs=len(self.inputs),
                     outputs=len(self.outputs))
        if old.path != config.path:
            self._file_sig = _FileSignature.of(config.path) if config.path else None
        for listener in self._reload_listeners:
            try:
                result = listener(config)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("reload listener failed")

    async def _apply_outputs(self, config: Config) -> None:
        current: dict[bytes, list[OutputRunner]] = {}
        for runner in self.outputs:
            current.setdefault(OutputRunner.key_for(runner.inst, self.config), []).append(runner)
        kept: list[OutputRunner] = []
        added: list[PluginInstance] = []
        for inst in config.outputs:
            bucket = current.get(OutputRunner.key_for(inst, config))
            if bucket:
                runner = bucket.pop(0)
                runner.inst = inst
                kept.append(runner)
            else:
                added.append(inst)
        removed = [r for bucket in current.values() for r in bucket]
        # A changed output hands its buffer to the new instance of the same plugin.
        buffers: dict[str, list[MetricBuffer]] = {}
        for runner in removed:
            buffer = await runner.detach()
            buffers.setdefault(runner.inst.name, []).append(buffer)
        self.outputs = kept
        for inst in added:
            inherited = buffers.get(inst.name, [])
            buffer = inherited.pop(0) if inherited else None
            runner = self._make_output(inst, config, buffer)
            if runner is None:
                if buffer is not None:
                    inherited.insert(0, buffer)
                continue
            runner.start()
            if len(runner.buffer):
                runner._wake.set()
            self.outputs.append(runner)
        for name, leftovers in buffers.items():
            for buffer in leftovers:
                if len(buffer):
                    log.warning("output removed; its buffered metrics are dropped",
                                output=name, count=len(buffer))

    async def _apply_inputs(self, config: Config) -> None:
        current: dict[bytes, list[InputRunner]] = {}
        for runner in self.inputs:
            current.setdefault(runner.key, []).append(runner)
        kept: list[InputRunner] = []
        to_start: list[InputRunner] = []
        for inst in self._gather_instances(config):
            key = InputRunner.key_for(inst, config)
            bucket = current.get(key)
            if bucket:
                runner = bucket.pop(0)
                runner.inst = inst
                kept.append(runner)
                continue
            runner = self._make_input(inst, config)
            if runner is not None:
                to_start.append(runner)
        for key, label, build in self._core_inputs(config):
            bucket = current.get(key)
            if bucket:
                kept.append(bucket.pop(0))
                continue
            runner = self._build_core(key, label, build, config)
            if runner is not None:
                to_start.append(runner)
        removed = [r for bucket in current.values() for r in bucket]
        await asyncio.gather(*(r.stop() for r in removed))
        self.inputs = kept
        for runner in to_start:
            await self._start_input(runner)

    async def _watch_loop(self) -> None:
        path = self.config.path
        assert path is not None
        while True:
            await asyncio.sleep(1.0)
            sig = _FileSignature.of(path)
            if sig is not None and sig != self._file_sig:
                # Wait until the writer is done (an editor may write in several steps).
                await asyncio.sleep(0.2)
                if _FileSignature.of(path) != sig:
                    continue
                await self.reload_from_file("file changed")

    # -- status file ------------------------------------------------------------------------

    STATUS_FILE = "status.json"

    def write_status_file(self) -> None:
        """Write ``<state_dir>/status.json`` (0600): what ``webbo status`` prints."""
        directory = self.config.state_dir
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = directory / self.STATUS_FILE
            data = {"written_at": time.time(), "pid": os.getpid(),
                    "interval_s": float(self.config.agent.interval), **self.status()}
            if not path.exists():
                path.touch(mode=0o600)
            write_atomically(path, to_json(data).decode())
        except (OSError, TypeError) as exc:
            log.warning("could not write the status file", error=str(exc))

    async def _status_loop(self) -> None:
        while True:
            await asyncio.to_thread(self.write_status_file)
            await asyncio.sleep(min(10.0, float(self.config.agent.interval)))

    # -- self-metrics ---------------------------------------------------------------------

    async def _internal_loop(self) -> None:
        while True:
            await asyncio.sleep(float(self.config.agent.interval))
            self._emit_internal()

    def _emit_internal(self) -> None:
        ts = now_ns()
        metrics: list[Metric] = []
        input_names = Counter(r.name for r in self.inputs)
        for runner in self.inputs:
            tags = {"input": runner.name}
            if runner.alias:
                tags["alias"] = runner.alias
            if input_names[runner.name] > 1 and runner.inst is not None:
                tags["instance"] = str(runner.inst.index)
            metrics.append(Metric(INTERNAL, tags, runner.internal_fields(), ts))
        output_names = Counter(o.inst.name for o in self.outputs)
        for output in self.outputs:
            tags = {"output": output.inst.name}
            alias = getattr(output.inst.config, "alias", "")
            if alias:
                tags["alias"] = alias
            if output_names[output.inst.name] > 1:
                tags["instance"] = str(output.inst.index)
            metrics.append(Metric(INTERNAL, tags, output.internal_fields(), ts))
        metrics.append(Metric(INTERNAL, {"component": "agent"}, {
            "reloads": self.reload_state.count,
            "reload_error": bool(self.reload_state.last_error),
            "uptime_s": round(time.time() - self.started_at, 3),
        }, ts))
        for metric in metrics:
            self.dispatch(metric)

    # -- one-shot modes ---------------------------------------------------------------------

    async def gather_all_once(self, dispatch: Callable[[Metric], None] | None = None) -> bool:
        """Build every input, gather each once (concurrently), stop them. True if all were ok."""
        runners: list[InputRunner] = []
        for inst in self._gather_instances(self.config):
            runner = self._make_input(inst, self.config)
            if runner is None:
                return False
            runners.append(runner)
        for key, label, build in self._core_inputs(self.config):
            runner = self._build_core(key, label, build, self.config)
            if runner is None:
                return False
            runners.append(runner)
        started: list[InputRunner] = []
        ok = True
        for runner in runners:
            starter = getattr(runner.input, "start", None)
            try:
                if starter is not None:
                    await starter()
                started.append(runner)
            except Exception as exc:
                runner.log.error("input failed to start", error=repr(exc))
                ok = False
        results = await asyncio.gather(*(r.gather_once(dispatch) for r in started))
        await asyncio.gather(*(r.stop() for r in started))
        return ok and all(results)

    async def once(self, flush_timeout: float = 10.0) -> tuple[bool, int]:
        """Gather once, flush once. Returns (all gathers ok, metrics left unsent)."""
        outputs: list[OutputRunner] = []
        for inst in self.config.outputs:
            runner = self._make_output(inst, self.config)
            if runner is None:
                return False, 0
            outputs.append(runner)
        self.outputs = outputs
        for runner in outputs:
            try:
                await runner.output.connect()
            except Exception as exc:
                runner.log.warning("output not reachable", error=str(exc))
        ok = await self.gather_all_once()
        unsent = 0
        for runner in outputs:
            deadline = time.monotonic() + flush_timeout
            attempts = 0
            while True:
                attempts += 1
                if await runner.flush() or attempts >= 3 or time.monotonic() >= deadline:
                    break
                await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            unsent += len(runner.buffer)
            if len(runner.buffer):
                runner.log.error("metrics left unsent", count=len(runner.buffer),
                                 error=runner.stats.last_error)
            with contextlib.suppress(Exception):
                await runner.output.close()
        self.outputs = []
        return ok, unsent

    # -- status -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The agent's state as plain data (``webbo status``, ``/healthz``, the API)."""
        return {
            "started_at": self.started_at,
            "config": self.config.path,
            "reloads": self.reload_state.count,
            "reload_error": self.reload_state.last_error,
            "inputs": [
                {"name": r.name, "label": r.label, "interval_s": r.interval,
                 **r.internal_fields(), "last_error": r.stats.last_error}
                for r in self.inputs
            ],
            "outputs": [
                {"name": o.inst.name, "label": o.inst.label, **o.internal_fields(),
                 "last_error": o.stats.last_error}
                for o in self.outputs
            ],
            **{name: service.status() for name, service in self.services.items()
               if hasattr(service, "status")},
        }


def state_dir_ready(config: Config) -> Path:
    """The state folder, created (0700) if missing."""
    path = config.state_dir
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


async def run_until_signalled(agent: Agent, extra: Sequence[Awaitable[Any]] = ()) -> None:
    """Start ``agent``, run until SIGINT/SIGTERM, stop cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await agent.start(status_file=True)
    systemd.notify("READY=1\nSTATUS=running")
    tasks = [asyncio.ensure_future(a) for a in (*extra, systemd.watchdog_loop())]
    try:
        waiter = asyncio.ensure_future(stop.wait())
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        log.info("stopping")
        systemd.notify("STOPPING=1")
        await agent.stop()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


__all__ = ["Accumulator", "Agent", "InputRunner", "OutputRunner", "state_dir_ready"]
