"""Real receivers for alert notifications, on loopback: an HTTP server that takes apprise's
JSON webhook (``json://127.0.0.1:PORT/hook``) and an SMTP server (aiosmtpd) that takes
``mailto://127.0.0.1:PORT?from=...&to=...``. Each keeps what it received, in order."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from servers import free_port


@dataclass
class Received:
    title: str
    body: str
    kind: str
    at: float


@dataclass
class WebhookReceiver:
    """apprise's ``json://`` notifications: POST {"title", "message", "type", ...}."""

    host: str = "127.0.0.1"
    port: int = 0
    messages: list[Received] = field(default_factory=list)
    fail_with: int | None = None
    """Answer this HTTP status instead of 200 (a failing channel)."""
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"json://{self.host}:{self.port}/hook?rto=3&cto=2"

    async def _handle(self, request: web.Request) -> web.Response:
        if self.fail_with is not None:
            return web.Response(status=self.fail_with, text="failing on purpose")
        data: dict[str, Any] = await request.json()
        self.messages.append(Received(str(data.get("title", "")), str(data.get("message", "")),
                                      str(data.get("type", "")), time.time()))
        return web.Response(text="ok")

    async def start(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = self.port or free_port()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class _Collect:
    def __init__(self, sink: list[Received], lock: threading.Lock) -> None:
        self.sink = sink
        self.lock = lock

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body_part = message.get_body(preferencelist=("plain", "html"))
        body = body_part.get_content() if body_part is not None else ""
        with self.lock:
            self.sink.append(Received(str(message["Subject"]), str(body), "mail", time.time()))
        return "250 Message accepted for delivery"


@dataclass
class SmtpReceiver:
    """A real SMTP server (aiosmtpd, its own thread), no TLS, no AUTH."""

    host: str = "127.0.0.1"
    port: int = 0
    messages: list[Received] = field(default_factory=list)
    _controller: Controller | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return (f"mailto://{self.host}:{self.port}?from=alerts@webbo.local"
                f"&to=ops@example.com&cto=3")

    def start(self) -> SmtpReceiver:
        self.port = self.port or free_port()
        self._controller = Controller(_Collect(self.messages, self._lock), hostname=self.host,
                                      port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()


async def wait_until(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def titles(messages: list[Received]) -> list[str]:
    return [m.title for m in messages]


def as_json(messages: list[Received]) -> str:
    return json.dumps([m.__dict__ for m in messages], ensure_ascii=False, indent=1)
