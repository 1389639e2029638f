"""Connecting to NATS with the settings of ``[cluster]`` or ``[hub]``.

The client reconnects by itself, forever (an agent must outlive any outage of the link), and
buffers what is published while it is away (``outage_buffer_mb``). The first connection is
retried here with a growing pause: an agent starts whether or not NATS is up.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import nats
import structlog
from nats.aio.client import Client

from webbo.agent.cluster.config import NatsSettings

__all__ = ["connect_forever", "tls_context"]

log = structlog.get_logger("webbo.cluster")

Callback = Callable[[], Awaitable[None]]


def tls_context(settings: NatsSettings) -> ssl.SSLContext | None:
    if not settings.secure:
        return None
    context = ssl.create_default_context(cafile=settings.tls_ca or None)
    if settings.tls_cert:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


def options(settings: NatsSettings) -> dict[str, Any]:
    """nats-py's ``connect`` keywords for ``settings`` (servers, credentials, TLS)."""
    opts: dict[str, Any] = {"servers": list(settings.urls),
                            "connect_timeout": max(1, round(float(settings.connect_timeout)))}
    if settings.user:
        opts["user"], opts["password"] = settings.user, settings.password
    if settings.token:
        opts["token"] = settings.token
    if settings.nkey_seed:
        opts["nkeys_seed"] = settings.nkey_seed
    if settings.creds:
        opts["user_credentials"] = settings.creds
    context = tls_context(settings)
    if context is not None:
        opts["tls"] = context
        if settings.tls_hostname:
            opts["tls_hostname"] = settings.tls_hostname
    return opts


async def connect_forever(settings: NatsSettings, *, name: str, inbox_prefix: str,
                          pending_size: int = 8 << 20,
                          on_error: Callable[[Exception], Awaitable[None]] | None = None,
                          on_disconnect: Callback | None = None,
                          on_reconnect: Callback | None = None) -> Client:
    """Connect, retrying until it works (cancel the caller to give up)."""

    async def error_cb(exc: Exception) -> None:
        if on_error is not None:
            await on_error(exc)
        else:
            log.warning("nats error", connection=name, error=str(exc))

    async def disconnected_cb() -> None:
        if on_disconnect is not None:
            await on_disconnect()

    async def reconnected_cb() -> None:
        if on_reconnect is not None:
            await on_reconnect()

    pause = 0.5
    while True:
        try:
            return await nats.connect(
                **options(settings), name=name, inbox_prefix=inbox_prefix,
                pending_size=pending_size, allow_reconnect=True, max_reconnect_attempts=-1,
                reconnect_time_wait=1, ping_interval=10, max_outstanding_pings=3,
                error_cb=error_cb, disconnected_cb=disconnected_cb,
                reconnected_cb=reconnected_cb, drain_timeout=5)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("cannot reach NATS; trying again", connection=name,
                        servers=list(settings.urls), error=str(exc) or type(exc).__name__,
                        retry_in_s=pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 10.0)
