"""The agent: plugin instances built from a Config and kept going; reload; self-metrics.

Nothing here knows any device. Data flows one way: an input's gather adds metrics to an
accumulator (:mod:`.running_input`), the accumulator hands each metric to :meth:`Agent.dispatch`,
which copies it into the buffer of every output that wants it (:mod:`.running_output`) and to
every listener; each output drains its own buffer in batches.

* Services (the miner fleet, a meter backend, alerts, power control) are made once per agent
  from the ``webbo_services`` hook and live across reloads; each may ask the agent to run
  inputs of its own (the fleet's sweep). They are found by type: ``agent.service(MinerFleet)``.
* A reload validates first and keeps the running config when the new one is invalid. Only the
  plugin instances whose settings changed are restarted; an output that is replaced hands its
  buffer to its successor, so nothing buffered before a reload is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog

from webbo.agent.core import systemd
from webbo.agent.core.audit import AUDIT_FILE, AuditLog
from webbo.agent.core.buffer import OutputBuffer
from webbo.agent.core.config import (
    Config,
    ConfigError,
    PluginInstance,
    load_config,
    to_json,
)
from webbo.agent.core.config_edit import ConfigEditor, persist_generated_uuids
from webbo.agent.core.contract import CoreInput, Input, PluginContext, Shared
from webbo.agent.core.files import write_atomically
from webbo.agent.core.metric import Metric, now_ns
from webbo.agent.core.plugins import PluginRegistry
from webbo.agent.core.running_input import InputRunner
from webbo.agent.core.running_output import BufferSettings, OutputRunner, adopt_buffer
from webbo.agent.core.tasks import TaskService

log = structlog.get_logger("webbo.agent")

INTERNAL = "webbo_internal"


@dataclass
class ReloadState:
    count: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_ok_at: float | None = None


T = TypeVar("T")
MetricListener = Callable[[Metric], None]


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

    def __init__(self, registry: PluginRegistry, config: Config, *,
                 services: bool = True) -> None:
        """``services=False`` makes an agent of plain inputs and outputs only (no miner fleet,
        no meter backend): what a test of the core alone wants."""
        self.registry = registry
        self.config = config
        self.inputs: list[InputRunner] = []
        self.outputs: list[OutputRunner] = []
        self.reload_state = ReloadState()
        self.started_at = time.time()
        self.shared = Shared()
        """Long-lived objects of this agent by class: plugins' shared state and the services."""
        self.edits = ConfigEditor(registry, lambda: self.config, self._edited)
        """The one way to change the config (the API, the UI and the CLI call it)."""
        self.tasks = TaskService(float(config.web.task_ttl), AuditLog(
            config.state_dir / AUDIT_FILE if config.path else None))
        """Tasks (the manual's task life cycle) and the audit log."""
        self.shared.put(self.tasks)
        self.services: dict[str, object] = {}
        """Services by their registered name (status and close); find one with :meth:`service`."""
        self._listeners: list[MetricListener] = []
        self._lock = asyncio.Lock()
        self._stopped = asyncio.Event()
        self._internal_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._status_task: asyncio.Task[None] | None = None
        self._file_sig = _FileSignature.of(config.path) if config.path else None
        self._running = False
        self._sighup = False
        self._reload_listeners: list[Callable[[Config], Awaitable[None] | None]] = []
        if services:
            self._make_services()

    def _make_services(self) -> None:
        for name, stype in self.registry.services.items():
            try:
                service = stype.factory(self.context(None, self.config, label=name))
            except Exception as exc:
                log.error("service failed to start", service=name, error=repr(exc))
                continue
            self.services[name] = service
            self.shared.put(service)
            on_metric = getattr(service, "on_metric", None)
            if callable(on_metric):
                self.listen(on_metric)

    def service(self, kind: type[T]) -> T | None:
        """The agent's service (or shared object) that is a ``kind``, or None."""
        return self.shared.find(kind)

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._running

    # -- metrics flow -----------------------------------------------------------------------

    def dispatch(self, metric: Metric) -> None:
        for output in self.outputs:
            if output.wants(metric.name):
                output.add(metric)
        for listener in self._listeners:
            listener(metric)

    def listen(self, listener: MetricListener) -> None:
        """Call ``listener(metric)`` for every metric gathered (alerts and power control read
        the meters this way). It runs on the poll path: it must be quick and must not raise."""
        self._listeners.append(listener)

    def context(self, inst: PluginInstance | None, config: Config,
                label: str = "core") -> PluginContext:
        return PluginContext(config=config, state_dir=config.state_dir,
                             log=log.bind(plugin=inst.label if inst is not None else label),
                             shared=self.shared, edits=self.edits, inputs=self.registry.inputs)

    # -- building ---------------------------------------------------------------------------

    def _make_output(self, inst: PluginInstance, config: Config,
                     buffer: OutputBuffer | None = None, *,
                     memory_only: bool = False) -> OutputRunner | None:
        otype = self.registry.outputs[inst.name]
        try:
            output = otype.factory(inst.config, self.context(inst, config))
        except Exception as exc:
            log.error("output failed to start", output=inst.label, error=repr(exc))
            return None
        return OutputRunner(inst, output, config, buffer, memory_only=memory_only)

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
        """The inputs the services ask for under ``config``."""
        built: list[CoreInput] = []
        for name, service in self.services.items():
            wanted = getattr(service, "inputs", None)
            if wanted is None:
                continue
            try:
                built.extend(wanted(config))
            except Exception as exc:
                log.error("service inputs failed", service=name, error=repr(exc))
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
                if len(output.buffer) and output.buffer.kind == "disk":
                    log.info("metrics left unsent at exit are kept on disk and sent at the "
                             "next start", output=output.inst.label, count=len(output.buffer))
                elif len(output.buffer):
                    log.warning("metrics left unsent at exit", output=output.inst.label,
                                count=len(output.buffer))
            self.outputs = []
            self._running = False
        for name, service in [*self.services.items(), ("tasks", self.tasks)]:
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

    async def _edited(self, config: Config) -> None:
        """After :attr:`edits` wrote the file: apply it (the watcher need not re-read it)."""
        if config.path:
            self._file_sig = _FileSignature.of(config.path)
        await self.apply(config, "edit")

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
            self.tasks.registry.ttl = float(config.web.task_ttl)
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
        # A changed output hands its buffer to the new instance of the same plugin (a disk
        # buffer's folder does not depend on the URL: the new server gets what the old missed).
        buffers: dict[str, list[OutputBuffer]] = {}
        for runner in removed:
            buffer = await runner.detach()
            buffers.setdefault(runner.inst.name, []).append(buffer)
        self.outputs = kept
        for inst in added:
            inherited = buffers.get(inst.name, [])
            buffer = None
            if inherited:
                previous = inherited.pop(0)
                try:
                    buffer = await adopt_buffer(previous, BufferSettings.of(inst, config))
                except Exception:
                    log.exception("buffer hand-over failed; the new output starts empty",
                                  output=inst.label)
                    inherited.insert(0, previous)
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
                if len(buffer) and buffer.kind == "disk":
                    log.warning("output removed; its buffered metrics stay on disk",
                                output=name, count=len(buffer),
                                **{k: v for k, v in buffer.describe().items()
                                   if k == "buffer_dir"})
                elif len(buffer):
                    log.warning("output removed; its buffered metrics are dropped",
                                output=name, count=len(buffer))
                await buffer.close()

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
        for metric in self.internal_metrics():
            self.dispatch(metric)

    def internal_metrics(self) -> list[Metric]:
        """The ``webbo_internal`` metrics of this moment (docs/metrics.md); also what
        Prometheus's ``/metrics`` shows of the agent itself."""
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
        return metrics

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
            if getattr(runner.input, "only_when_running", False):
                continue  # a link to other agents (a site's NATS link) is no one-shot input
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
            runner = self._make_output(inst, self.config, memory_only=True)
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
            "outputs": [o.status() for o in self.outputs],
            **{name: service.status()  # type: ignore[attr-defined]
               for name, service in [("tasks", self.tasks), *self.services.items()]
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


__all__ = ["Agent", "run_until_signalled", "state_dir_ready"]
