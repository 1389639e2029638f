"""Reading the audit log through the API (our addition)."""

from __future__ import annotations

import asyncio
from typing import Any

from webbo.web.api.core import METHODS, Call
from webbo.web.api.schemas import AuditQuery


@METHODS.add("/audit/get", AuditQuery, summary="Read the audit log", tag="audit",
             result=list[dict[str, Any]], ours=True, examples=({"limit": 20},))
async def audit_get(call: Call, params: AuditQuery) -> list[dict[str, Any]]:
    """The newest entries first. Every task writes a ``start`` and an ``end`` entry: who
    (``key:<id> (<name>)`` or ``user:<name>``), the method, the selector, the parameters
    (passwords masked), the number of devices, and at the end the status and a summary
    (``ok``, ``failed``, ``unknown`` outcome, ``not_started`` after a cancel)."""
    return await asyncio.to_thread(call.tasks.audit.read, limit=params.limit,
                                   task_id=params.task_id, who=params.who, since=params.since)
