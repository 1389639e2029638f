"""Task methods (manual §3.3): status of a task, and cancelling one (our addition)."""

from __future__ import annotations

from typing import Any

from webbo.web.api.core import METHODS, Call
from webbo.web.api.schemas import TaskIdParams, TaskInfo


@METHODS.add("/task-info", TaskIdParams, summary="Status of a task", tag="tasks",
             result=TaskInfo,
             examples=({"task_id": "22d142e3-4a35-4be0-bc0d-e89951c056a5"},))
async def task_info(call: Call, params: TaskIdParams) -> dict[str, Any]:
    """Returns ``{"status", "result"}``. ``status`` is ``invalid`` (not a UUID4), ``unknown``
    (no such task: never created, already reported, or expired), ``pending`` (repeat the call
    later), ``success`` (``result`` holds the task's result), ``failure`` (``result`` holds the
    error) or ``canceled``. A finished task is reported once; asked again it is ``unknown``."""
    return call.tasks.registry.info(params.task_id)


@METHODS.add("/task-cancel", TaskIdParams, summary="Cancel a pending task", tag="tasks",
             result=TaskInfo, ours=True,
             examples=({"task_id": "ede2229f-d4d0-4118-a51c-543a07cb493a"},))
async def task_cancel(call: Call, params: TaskIdParams) -> dict[str, Any]:
    """Stops a pending task: devices not yet started are not touched; actions already running
    are let finish (cutting a write short would leave its outcome unknown). Waits up to 10 s
    for them and answers ``{"status": "canceled", "result": null}``; /api/task-info then
    reports ``canceled`` once. For a task that already finished it answers that task's status
    without consuming it; ``invalid`` / ``unknown`` as /api/task-info does."""
    answer = await call.tasks.registry.cancel(params.task_id)
    if answer["status"] == "canceled":
        call.tasks.audit.write({"event": "cancel", "task_id": params.task_id,
                                     "who": call.who})
    return answer
