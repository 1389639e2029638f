"""The sockets of one simulated Whatsminer: 4028 (v1/v2), 4433 (v3 firmware), its web port.

* 4028: one JSON request per connection (no delimiter: the request ends where its JSON does),
  one reply, then the miner closes; a connection that sends nothing for 10 s is closed.
* 4433: framed requests (4-byte little-endian length), as many as the client sends on one
  connection; heartbeats (empty frames) keep it open; idle connections close after 300 s; at
  most 10 clients at once.
* web: ``GET /`` (anything) → ``307`` to ``https://<ip>/cgi-bin/luci``, as LuCI does.

Faults (``SimOptions.faults``): ``refuse`` (nothing listens), ``silent`` (connections are
accepted and never answered), ``garbage`` (random bytes, then close), ``slow`` (answers after a
delay), ``half`` (half of each reply, then close); ``oversized`` and ``write_disabled``
live in the device state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable
from typing import Any

from webbo.plugins.inputs.whatsminer.sim import replies_v2, replies_v3
from webbo.plugins.inputs.whatsminer.sim.replies_v2 import Outcome
from webbo.plugins.inputs.whatsminer.sim.state import SimDevice
from webbo.plugins.inputs.whatsminer.wire import frame, split_frames

__all__ = ["DeviceServers"]

V2_PORT = 4028
V3_PORT = 4433
V2_IDLE = 10.0
V3_IDLE = 300.0
V3_MAX_CLIENTS = 10
SILENT_HOLD = 120.0
MAX_REQUEST = 1 << 20


class DeviceServers:
    """The listening sockets of one device and the connections they carry (a reboot drops
    them all and listens again when the miner is back)."""

    def __init__(self, device: SimDevice, *, http_port: int | None, reboot_seconds: float,
                 slow_seconds: float) -> None:
        self.device = device
        self.http_port = http_port
        self.reboot_seconds = reboot_seconds
        self.slow_seconds = slow_seconds
        self.servers: list[asyncio.Server] = []
        self.transports: set[asyncio.BaseTransport] = set()
        self.v3_clients = 0
        self._garbage = 0
        self._comeback: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def ports(self) -> dict[str, int | None]:
        return {"rpc": V2_PORT, "v3": V3_PORT if self.device.profile.api == "v3" else None,
                "http": self.http_port}

    async def listen(self) -> None:
        if self.device.fault == "refuse":
            return
        loop = asyncio.get_running_loop()
        specs: list[tuple[int, Callable[[], asyncio.Protocol]]] = [
            (V2_PORT, lambda: V2Protocol(self))]
        if self.device.profile.api == "v3":
            specs.append((V3_PORT, lambda: V3Protocol(self)))
        if self.http_port:
            specs.append((self.http_port, lambda: HttpProtocol(self)))
        for port, factory in specs:
            try:
                server = await loop.create_server(factory, host=self.device.ip, port=port,
                                                  reuse_address=True)
            except OSError as exc:
                self._drop_all()
                raise OSError(exc.errno, f"simulated Whatsminer {self.device.ip}:{port}: "
                                         f"{exc.strerror}") from None
            self.servers.append(server)

    def _drop_all(self) -> None:
        for server in self.servers:
            server.close()
        self.servers = []
        for transport in list(self.transports):
            transport.abort()  # type: ignore[attr-defined]
        self.transports.clear()

    def reboot(self) -> None:
        """Go away (connections refused) for ``reboot_seconds``, then come back fresh."""
        if self.device.rebooting:
            return
        self.device.rebooting = True
        self._drop_all()
        loop = asyncio.get_running_loop()
        self._comeback = loop.call_later(self.reboot_seconds, self._come_back)

    def _come_back(self) -> None:
        self.device.after_reboot()
        self.device.rebooting = False
        task = asyncio.ensure_future(self.listen())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def garbage(self) -> bytes:
        """Bytes that start like a reply and turn into noise (never valid JSON)."""
        self._garbage += 1
        rng = random.Random(f"{self.device.seed}:{self.device.ip}:garbage:{self._garbage}")
        noise = bytes(rng.randrange(256) for _ in range(rng.randint(32, 480)))
        return b'{"STATUS":[{"STATUS":"S","When":17' + noise.replace(b"}", b"~")

    async def close(self) -> None:
        if self._comeback is not None:
            self._comeback.cancel()
        for task in list(self._tasks):
            task.cancel()
        servers = self.servers
        self._drop_all()
        for server in servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()


class _Connection(asyncio.Protocol):
    idle = V2_IDLE

    def __init__(self, owner: DeviceServers) -> None:
        self.owner = owner
        self.device = owner.device
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.peer = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.owner.transports.add(transport)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""
        self.arm(self.idle)

    def arm(self, seconds: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(seconds, self.on_idle)

    def on_idle(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.transport is not None:
            self.owner.transports.discard(self.transport)

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def answer(self, produce: Callable[[], Outcome], close: bool) -> None:
        """Answer as this device's fault (if any) dictates."""
        fault = self.device.fault
        if fault == "silent":
            self.arm(SILENT_HOLD)
        elif fault == "garbage":
            assert self.transport is not None
            self.transport.write(self.owner.garbage())
            self.transport.close()
        elif fault == "half":
            outcome = produce()
            if outcome.reply is not None:
                outcome.reply = outcome.reply[:max(1, len(outcome.reply) // 2)]
            self.deliver(Outcome(outcome.reply), close=True)
        elif fault == "slow":
            asyncio.get_running_loop().call_later(
                self.owner.slow_seconds, lambda: self.deliver(produce(), close))
        else:
            self.deliver(produce(), close)

    def deliver(self, outcome: Outcome, close: bool) -> None:
        if not self.open:
            return
        assert self.transport is not None
        if outcome.reply is not None:
            self.transport.write(self.wrap(outcome.reply))
        if close or outcome.reply is None:
            self.transport.close()
        if outcome.after is not None:
            outcome.after()
        if outcome.reboot:
            self.owner.reboot()

    def wrap(self, reply: bytes) -> bytes:
        return reply


class V2Protocol(_Connection):
    """API v1/v2 on 4028: one request, one reply, close."""

    done = False

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        self.buffer += data
        if len(self.buffer) > MAX_REQUEST:
            self.transport.abort()  # type: ignore[union-attr]
            return
        text = bytes(self.buffer).strip(b" \r\n\t\x00")
        if not text:
            return
        if text[:1] == b"{":
            if not text.endswith(b"}"):
                return
            try:
                json.loads(text)
            except ValueError:
                return  # perhaps more is coming; the idle timer answers if not
        self.request(text)

    def on_idle(self) -> None:
        text = bytes(self.buffer).strip(b" \r\n\t\x00")
        if text and not self.done:
            self.request(text)  # it sent something that never became JSON
        else:
            super().on_idle()

    def request(self, text: bytes) -> None:
        self.done = True
        if self.device.rebooting:
            return
        self.answer(lambda: replies_v2.handle(self.device, text, self.peer), close=True)


class V3Protocol(_Connection):
    """API v3 on 4433: framed requests and replies on a persistent connection."""

    idle = V3_IDLE
    counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.owner.v3_clients >= V3_MAX_CLIENTS:
            transport.close()
            return
        self.owner.v3_clients += 1
        self.counted = True

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.counted:
            self.owner.v3_clients -= 1
            self.counted = False

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > MAX_REQUEST:
            self.transport.abort()  # type: ignore[union-attr]
            return
        frames, used = split_frames(self.buffer)
        del self.buffer[:used]
        if used:
            self.arm(self.idle)
        for body in frames:
            self.answer(lambda body=body: self.handle(body), close=False)

    def handle(self, body: bytes) -> Outcome:
        try:
            request = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            return Outcome(replies_v2.dumps(replies_v3.reply(self.device, "", "invalid json",
                                                             -2)))
        return replies_v3.handle(self.device, request)

    def wrap(self, reply: bytes) -> bytes:
        return frame(reply)


class HttpProtocol(_Connection):
    """The web port: everything is redirected to the HTTPS LuCI pages."""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer and len(self.buffer) < 8192:
            return
        body = (b'<html><head><meta http-equiv="refresh" content="0; '
                b'URL=https://' + self.device.ip.encode() + b'/cgi-bin/luci" /></head>'
                b'<body><a href="/cgi-bin/luci">LuCI - Lua Configuration Interface</a>'
                b'</body></html>')
        head = (f"HTTP/1.1 307 Temporary Redirect\r\n"
                f"Location: https://{self.device.ip}/cgi-bin/luci\r\n"
                f"Content-Type: text/html\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n").encode()
        assert self.transport is not None
        self.transport.write(head + body)
        self.transport.close()
