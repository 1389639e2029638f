"""systemd integration without a dependency: sd_notify over $NOTIFY_SOCKET.

With ``Type=notify`` the unit is "started" only once the agent really runs (READY=1); with
``WatchdogSec=`` the agent pings (WATCHDOG=1) at half the interval from its event loop, so a
wedged loop is restarted by systemd. Outside systemd every call is a no-op.
"""

from __future__ import annotations

import asyncio
import os
import socket

import structlog

log = structlog.get_logger("webbo.systemd")


def notify(message: str) -> bool:
    """Send one sd_notify message; False when not running under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("sd_notify failed", error=str(exc))
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings (half of WatchdogSec), or None without a watchdog."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.5, int(usec) / 2_000_000)
    except ValueError:
        return None


async def watchdog_loop() -> None:
    """Ping the systemd watchdog for as long as the event loop is alive."""
    interval = watchdog_interval()
    if interval is None:
        # Nothing to ping, but returning would end run_until_signalled's wait at once (it
        # stops the agent when any of its tasks ends): wait until cancelled instead.
        await asyncio.Event().wait()
        return
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)
