"""Control: selector → devices → a task → one action per device → ``{mac: {success, payload}}``.

This is the engine behind the API's miner methods (manual §3.5) and its other task methods. It
knows no make and no HTTP:

* :func:`select` turns the manual's selector (exactly one of ``macs``, ``ip_range``,
  ``ip_range_id``, ``ip_range_group_id``) into inventory devices. A MAC the system does not know
  still gets an entry in the result (a failure that says so) rather than vanishing silently.
* :class:`TaskRegistry` holds tasks by UUID4 with the manual's life cycle (§3.3): ``pending``
  until done, then ``success``/``failure``/``canceled`` reported exactly once and ``unknown``
  afterwards. A finished task nobody reads is forgotten after ``[web] task_ttl``.
* :class:`Controller` (the agent service ``"control"``) runs an action on many devices with at
  most ``[agent] control_concurrency`` at once, through the ``webbo_control`` hook. A cancelled
  task starts no further device; actions already running finish (a write cut short has an
  unknown outcome, which is worse than letting it end).
* ``set_pools`` is merged here, not in drivers: exactly three slots, ``null`` keeps the device's
  current slot, and the worker suffix (``ip``, ``no_change``, ``empty``) is applied per device.
* Every task is written to the audit log (who, what, selector, device count, result summary).

A write whose outcome is unknown (:class:`~webbo.agent.core.errors.OutcomeUnknownError`, or our own
deadline expiring) is reported as such for that device and never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import ipaddress
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import structlog
import tomlkit

from webbo.agent.core.config import ConfigError, Mutation, parse_config, set_table_array
from webbo.agent.core.contract import Action, ControlRequest
from webbo.agent.core.errors import DeviceError, OutcomeUnknownError
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.model import LedStatus, WorkMode
from webbo.agent.fleet.net import ip_to_int

if TYPE_CHECKING:
    from webbo.agent.core.agent import Agent
    from webbo.agent.core.config import Config, NetworkSection

log = structlog.get_logger("webbo.control")

__all__ = [
    "AuditLog",
    "Controller",
    "PoolSpec",
    "SelectionError",
    "Selector",
    "Task",
    "TaskRegistry",
    "TaskStatus",
    "merge_pools",
    "worker_with_suffix",
]

SERVICE = "control"
AUDIT_FILE = "audit.log"
ACTION_DEADLINE = 300.0
"""Longest one device action may take before it is given up as "outcome unknown". Drivers have
their own, shorter, timeouts; this only guarantees that a task always ends."""
WRITE_ACTIONS = frozenset({Action.REBOOT, Action.SET_LED, Action.SET_WORK_MODE,
                           Action.SET_POOLS, Action.COMMAND})


# --------------------------------------------------------------------------------------------
# Selectors
# --------------------------------------------------------------------------------------------


class SelectionError(ValueError):
    """A selector that cannot be resolved (unknown id, inverted range): the request fails and
    nothing is done."""


@dataclass(frozen=True)
class Selector:
    """The manual's selector (§3.5.1), already checked for shape: exactly one field is set."""

    macs: Literal["*"] | tuple[str, ...] | None = None
    ip_range: tuple[str, str] | None = None
    ip_range_id: str | None = None
    ip_range_group_id: str | None = None

    def describe(self) -> dict[str, Any]:
        """The selector as the request gave it (for the audit log)."""
        if self.macs is not None:
            return {"macs": self.macs if self.macs == "*" else list(self.macs)}
        if self.ip_range is not None:
            return {"ip_range": {"first": self.ip_range[0], "last": self.ip_range[1]}}
        if self.ip_range_id is not None:
            return {"ip_range_id": self.ip_range_id}
        return {"ip_range_group_id": self.ip_range_group_id}


@dataclass
class Selection:
    devices: list[Device]
    missing: list[str] = field(default_factory=list)
    """MACs asked for by name that the inventory does not hold."""


def _spans_of(network: NetworkSection, selector: Selector) -> list[tuple[int, int]]:
    if selector.ip_range is not None:
        first, last = (ip_to_int(a) for a in selector.ip_range)
        if first > last:
            raise SelectionError(f"ip_range: last ({selector.ip_range[1]}) is before first "
                                 f"({selector.ip_range[0]})")
        return [(first, last)]
    if selector.ip_range_id is not None:
        wanted = selector.ip_range_id.lower()
        for group in network.ip_range_groups:
            for range_ in group.ip_ranges:
                if range_.uuid == wanted:
                    return [(ip_to_int(range_.first), ip_to_int(range_.last))]
        raise SelectionError(f"ip_range_id: no range with id {selector.ip_range_id} "
                             "(see /api/mining/get-network)")
    wanted = (selector.ip_range_group_id or "").lower()
    for group in network.ip_range_groups:
        if group.uuid == wanted:
            return [(ip_to_int(r.first), ip_to_int(r.last)) for r in group.ip_ranges]
    raise SelectionError(f"ip_range_group_id: no group with id {selector.ip_range_group_id} "
                         "(see /api/mining/get-network)")


def select(devices: Iterable[Device], network: NetworkSection, selector: Selector) -> Selection:
    """The devices a selector names, ordered by IP (MACs not known come last, as missing)."""
    if selector.macs == "*":
        return Selection(by_ip(devices))
    if selector.macs is not None:
        by_mac = {d.mac: d for d in devices}
        wanted = list(dict.fromkeys(selector.macs))
        found = [by_mac[m] for m in wanted if m in by_mac]
        return Selection(by_ip(found), [m for m in wanted if m not in by_mac])
    spans = _spans_of(network, selector)
    chosen = []
    for device in devices:
        if not device.ip:
            continue
        ip = ip_to_int(device.ip)
        if any(first <= ip <= last for first, last in spans):
            chosen.append(device)
    return Selection(by_ip(chosen))


def by_ip(devices: Iterable[Device]) -> list[Device]:
    return sorted(devices, key=lambda d: (ip_to_int(d.ip) if d.ip else 1 << 33, d.mac))


# --------------------------------------------------------------------------------------------
# Pools
# --------------------------------------------------------------------------------------------

SuffixType = Literal["ip", "no_change", "empty"]


@dataclass(frozen=True)
class PoolSpec:
    """One requested pool slot of set-pools (the manual's MiningPool with ``suffix_type``)."""

    address: str
    worker: str
    passwd: str
    suffix_type: SuffixType = "no_change"


def worker_with_suffix(worker: str, suffix_type: SuffixType, ip: str, current_worker: str) -> str:
    """The worker name a device gets (manual §3.5.7).

    * ``ip``: ``<worker>.<third octet>x<fourth octet>`` of the device's IP in decimal
      (``james`` on 10.30.0.16 → ``james.0x16``);
    * ``no_change``: the device's current suffix — what follows the first ``.`` of the worker now
      in that slot — is kept (``james`` over ``john-doe.001`` → ``james.001``); no current suffix,
      no suffix;
    * ``empty``: the worker exactly as given.
    """
    if suffix_type == "ip":
        octets = ip.split(".")
        if len(octets) != 4:
            raise DeviceError(f"set_pools: cannot make an ip suffix from address {ip!r}")
        return f"{worker}.{int(octets[2])}x{int(octets[3])}"
    if suffix_type == "no_change":
        _, dot, suffix = current_worker.partition(".")
        return f"{worker}.{suffix}" if dot and suffix else worker
    return worker


def needs_current_pools(requested: Sequence[PoolSpec | None]) -> bool:
    return any(spec is None or spec.suffix_type == "no_change" for spec in requested)


EMPTY_POOL = {"address": "", "worker": "", "passwd": ""}


def merge_pools(current: Sequence[Mapping[str, str]] | None, requested: Sequence[PoolSpec | None],
                ip: str) -> list[dict[str, str]]:
    """The three pools to write on one device: ``None`` keeps the device's slot, a given pool
    gets its worker suffix. ``current`` may be None only when no slot needs it."""
    merged = []
    for index, spec in enumerate(requested):
        slot = dict(current[index]) if current is not None else dict(EMPTY_POOL)
        if spec is None:
            merged.append({k: slot.get(k, "") for k in ("address", "worker", "passwd")})
            continue
        merged.append({
            "address": spec.address,
            "worker": worker_with_suffix(spec.worker, spec.suffix_type, ip, slot.get("worker", "")),
            "passwd": spec.passwd,
        })
    return merged


def normalise_pools(value: Any) -> list[dict[str, str]]:
    """Whatever a driver returned for get_pools → exactly three ``{address, worker, passwd}``
    (never ``suffix_type``); missing slots are empty."""
    if not isinstance(value, list | tuple):
        raise DeviceError(f"get_pools: the driver returned {type(value).__name__}, not a list")
    pools = []
    for item in list(value)[:3]:
        data = msgspec.to_builtins(item) if not isinstance(item, Mapping) else item
        if not isinstance(data, Mapping):
            raise DeviceError(f"get_pools: the driver returned a {type(item).__name__} slot")
        pools.append({k: str(data.get(k) or "") for k in ("address", "worker", "passwd")})
    while len(pools) < 3:
        pools.append(dict(EMPTY_POOL))
    return pools


def _normalise_result(action: Action, value: Any) -> Any:
    """Drivers may answer with the enums/Structs of :mod:`webbo.agent.fleet.model`; the API answers
    plain JSON values in the manual's shapes."""
    if action == Action.GET_LED:
        led = int(value)
        if led not in (LedStatus.NORMAL, LedStatus.BLINK):
            raise DeviceError(f"get_led: the driver returned {value!r}, not 0 or 1")
        return led
    if action == Action.GET_WORK_MODE:
        mode = str(getattr(value, "value", value))
        return mode if mode in WorkMode._value2member_map_ else WorkMode.UNKNOWN.value
    if action == Action.GET_POOLS:
        return normalise_pools(value)
    if action in (Action.REBOOT, Action.SET_LED, Action.SET_WORK_MODE, Action.SET_POOLS):
        return None
    return msgspec.to_builtins(value)


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------


class TaskStatus(enum.StrEnum):
    """The manual's task states (§3.3)."""

    INVALID = "invalid"
    UNKNOWN = "unknown"
    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"
    CANCELED = "canceled"


class TaskFailed(Exception):
    """Raised by a task body: the task ends ``failure`` with this message as its result."""


@dataclass
class Task:
    id: str
    method: str
    who: str
    created: float
    status: TaskStatus = TaskStatus.PENDING
    result: Any = None
    finished: float | None = None
    devices: int = 0
    started: int = 0
    done: int = 0
    cancel_requested: bool = False
    handle: asyncio.Task[None] | None = None
    summary: dict[str, int] = field(default_factory=dict)

    def progress(self) -> dict[str, Any]:
        return {"task_id": self.id, "method": self.method, "status": self.status.value,
                "devices": self.devices, "done": self.done, "who": self.who,
                "created": self.created}


def _state(status: TaskStatus, result: Any = None) -> dict[str, Any]:
    return {"status": status.value, "result": result}


def parse_task_id(value: object) -> str | None:
    """The canonical form of a UUID4 task id, or None when it is not one (→ ``invalid``)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    return str(parsed) if parsed.version == 4 else None


class TaskRegistry:
    """Tasks by id: run, report once, expire, cancel."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.tasks: dict[str, Task] = {}
        self.expired = 0

    def __len__(self) -> int:
        return len(self.tasks)

    def create(self, method: str, who: str) -> Task:
        task = Task(id=str(uuid.uuid4()), method=method, who=who, created=time.time())
        self.tasks[task.id] = task
        return task

    def run(self, task: Task, body: Callable[[Task], Awaitable[Any]],
            on_end: Callable[[Task], None] | None = None) -> Task:
        """Start ``body(task)``; its return value is the result of a successful task."""

        async def runner() -> None:
            try:
                result = await body(task)
            except TaskFailed as exc:
                task.status, task.result = TaskStatus.FAILURE, str(exc)
            except asyncio.CancelledError:
                task.status, task.result = TaskStatus.CANCELED, None
            except Exception as exc:
                log.exception("task failed", task_id=task.id, method=task.method)
                task.status, task.result = TaskStatus.FAILURE, f"internal error: {exc!r}"
            else:
                if task.cancel_requested:
                    task.status, task.result = TaskStatus.CANCELED, None
                else:
                    task.status, task.result = TaskStatus.SUCCESS, result
            task.finished = time.time()
            if on_end is not None:
                try:
                    on_end(task)
                except Exception:
                    log.exception("task end hook failed", task_id=task.id)

        task.handle = asyncio.create_task(runner(), name=f"task {task.method} {task.id}")
        return task

    def expire(self, now: float | None = None) -> int:
        """Forget finished tasks nobody read within ``ttl``."""
        now = time.time() if now is None else now
        old = [t.id for t in self.tasks.values()
               if t.finished is not None and now - t.finished > self.ttl]
        for task_id in old:
            del self.tasks[task_id]
        self.expired += len(old)
        return len(old)

    def _find(self, task_id: object) -> Task | dict[str, Any]:
        """The held task, or the answer for an id that is not one (invalid / unknown)."""
        self.expire()
        canonical = parse_task_id(task_id)
        if canonical is None:
            return _state(TaskStatus.INVALID)
        return self.tasks.get(canonical) or _state(TaskStatus.UNKNOWN)

    def info(self, task_id: object) -> dict[str, Any]:
        """``{"status", "result"}`` as /api/task-info answers; a finished task once only."""
        task = self._find(task_id)
        if not isinstance(task, Task):
            return task
        if task.status == TaskStatus.PENDING:
            return _state(TaskStatus.PENDING)
        del self.tasks[task.id]
        result = task.result if task.status in (TaskStatus.SUCCESS, TaskStatus.FAILURE) else None
        return _state(task.status, result)

    def peek(self, task_id: str) -> Task | None:
        canonical = parse_task_id(task_id)
        return self.tasks.get(canonical) if canonical else None

    async def cancel(self, task_id: object, settle: float = 10.0) -> dict[str, Any]:
        """Stop a pending task: no further device is started. Waits up to ``settle`` seconds
        for the actions already running to end. Answers the task's status now (a finished task
        is not consumed: /api/task-info still reports it once)."""
        task = self._find(task_id)
        if not isinstance(task, Task):
            return task
        if task.status == TaskStatus.PENDING:
            task.cancel_requested = True
            if task.handle is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task.handle), settle)
        return _state(task.status if task.status != TaskStatus.PENDING else TaskStatus.CANCELED)

    async def close(self) -> None:
        for task in list(self.tasks.values()):
            if task.handle is not None and not task.handle.done():
                task.cancel_requested = True
                task.handle.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task.handle


# --------------------------------------------------------------------------------------------
# Audit log
# --------------------------------------------------------------------------------------------


class AuditLog:
    """Append-only JSON lines in ``<state_dir>/audit.log`` (0600), one per event, rotated to
    ``audit.log.1`` past ``max_bytes``. Who did what to which devices, and what came of it."""

    def __init__(self, path: Path | None, max_bytes: int = 10 * 1024 * 1024) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.memory: list[dict[str, Any]] = []
        """Used when there is no file (an agent built without a state folder)."""

    def write(self, entry: dict[str, Any]) -> None:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "ts": time.time(),
                 **entry}
        if self.path is None:
            self.memory.append(entry)
            del self.memory[:-10_000]
            return
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with contextlib.suppress(FileNotFoundError):
                if self.path.stat().st_size > self.max_bytes:
                    os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("audit log not writable", path=str(self.path), error=str(exc), entry=entry)

    def read(self, *, limit: int = 100, task_id: str | None = None, who: str | None = None,
             since: float | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` entries matching the filters, newest first."""
        lines: list[str] = []
        if self.path is None:
            entries = list(self.memory)
        else:
            for path in (self.path.with_name(self.path.name + ".1"), self.path):
                with contextlib.suppress(FileNotFoundError):
                    lines.extend(path.read_text(encoding="utf-8").splitlines())
            entries = []
            for line in lines:
                with contextlib.suppress(ValueError):
                    entries.append(json.loads(line))
        found = []
        for entry in reversed(entries):
            if task_id is not None and entry.get("task_id") != task_id:
                continue
            if who is not None and entry.get("who") != who:
                continue
            if since is not None and entry.get("ts", 0) < since:
                continue
            found.append(entry)
            if len(found) >= limit:
                break
        return found


_SECRET_KEYS = frozenset({"passwd", "password", "password_1", "password_2"})


def redact(value: Any) -> Any:
    """Params as the audit log keeps them: passwords replaced by ``***``."""
    if isinstance(value, Mapping):
        return {k: ("***" if k in _SECRET_KEYS and v else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# The controller
# --------------------------------------------------------------------------------------------


def _outcome(ok: bool, payload: Any) -> dict[str, Any]:
    return {"success": ok, "payload": payload}


UNKNOWN_PREFIX = "outcome unknown: "


class Controller:
    """The agent service ``"control"``: tasks, device actions and the audit log."""

    def __init__(self, agent: Agent, audit: AuditLog | None = None) -> None:
        self.agent = agent
        config = agent.config
        self.tasks = TaskRegistry(float(config.web.task_ttl))
        if audit is None:
            audit = AuditLog(config.state_dir / AUDIT_FILE if config.path else None)
        self.audit = audit
        self.in_flight = 0
        """Device actions running now (all tasks)."""
        self.peak_in_flight = 0
        """The most device actions that ran at once (reset it to measure a task)."""
        self._expiry: asyncio.Task[None] | None = None
        agent.on_reload(self._reloaded)

    @classmethod
    def of(cls, agent: Agent) -> Controller:
        """The agent's controller, created on first use (it survives reloads)."""
        controller = agent.services.get(SERVICE)
        if controller is None:
            controller = cls(agent)
            agent.services[SERVICE] = controller
        return controller

    def _reloaded(self, config: Config) -> None:
        self.tasks.ttl = float(config.web.task_ttl)

    # -- selection ----------------------------------------------------------------------------

    @property
    def fleet(self) -> Any:
        return self.agent.services.get("miners")

    def select(self, selector: Selector) -> Selection:
        """Resolve a selector against the inventory (raises :class:`SelectionError`)."""
        fleet = self.fleet
        devices = fleet.inventory.devices() if fleet is not None else []
        return select(devices, self.agent.config.network, selector)

    # -- starting tasks -----------------------------------------------------------------------

    def _ensure_expiry(self) -> None:
        if self._expiry is None or self._expiry.done():
            self._expiry = asyncio.create_task(self._expiry_loop(), name="task expiry")

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, min(60.0, self.tasks.ttl / 4)))
            self.tasks.expire()

    def start_job(self, method: str, who: str, body: Callable[[], Awaitable[Any]],
                  details: Mapping[str, Any] | None = None) -> Task:
        """A task that is not about miners (set-network, serial devices): its result is what
        ``body`` returns; :class:`TaskFailed` (or a ConfigError/DeviceError) makes it fail."""
        self._ensure_expiry()
        task = self.tasks.create(method, who)
        started = time.monotonic()
        self.audit.write({"event": "start", "task_id": task.id, "who": who, "method": method,
                          **redact(dict(details or {}))})

        async def run(_: Task) -> Any:
            try:
                return await body()
            except (ConfigError, DeviceError, ValueError) as exc:
                raise TaskFailed(str(exc)) from None

        def end(done: Task) -> None:
            entry: dict[str, Any] = {"event": "end", "task_id": done.id, "who": who,
                                     "method": method, "status": done.status.value,
                                     "duration_s": round(time.monotonic() - started, 3)}
            if done.status == TaskStatus.FAILURE:
                entry["error"] = done.result
            self.audit.write(entry)

        return self.tasks.run(task, run, end)

    def start_action(self, method: str, who: str, selector: Selector, action: Action,
                     params: Mapping[str, Any] | None = None,
                     pools: Sequence[PoolSpec | None] | None = None) -> Task:
        """Select devices (raises :class:`SelectionError` before anything starts) and start a
        task running ``action`` on each; the result is ``{mac: {"success", "payload"}}``."""
        selection = self.select(selector)
        self._ensure_expiry()
        task = self.tasks.create(method, who)
        task.devices = len(selection.devices) + len(selection.missing)
        params = dict(params or {})
        audit_params = redact({**params, **({"pools": [None if p is None else vars(p)
                                                        for p in pools]} if pools else {})})
        self.audit.write({"event": "start", "task_id": task.id, "who": who, "method": method,
                          "action": action.value, "selector": selector.describe(),
                          "params": audit_params, "devices": task.devices})
        started = time.monotonic()

        async def body(t: Task) -> dict[str, Any]:
            return await self._run_on(t, selection, action, params, pools)

        def end(done: Task) -> None:
            self.audit.write({"event": "end", "task_id": done.id, "who": who, "method": method,
                              "action": action.value, "selector": selector.describe(),
                              "devices": done.devices, "status": done.status.value,
                              "summary": done.summary,
                              "duration_s": round(time.monotonic() - started, 3)})
            log.info("control task done", task_id=done.id, method=method, who=who,
                     status=done.status.value, **done.summary)

        return self.tasks.run(task, body, end)

    # -- running ------------------------------------------------------------------------------

    async def _run_on(self, task: Task, selection: Selection, action: Action,
                      params: dict[str, Any], pools: Sequence[PoolSpec | None] | None
                      ) -> dict[str, Any]:
        results: dict[str, dict[str, Any]] = {}
        summary = {"ok": 0, "failed": 0, "unknown": 0, "not_started": 0}
        devices = selection.devices
        queue = iter(devices)
        limit = max(1, self.agent.config.agent.control_concurrency)

        async def worker() -> None:
            for device in queue:
                if task.cancel_requested:
                    return
                task.started += 1
                if action == Action.SET_POOLS and pools is not None:
                    outcome = await self.guarded(device, action, self._set_pools(device, pools))
                else:
                    outcome = await self.act(device, action, params)
                results[device.mac] = outcome
                task.done += 1
                if outcome["success"]:
                    summary["ok"] += 1
                elif str(outcome["payload"]).startswith(UNKNOWN_PREFIX):
                    summary["unknown"] += 1
                else:
                    summary["failed"] += 1

        try:
            await asyncio.gather(*(worker() for _ in range(min(limit, max(1, len(devices))))))
        finally:
            summary["not_started"] = len(devices) - task.started
            summary["failed"] += len(selection.missing)
            task.summary = summary
        for mac in selection.missing:
            results[mac] = _outcome(False, f"{mac}: no such device (the sweep has not found it; "
                                           "see /api/mining/miners/get)")
        task.done += len(selection.missing)
        # Results keyed by MAC in the order the devices were selected (by IP).
        ordered = {d.mac: results[d.mac] for d in devices if d.mac in results}
        ordered.update({m: results[m] for m in selection.missing})
        return ordered

    def dispatch(self, device: Device, action: Action, params: Mapping[str, Any]
                 ) -> Awaitable[Any]:
        """The coroutine of the first ``webbo_control`` implementation that takes the action
        (the others' coroutines are closed unawaited). Raises DeviceError when none does."""
        fleet = self.fleet
        driver = fleet.driver_for(device) if fleet is not None else None
        if driver is None:
            raise DeviceError(f"{action.value}: no [[inputs.{device.driver}]] serves this "
                              f"device's range")
        request = ControlRequest(device=device, action=action, params=dict(params),
                                 driver=driver, agent=self.agent)
        answers = [a for a in self.agent.registry.hook.webbo_control(request=request)
                   if a is not None]
        if not answers:
            raise DeviceError(f"{action.value}: not supported by {device.make} {device.model}")
        for extra in answers[1:]:
            closer = getattr(extra, "close", None)
            if closer is not None:
                closer()
        return answers[0]

    async def call(self, device: Device, action: Action, params: Mapping[str, Any]) -> Any:
        """Run one action on one device and return its normalised result (raises
        DeviceError / OutcomeUnknownError)."""
        value = await self.dispatch(device, action, params)
        return _normalise_result(action, value)

    async def act(self, device: Device, action: Action, params: Mapping[str, Any]
                  ) -> dict[str, Any]:
        """One device's ``{"success", "payload"}`` for ``action``."""
        return await self.guarded(device, action, self.call(device, action, params))

    async def guarded(self, device: Device, action: Action, work: Awaitable[Any]
                      ) -> dict[str, Any]:
        """Await ``work`` and turn what happens into the device's ``{"success", "payload"}``."""
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            value = await asyncio.wait_for(work, ACTION_DEADLINE)
        except OutcomeUnknownError as exc:
            log.warning("control outcome unknown", mac=device.mac, ip=device.ip,
                        action=action.value, error=str(exc))
            return _outcome(False, UNKNOWN_PREFIX + str(exc))
        except TimeoutError:
            if action in WRITE_ACTIONS:
                return _outcome(False, f"{UNKNOWN_PREFIX}{action.value}: no answer within "
                                       f"{ACTION_DEADLINE:.0f}s (not retried)")
            return _outcome(False, f"{action.value}: no answer within {ACTION_DEADLINE:.0f}s")
        except DeviceError as exc:
            return _outcome(False, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("control action raised", mac=device.mac, action=action.value,
                          driver=device.driver)
            return _outcome(False, f"{action.value}: driver error: {exc!r}")
        finally:
            self.in_flight -= 1
        return _outcome(True, value)

    async def _set_pools(self, device: Device, requested: Sequence[PoolSpec | None]) -> None:
        """Merge the request with the device's current pools and write all three slots.

        Nothing is written when the merged pools equal the current ones (writing pools restarts
        the mining software on most firmware)."""
        current = None
        if needs_current_pools(requested):
            try:
                current = await self.call(device, Action.GET_POOLS, {})
            except DeviceError as exc:  # nothing was written yet: a plain failure
                raise DeviceError(f"set_pools: could not read the current pools first: {exc}"
                                  ) from None
        merged = merge_pools(current, requested, device.ip)
        if current is not None and merged == current:
            return None
        await self.call(device, Action.SET_POOLS, {"pools": merged})
        return None

    # -- network ------------------------------------------------------------------------------

    def network_mutation(self, groups: Sequence[Mapping[str, Any]]) -> Mutation:
        """The TOML edit that sets ``[network]`` to ``groups``."""
        items = [dict(g) for g in groups]

        def mutate(doc: tomlkit.TOMLDocument) -> None:
            set_table_array(doc, "network.ip_range_groups", items)

        return mutate

    def check_edit(self, mutate: Mutation) -> None:
        """Validate an edit of the config file without writing it (raises ConfigError)."""
        path = self.agent.config.path
        if not path:
            raise ConfigError("", "the agent was not started from a config file")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError("", f"cannot read {path}: {exc.strerror or exc}") from None
        document = tomlkit.parse(text)
        mutate(document)
        parse_config(tomlkit.dumps(document), self.agent.registry, path=path)

    # -- life cycle ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        pending = sum(1 for t in self.tasks.tasks.values() if t.status == TaskStatus.PENDING)
        return {"tasks": len(self.tasks), "tasks_pending": pending,
                "tasks_expired": self.tasks.expired, "actions_in_flight": self.in_flight}

    async def close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
            self._expiry = None
        await self.tasks.close()


def network_payload(network: NetworkSection) -> dict[str, Any]:
    """``[network]`` in the manual's Network shape (key order as the manual shows it)."""
    return {"ip_range_groups": [
        {"name": g.name, "uuid": g.uuid, "ip_ranges": [
            {"name": r.name, "uuid": r.uuid, "first": r.first, "last": r.last}
            for r in g.ip_ranges]}
        for g in network.ip_range_groups]}


def new_uuid4() -> str:
    return str(uuid.uuid4())


def network_items(groups: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Groups from the API → tables for ``[[network.ip_range_groups]]``: uuids made for new
    groups and ranges (random UUID4s, written to the file, so they are kept from now on)."""
    items = []
    for group in groups:
        ranges = []
        for range_ in group.get("ip_ranges", []):
            ranges.append({"name": range_.get("name") or "",
                           "uuid": str(range_.get("uuid") or new_uuid4()).lower(),
                           "first": str(ipaddress.IPv4Address(range_["first"])),
                           "last": str(ipaddress.IPv4Address(range_["last"]))})
        items.append({"name": group.get("name") or "",
                      "uuid": str(group.get("uuid") or new_uuid4()).lower(),
                      "ip_ranges": ranges})
    return items
