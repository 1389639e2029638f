"""The audit log: who did what to which devices, and what came of it.

Append-only JSON lines in ``<state_dir>/audit.log`` (0600), one per event, rotated past a size.
Passwords in what is recorded are replaced by ``***``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("webbo.audit")

__all__ = ["AUDIT_FILE", "AuditLog", "redact"]


AUDIT_FILE = "audit.log"


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
