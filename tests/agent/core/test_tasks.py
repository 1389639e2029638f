"""Tasks (the manual's life cycle: pending, then reported once, then unknown; expiry; cancel)
and the audit log."""

from __future__ import annotations

import asyncio
import os
import stat
import uuid

from webbo.agent.core.audit import AuditLog, redact
from webbo.agent.core.tasks import TaskRegistry


async def test_task_life_cycle_reports_once_then_unknown():
    tasks = TaskRegistry(ttl=3600)
    gate = asyncio.Event()

    async def body(_):
        await gate.wait()
        return {"x": 1}

    task = tasks.run(tasks.create("m", "who"), body)
    assert uuid.UUID(task.id).version == 4
    assert tasks.info(task.id) == {"status": "pending", "result": None}
    assert tasks.info(task.id.upper()) == {"status": "pending", "result": None}
    gate.set()
    await task.handle
    assert tasks.info(task.id) == {"status": "success", "result": {"x": 1}}
    assert tasks.info(task.id) == {"status": "unknown", "result": None}
    assert tasks.info("nope") == {"status": "invalid", "result": None}
    assert tasks.info(str(uuid.uuid1())) == {"status": "invalid", "result": None}
    assert tasks.info(str(uuid.uuid4())) == {"status": "unknown", "result": None}


async def test_finished_unread_tasks_expire():
    tasks = TaskRegistry(ttl=10)

    async def body(_):
        return True

    task = tasks.run(tasks.create("m", "who"), body)
    await task.handle
    assert tasks.expire(now=task.finished + 5) == 0
    assert tasks.expire(now=task.finished + 11) == 1
    assert tasks.info(task.id)["status"] == "unknown"


async def test_cancel_of_a_pending_task():
    tasks = TaskRegistry(ttl=3600)
    started = asyncio.Event()

    async def body(task):
        started.set()
        while not task.cancel_requested:  # noqa: ASYNC110 (the flag is what cancel sets)
            await asyncio.sleep(0.01)
        return "partial"

    task = tasks.run(tasks.create("m", "who"), body)
    await started.wait()
    assert await tasks.cancel(task.id) == {"status": "canceled", "result": None}
    assert tasks.info(task.id) == {"status": "canceled", "result": None}
    assert tasks.info(task.id)["status"] == "unknown"
    assert (await tasks.cancel("bad"))["status"] == "invalid"


def test_audit_log_is_0600_and_reads_newest_first(tmp_path):
    audit = AuditLog(tmp_path / "audit.log")
    for i in range(5):
        audit.write({"event": "x", "task_id": str(i), "who": "key:1"})
    assert stat.S_IMODE(os.stat(tmp_path / "audit.log").st_mode) == 0o600
    assert [e["task_id"] for e in audit.read(limit=2)] == ["4", "3"]
    assert [e["task_id"] for e in audit.read(task_id="1")] == ["1"]
    assert redact({"pools": [{"passwd": "s"}, None], "password_1": "111111"}) == {
        "pools": [{"passwd": "***"}, None], "password_1": "***"}
