"""Outgoing connections to devices: bounded, timed, cheap.

Every socket the sweep, the pollers and the control tasks open goes through one :class:`Net`,
which holds a semaphore of ``[agent] concurrency`` slots. A connection takes a slot before it
connects and gives it back when it is closed, so a sweep of a /16 can never have more sockets
open than the bound and never meets "Too many open files".

:meth:`Net.exchange` is the one-connection-per-request pattern that cgminer-style APIs use:
connect (``connect_timeout``), send, read until the peer closes or the reply is complete
(``timeout``), close. It is built on a bare asyncio Protocol (no stream objects) because it runs
once per miner per poll.

:class:`Probe` is what identification shares between drivers: each cheap question ("which ports
answer?", "what does RPC ``version`` say?", "what is the realm of ``GET /``?") is asked once per
address, however many drivers want its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable
from typing import Any

import aiohttp

from webbo.agent.errors import DeviceError

__all__ = ["DeviceTimeout", "DeviceUnreachable", "Net", "Probe"]

MAX_REPLY = 16 * 1024 * 1024


class DeviceUnreachable(DeviceError):
    """Nothing answered: connection refused, connect timeout, no route."""


class DeviceTimeout(DeviceError):
    """Connected, but the reply did not complete in time. ``partial`` holds what came."""

    def __init__(self, message: str, partial: bytes = b"") -> None:
        super().__init__(message)
        self.partial = partial


Complete = Callable[[bytearray], bool]


def nul_terminated(buffer: bytearray) -> bool:
    """A cgminer reply ends with one NUL byte."""
    return buffer.endswith(b"\x00")


def length_prefixed_le32(buffer: bytearray) -> bool:
    """A frame of 4-byte little-endian length + body (Whatsminer API v3) is complete."""
    return len(buffer) >= 4 and len(buffer) >= 4 + int.from_bytes(buffer[:4], "little")


class _Exchange(asyncio.Protocol):
    __slots__ = ("buffer", "complete", "done", "limit", "payload", "transport")

    def __init__(self, payload: bytes, complete: Complete | None, limit: int,
                 done: asyncio.Future[bytes]) -> None:
        self.payload = payload
        self.complete = complete
        self.limit = limit
        self.done = done
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.payload:
            transport.write(self.payload)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > self.limit:
            self._finish(DeviceError(f"reply larger than {self.limit} bytes"))
        elif self.complete is not None and self.complete(self.buffer):
            self._finish(None)

    def eof_received(self) -> bool:
        self._finish(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done.done():
            return
        if exc is not None and not self.buffer:
            self.done.set_exception(DeviceError(f"connection lost: {exc}"))
        else:
            self.done.set_result(bytes(self.buffer))

    def _finish(self, error: Exception | None) -> None:
        if not self.done.done():
            if error is None:
                self.done.set_result(bytes(self.buffer))
            else:
                self.done.set_exception(error)
        if self.transport is not None:
            self.transport.close()


def _connect_error(host: str, port: int, exc: BaseException) -> DeviceUnreachable:
    if isinstance(exc, TimeoutError):
        return DeviceUnreachable(f"{host}:{port}: no answer (connect timed out)")
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return DeviceUnreachable(f"{host}:{port}: connection refused")
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return DeviceUnreachable(f"{host}:{port}: {reason}")


class Net:
    """The shared, bounded way out to devices."""

    def __init__(self, concurrency: int = 1024, connect_timeout: float = 1.0,
                 timeout: float = 5.0) -> None:
        self.concurrency = concurrency
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)
        self.open_now = 0
        self.peak_open = 0
        self.connections = 0
        self._http: aiohttp.ClientSession | None = None

    async def _acquire(self) -> None:
        await self._slots.acquire()
        self.open_now += 1
        self.connections += 1
        if self.open_now > self.peak_open:
            self.peak_open = self.open_now

    def _release(self) -> None:
        self.open_now -= 1
        self._slots.release()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one socket slot (use it around any client that opens its own socket)."""
        await self._acquire()
        try:
            yield
        finally:
            self._release()

    async def open_ports(self, host: str, ports: Iterable[int],
                         timeout: float | None = None) -> frozenset[int]:
        """Which of ``ports`` accept a TCP connection, tried at once (each socket in a slot).

        This is the sweep's question for every address that is not known yet, so it is built
        on bare non-blocking sockets and one future per address, not on a task per port: on a
        mostly empty /16 it is nearly all the sweep does.
        """
        ports = tuple(ports)
        if not ports:
            return frozenset()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        found: set[int] = set()
        live: dict[int, tuple[socket.socket, asyncio.TimerHandle | None]] = {}
        left = len(ports)

        def finish(port: int, ok: bool) -> None:
            nonlocal left
            sock, timer = live.pop(port)
            if timer is not None:
                timer.cancel()
                loop.remove_writer(sock.fileno())
            sock.close()
            self._release()
            if ok:
                found.add(port)
            left -= 1
            if left == 0 and not done.done():
                done.set_result(None)

        def writable(port: int) -> None:
            sock = live[port][0]
            finish(port, sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0)

        limit = timeout or self.connect_timeout
        try:
            for port in ports:
                await self._acquire()
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                live[port] = (sock, None)
                error = sock.connect_ex((host, port))
                if error in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY):
                    timer = loop.call_later(limit, finish, port, False)
                    live[port] = (sock, timer)
                    loop.add_writer(sock.fileno(), writable, port)
                else:
                    finish(port, error == 0)
            await done
        finally:
            for port in list(live):  # cancelled: give every socket and slot back
                finish(port, False)
        return frozenset(found)

    async def exchange(
        self,
        host: str,
        port: int,
        payload: bytes,
        *,
        complete: Complete | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        limit: int = MAX_REPLY,
    ) -> bytes:
        """Connect, send ``payload``, read the reply (until EOF or ``complete``), close."""
        loop = asyncio.get_running_loop()
        async with self.slot():
            done: asyncio.Future[bytes] = loop.create_future()
            try:
                async with asyncio.timeout(connect_timeout or self.connect_timeout):
                    transport, protocol = await loop.create_connection(
                        lambda: _Exchange(payload, complete, limit, done), host, port
                    )
            except (OSError, TimeoutError) as exc:
                raise _connect_error(host, port, exc) from None
            try:
                async with asyncio.timeout(timeout or self.timeout):
                    return await done
            except TimeoutError:
                partial = bytes(protocol.buffer)
                raise DeviceTimeout(
                    f"{host}:{port}: reply timed out after {len(partial)} bytes", partial
                ) from None
            finally:
                transport.close()

    async def port_open(self, host: str, port: int, timeout: float | None = None) -> bool:
        """True if a TCP connection to host:port succeeds (it is closed at once)."""
        loop = asyncio.get_running_loop()
        async with self.slot():
            try:
                async with asyncio.timeout(timeout or self.connect_timeout):
                    transport, _ = await loop.create_connection(asyncio.Protocol, host, port)
            except (OSError, TimeoutError):
                return False
            transport.close()
            return True

    @property
    def http(self) -> aiohttp.ClientSession:
        """A shared HTTP client for device web APIs (no pooling: one device, one request).

        Wrap each request in :meth:`slot` so HTTP sockets count against the bound too.
        """
        if self._http is None or self._http.closed:
            connector = aiohttp.TCPConnector(limit=0, force_close=True, ttl_dns_cache=None)
            self._http = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout,
                                              sock_connect=self.connect_timeout),
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None


_MISSING = object()


class Probe:
    """Memoised questions about one address, shared by the drivers that identify it."""

    def __init__(self, net: Net, ip: str, ports: Iterable[int] = ()) -> None:
        self.net = net
        self.ip = ip
        self.ports = tuple(sorted(set(ports)))
        self._answers: dict[Hashable, Any] = {}
        self._pending: dict[Hashable, asyncio.Future[Any]] = {}
        self._open: frozenset[int] | None = None
        self.said: list[str] = []
        """Short snippets of what the device answered (kept for unknown devices)."""

    async def open_ports(self) -> frozenset[int]:
        """Which of the drivers' ports accept a connection (tried concurrently, once)."""
        if self._open is None:
            self._open = await self.net.open_ports(self.ip, self.ports)
        return self._open

    @property
    def answered(self) -> bool:
        """True once anything at this address accepted a connection."""
        return bool(self._open) or bool(self.said)

    async def ask(self, key: Hashable, question: Callable[[], Awaitable[Any]]) -> Any:
        """The answer to ``question``, asked at most once per key (errors are remembered too)."""
        answer = self._answers.get(key, _MISSING)
        if answer is not _MISSING:
            if isinstance(answer, BaseException):
                raise answer
            return answer
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            result = await question()
        except Exception as exc:
            self._answers[key] = exc
            future.set_exception(exc)
            future.exception()  # mark retrieved
            raise
        finally:
            self._pending.pop(key, None)
        self._answers[key] = result
        future.set_result(result)
        return result

    def note(self, what: str, limit: int = 300) -> None:
        """Remember what the device said (for the unknown-device record)."""
        if what and len(self.said) < 8:
            self.said.append(what[:limit])


def ip_to_int(ip: str) -> int:
    return int(ipaddress.IPv4Address(ip))


def int_to_ip(value: int) -> str:
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


ARP_TABLE = "/proc/net/arp"


def neighbour_mac(ip: str, table: str = ARP_TABLE) -> str | None:
    """The MAC this host's neighbour (ARP) table holds for ``ip``, or None.

    Only devices on the same L2 segment appear there, and only after traffic to them; it is a
    fallback for firmwares whose API tells no MAC.
    """
    try:
        with open(table, encoding="ascii", errors="replace") as handle:
            next(handle, None)  # header
            for line in handle:
                parts = line.split()
                if len(parts) >= 4 and parts[0] == ip and parts[2] != "0x0":
                    return parts[3]
    except OSError:
        return None
    return None
