"""Tasks: the manual's life cycle (§3.3) for anything that takes a while, and the service that
runs them with an audit trail.

:class:`TaskRegistry` holds tasks by UUID4: ``pending`` until done, then
``success``/``failure``/``canceled`` reported exactly once and ``unknown`` afterwards; a
finished task nobody reads is forgotten after ``[web] task_ttl``. :class:`TaskService` (one per
agent, ``agent.tasks``) starts tasks, expires them, and writes who started what and how it
ended to the audit log. It knows nothing of what a task does: the fleet's miner actions, a
set-network or a serial-port job all run through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from webbo.agent.core.audit import AuditLog, redact
from webbo.agent.core.config import ConfigError
from webbo.agent.core.errors import DeviceError

log = structlog.get_logger("webbo.tasks")

__all__ = ["Task", "TaskFailed", "TaskRegistry", "TaskService", "TaskStatus", "parse_task_id"]


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


class TaskService:
    """Starts, expires and audits the agent's tasks (``agent.tasks``)."""

    def __init__(self, ttl: float, audit: AuditLog) -> None:
        self.registry = TaskRegistry(ttl)
        self.audit = audit
        self._expiry: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self.registry)

    def _ensure_expiry(self) -> None:
        if self._expiry is None or self._expiry.done():
            self._expiry = asyncio.create_task(self._expiry_loop(), name="task expiry")

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, min(60.0, self.registry.ttl / 4)))
            self.registry.expire()

    def create(self, method: str, who: str) -> Task:
        """A new pending task (run it with :meth:`run`)."""
        self._ensure_expiry()
        return self.registry.create(method, who)

    def run(self, task: Task, body: Callable[[Task], Awaitable[Any]],
            on_end: Callable[[Task], None] | None = None) -> Task:
        """Run ``body(task)``; its return value is the task's result."""
        return self.registry.run(task, body, on_end)

    def start_job(self, method: str, who: str, body: Callable[[], Awaitable[Any]],
                  details: Mapping[str, Any] | None = None) -> Task:
        """A task that is not about miners (set-network, serial devices): its result is what
        ``body`` returns; :class:`TaskFailed` (or a ConfigError/DeviceError) makes it fail.
        Start and end go to the audit log (passwords redacted)."""
        self._ensure_expiry()
        task = self.registry.create(method, who)
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

        return self.registry.run(task, run, end)

    def status(self) -> dict[str, Any]:
        tasks = self.registry.tasks.values()
        return {"tasks": len(self.registry),
                "tasks_pending": sum(1 for t in tasks if t.status == TaskStatus.PENDING),
                "tasks_expired": self.registry.expired}

    async def close(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
            self._expiry = None
        await self.registry.close()
