"""Waiting in tests for something the code under test does in the background."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

__all__ = ["wait_for"]


async def wait_for(predicate: Callable[[], Any], timeout: float = 30.0,
                   step: float = 0.1) -> bool:
    """Ask ``predicate()`` every ``step`` seconds until it is true or ``timeout`` has passed;
    answers its last truth (the caller asserts it, so a failure shows the test's own line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return bool(predicate())
