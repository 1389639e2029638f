"""Transport pieces both Whatsminer APIs share: v3 framing, sending a write safely, read-back.

A *write* is never retried blindly (design §8). What happened on the wire decides what we may
say about it:

* the connection could not be made → nothing was sent → :class:`DeviceUnreachable`;
* sent, then the miner closed or reset the connection without a word → for commands that
  legitimately end that way (``reboot``, ``power_off`` without ``respbefore``) that *is*
  success; for anything else the outcome is unknown;
* sent, then silence until the time limit → :class:`OutcomeUnknownError`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from webbo.agent.plugin import (
    DeviceError,
    DeviceTimeout,
    DeviceUnreachable,
    Net,
    OutcomeUnknownError,
)
from webbo.plugins.common.rpc4028.client import GarbledReply

__all__ = ["confirm", "count_frames", "decode_body", "frame", "frame_complete", "frames_complete",
           "send_write", "split_frames", "unframe"]

_decoder = msgspec.json.Decoder()


def frame(body: bytes) -> bytes:
    """One API v3 message: 4-byte little-endian length, then the JSON body."""
    return len(body).to_bytes(4, "little") + body


def split_frames(buffer: bytes | bytearray) -> tuple[list[bytes], int]:
    """Complete frames in ``buffer`` (zero-length heartbeats dropped) and the bytes consumed."""
    frames: list[bytes] = []
    pos = 0
    while len(buffer) - pos >= 4:
        size = int.from_bytes(buffer[pos:pos + 4], "little")
        if len(buffer) - pos - 4 < size:
            break
        if size:
            frames.append(bytes(buffer[pos + 4:pos + 4 + size]))
        pos += 4 + size
    return frames, pos


def frame_complete(buffer: bytearray) -> bool:
    """True once ``buffer`` holds one non-empty frame (heartbeats before it are skipped)."""
    return count_frames(buffer) >= 1


def count_frames(buffer: bytes | bytearray) -> int:
    """How many complete non-empty frames ``buffer`` holds (nothing copied)."""
    count = pos = 0
    end = len(buffer)
    while end - pos >= 4:
        size = int.from_bytes(buffer[pos:pos + 4], "little")
        if end - pos - 4 < size:
            break
        count += size > 0
        pos += 4 + size
    return count


_COMPLETE: dict[int, Callable[[bytearray], bool]] = {}


def frames_complete(count: int) -> Callable[[bytearray], bool]:
    """The completion test of a reply of ``count`` frames (pipelined requests)."""
    test = _COMPLETE.get(count)
    if test is None:
        test = _COMPLETE[count] = lambda buffer: count_frames(buffer) >= count
    return test


def unframe(raw: bytes) -> dict[str, Any]:
    """The JSON object of the first non-empty frame of a v3 reply. Raises :class:`GarbledReply`."""
    frames, _ = split_frames(raw)
    if not frames:
        if len(raw) >= 4:
            size = int.from_bytes(raw[:4], "little")
            raise GarbledReply(f"reply cut short: {len(raw) - 4} of {size} bytes arrived")
        raise GarbledReply("empty reply" if not raw else f"reply of {len(raw)} bytes is no frame")
    return decode_body(frames[0])


def decode_body(body: bytes) -> dict[str, Any]:
    """The JSON object of one frame's body. Raises :class:`GarbledReply`."""
    try:
        data = _decoder.decode(body)
    except msgspec.DecodeError:
        raise GarbledReply(f"unreadable reply: {body[:120]!r}") from None
    if not isinstance(data, dict):
        raise GarbledReply(f"reply is a {type(data).__name__}, not an object")
    return data


async def send_write(net: Net, ip: str, port: int, payload: bytes, *, what: str,
                     timeout: float, complete: Callable[[bytearray], bool] | None,
                     closes: bool = False) -> bytes | None:
    """Send one write and return the raw reply, or None when the miner closed the connection
    without answering and ``closes`` says that is how this command ends."""
    try:
        raw = await net.exchange(ip, port, payload, complete=complete, timeout=timeout)
    except DeviceUnreachable:
        raise  # nothing was sent: safe to say so
    except DeviceTimeout as exc:
        if exc.partial.strip(b"\x00 \r\n\t"):
            return exc.partial
        raise OutcomeUnknownError(
            f"{what}: sent, but the miner did not answer within {timeout:g}s; it may or may "
            "not have done it (not retried)") from None
    except DeviceError as exc:  # the connection broke after the request went out
        if closes:
            return None
        raise OutcomeUnknownError(
            f"{what}: the connection broke after sending ({exc}); the miner may or may not "
            "have done it (not retried)") from None
    if not raw.strip(b"\x00 \r\n\t"):
        if closes:
            return None
        raise OutcomeUnknownError(
            f"{what}: the miner closed the connection without answering; it may or may not "
            "have done it (not retried)")
    return raw


async def confirm(check: Callable[[], Awaitable[bool]], timeout: float,
                  interval: float = 1.0) -> bool:
    """Ask ``check`` until it says True or ``timeout`` passes; read errors count as "not yet"
    (a miner that restarts its mining software after a change answers nothing for a while)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await check():
                return True
        except DeviceError:
            pass
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
