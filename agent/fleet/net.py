"""Outgoing connections to devices: bounded, timed, cheap.

Every socket the sweep, the pollers and the control tasks open goes through one :class:`Net`,
which holds ``[agent] concurrency`` slots (a FIFO bound). A connection takes a slot before it
connects and gives it back when it is closed, so a sweep of a /16 can never have more sockets
open than the bound and never meets "Too many open files".

:meth:`Net.exchange` is the one-connection-per-request pattern that cgminer-style APIs use:
connect (``connect_timeout``), send, read until the peer closes or the reply is complete
(``timeout``), close. It is driven straight from the event loop's selector callbacks (no
transport, no stream objects) because it runs once per miner per poll, and several times per
miner at identification (the device web APIs go through it too: :mod:`webbo.agent.fleet.http1`).

:class:`Probe` is what identification shares between drivers: each cheap question ("which ports
answer?", "what does RPC ``version`` say?", "what is the realm of ``GET /``?") is asked once per
address, however many drivers want its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import resource
import select
import selectors
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable
from typing import Any

import aiohttp

from webbo.agent.core.errors import DeviceError

__all__ = ["DeviceTimeout", "DeviceUnreachable", "Net", "Probe"]

MAX_REPLY = 16 * 1024 * 1024
FRESH_FOR = 5.0
"""Seconds a port check's connection may wait for the request it was left open for."""


class DeviceUnreachable(DeviceError):
    """Nothing answered: connection refused, connect timeout, no route."""


class DeviceTimeout(DeviceError):
    """Connected, but the reply did not complete in time. ``partial`` holds what came."""

    def __init__(self, message: str, partial: bytes = b"") -> None:
        super().__init__(message)
        self.partial = partial


Complete = Callable[[bytearray], bool]


class _Slots:
    """A FIFO counting bound on open sockets.

    ``asyncio.Semaphore`` (3.11) wakes a waiter by scanning its deque from the front past
    every waiter already woken but not yet run; with a thousand sweep workers queueing for the
    slots that scan dominated the sweep's CPU. Here a released slot is handed straight to the
    oldest live waiter (popped, so nothing is scanned twice) and a cancelled waiter is skipped
    once, when it reaches the front.
    """

    __slots__ = ("free", "waiters")

    def __init__(self, count: int) -> None:
        self.free = count
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as we were cancelled: pass it on
            raise

    def release(self) -> None:
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes to this waiter directly
                return
        self.free += 1


_IN = select.EPOLLIN if hasattr(select, "epoll") else 1
_OUT = select.EPOLLOUT if hasattr(select, "epoll") else 4
_BAD = (select.EPOLLERR | select.EPOLLHUP) if hasattr(select, "epoll") else 0


class _Poller:
    """The device sockets, watched by one epoll of the fleet's own, itself watched by the event
    loop (one reader).

    Registering a socket with the event loop (``add_reader``/``add_writer`` and their removal)
    costs a dozen Python calls of bookkeeping each time, four times per exchange: a third of
    the agent's own CPU per exchange (bench/README.md). Here watching, changing and forgetting
    a socket is one ``epoll_ctl`` each, and one callback of the loop hands the ready sockets to
    their exchanges. Where there is no epoll (not Linux) the standard selector stands in.
    """

    __slots__ = ("handlers", "loop", "poll", "selector")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.handlers: dict[int, Callable[[int], None]] = {}
        if hasattr(select, "epoll"):
            self.selector: Any = select.epoll()
            self.poll: Callable[[], list[tuple[int, int]]] = self._epoll_ready
        else:  # pragma: no cover - non-Linux development machines
            self.selector = _SelectorShim()
            self.poll = self.selector.ready
        loop.add_reader(self.selector.fileno(), self._ready)

    def _epoll_ready(self) -> list[tuple[int, int]]:
        return self.selector.poll(0)  # type: ignore[no-any-return]

    def watch(self, fd: int, events: int, handler: Callable[[int], None]) -> None:
        self.selector.register(fd, events)
        self.handlers[fd] = handler

    def change(self, fd: int, events: int) -> None:
        self.selector.modify(fd, events)

    def forget(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            with contextlib.suppress(OSError, KeyError, ValueError):
                self.selector.unregister(fd)

    def _ready(self) -> None:
        handlers = self.handlers
        for fd, events in self.poll():
            handler = handlers.get(fd)
            if handler is not None:
                handler(events)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.remove_reader(self.selector.fileno())
        self.selector.close()
        self.handlers.clear()


class _SelectorShim:  # pragma: no cover - non-Linux development machines
    """epoll's calls on top of :mod:`selectors` (read = 1, write = 4, as epoll numbers them)."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()

    def fileno(self) -> int:
        return self.selector.fileno()

    @staticmethod
    def _mask(events: int) -> int:
        return (selectors.EVENT_READ if events & _IN else 0) | \
            (selectors.EVENT_WRITE if events & _OUT else 0)

    def register(self, fd: int, events: int) -> None:
        self.selector.register(fd, self._mask(events))

    def modify(self, fd: int, events: int) -> None:
        self.selector.modify(fd, self._mask(events))

    def unregister(self, fd: int) -> None:
        self.selector.unregister(fd)

    def ready(self) -> list[tuple[int, int]]:
        return [(key.fd, (_IN if mask & selectors.EVENT_READ else 0)
                 | (_OUT if mask & selectors.EVENT_WRITE else 0))
                for key, mask in self.selector.select(0)]

    def close(self) -> None:
        self.selector.close()


class _Exchange:
    """One request on one connection, driven by the fleet's poller.

    No transport, no stream, no task of its own: connect (non-blocking), send, read until the
    peer closes or ``complete`` says the reply is whole, close. It runs several times per miner
    per cycle (RPC poll, and the HTTP requests of identification), so it resolves one future
    and holds one timer: it fires at the connect deadline and, if the connection was made by
    then, is set once more for what is left of ``timeout`` (counted from the connection).
    """

    __slots__ = ("buffer", "complete", "connected", "deadline", "done", "fd", "host", "keep",
                 "kept", "limit", "loop", "out", "poller", "port", "sock", "timeout", "timer",
                 "watching")

    def __init__(self, loop: asyncio.AbstractEventLoop, poller: _Poller, payload: bytes,
                 complete: Complete | None, limit: int, keep: bool = False) -> None:
        self.loop = loop
        self.poller = poller
        self.keep = keep
        """Leave the connection open once ``complete`` says the reply is whole."""
        self.kept: socket.socket | None = None
        """The open socket, when it was kept."""
        self.out = memoryview(payload) if payload else None
        self.complete = complete
        self.limit = limit
        self.buffer = bytearray()
        self.done: asyncio.Future[bytes] = loop.create_future()
        self.sock: socket.socket | None = None
        self.fd = -1
        self.timer: asyncio.TimerHandle | None = None
        self.connected = self.watching = False
        self.timeout = self.deadline = 0.0
        self.host, self.port = "", 0

    def start(self, family: int, address: Any, connect_timeout: float, timeout: float,
              host: str, port: int) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        sock = self.sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        self.fd = sock.fileno()
        error = sock.connect_ex(address)
        if error == 0:
            self._connected()
        elif error in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY, errno.EINTR):
            self.timer = self.loop.call_later(connect_timeout, self._timed_out)
            self.watching = True
            self.poller.watch(self.fd, _OUT, self._event)
        else:
            self._fail(_connect_error(host, port, OSError(error, os.strerror(error))))

    def start_on(self, sock: socket.socket, timeout: float) -> None:
        """Run the exchange on a connection already open (a kept one)."""
        self.sock = sock
        self.fd = sock.fileno()
        self.timeout = timeout
        self._connected()

    def _timed_out(self) -> None:
        self.timer = None
        if not self.connected:
            self._fail(_connect_error(self.host, self.port, TimeoutError()))
            return
        left = self.deadline - self.loop.time()
        if left > 0:  # fired at the connect deadline: the reply still has time
            self.timer = self.loop.call_later(left, self._timed_out)
            return
        if not self.done.done():
            self.done.set_exception(_ReplyTimeout())
        self.close()

    def _event(self, events: int) -> None:
        if not self.connected:
            assert self.sock is not None
            error = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                self._fail(_connect_error(self.host, self.port,
                                          OSError(error, os.strerror(error))))
                return
            self._connected()
            return
        if events & _OUT and self.out is not None:
            self._send()
        if events & (_IN | _BAD) and self.sock is not None:
            self._readable()

    def _connected(self) -> None:
        self.connected = True
        self.deadline = self.loop.time() + self.timeout
        if self.timer is None:
            self.timer = self.loop.call_later(self.timeout, self._timed_out)
        if self.out is not None:
            self._send()
        elif self.watching:
            self.poller.change(self.fd, _IN)
        else:
            self.watching = True
            self.poller.watch(self.fd, _IN, self._event)

    def _send(self) -> None:
        assert self.sock is not None and self.out is not None
        try:
            sent = self.sock.send(self.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._lost(exc)
            return
        events = _IN
        if sent < len(self.out):  # the rest when the socket can take it
            self.out = self.out[sent:]
            events = _IN | _OUT
        else:
            self.out = None
        if self.watching:
            self.poller.change(self.fd, events)
        else:
            self.watching = True
            self.poller.watch(self.fd, events, self._event)

    def _readable(self) -> None:
        assert self.sock is not None
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        if not data:  # the peer closed: the reply is what came
            self._finish()
            return
        self.buffer += data
        if len(self.buffer) > self.limit:
            self._fail(DeviceError(f"reply larger than {self.limit} bytes"))
        elif self.complete is not None:
            try:
                whole = self.complete(self.buffer)
            except Exception:  # a predicate choking on odd bytes: let the parser say why
                whole = True
            if whole:
                self._finish(whole=True)

    def _lost(self, exc: OSError) -> None:
        if self.buffer:
            self._finish()
        else:
            self._fail(DeviceError(f"connection lost: {exc}"))

    def _finish(self, whole: bool = False) -> None:
        if not self.done.done():
            self.done.set_result(bytes(self.buffer))
        if whole and self.keep and self.out is None:
            self._detach()
        self.close()

    def _detach(self) -> None:
        """Stop watching the socket but leave it open, for the next exchange to reuse."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.watching:
            self.watching = False
            self.poller.forget(self.fd)
        self.kept, self.sock = self.sock, None

    def _fail(self, error: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(error)
        self.close()

    def close(self) -> None:
        """Stop watching the socket, cancel the timer, close (idempotent)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.sock is None:
            return
        if self.watching:
            self.watching = False
            self.poller.forget(self.fd)
        self.sock.close()
        self.sock = None


class _ReplyTimeout(Exception):
    """Internal: the reply did not complete in time (turned into DeviceTimeout with context)."""


class _Stale(Exception):
    """Internal: a kept connection turned out closed before anything of the reply came."""


def _connect_error(host: str, port: int, exc: BaseException) -> DeviceUnreachable:
    if isinstance(exc, TimeoutError):
        return DeviceUnreachable(f"{host}:{port}: no answer (connect timed out)")
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return DeviceUnreachable(f"{host}:{port}: connection refused")
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return DeviceUnreachable(f"{host}:{port}: {reason}")


async def _address(loop: asyncio.AbstractEventLoop, host: str, port: int,
                   limit: float) -> tuple[int, Any]:
    """(family, sockaddr) of ``host``: an address literal at once, a name through the resolver
    (devices are configured by address; a name is the rare case, and it may not hang)."""
    try:
        socket.inet_pton(socket.AF_INET, host)
        return socket.AF_INET, (host, port)
    except OSError:
        pass
    try:
        socket.inet_pton(socket.AF_INET6, host)
        return socket.AF_INET6, (host, port)
    except OSError:
        pass
    try:
        async with asyncio.timeout(limit):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as exc:
        raise _connect_error(host, port, exc) from None
    if not infos:
        raise DeviceUnreachable(f"{host}:{port}: name does not resolve")
    info = next((i for i in infos if i[0] == socket.AF_INET), infos[0])  # devices speak IPv4
    return info[0], info[4]


def keep_limit(concurrency: int, reserve: int = 1024) -> int:
    """How many idle connections may be kept open: what the file limit leaves once the
    ``concurrency`` sockets in flight and ``reserve`` other files (the web server's, logs,
    state files) are counted."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        soft = 1 << 20
    return max(0, min(1 << 16, soft - concurrency - reserve))


class Net:
    """The shared, bounded way out to devices.

    Besides the one-request connections, an API that keeps its connection open between
    requests (Whatsminer API v3) may ask :meth:`exchange` to ``keep`` it: the connection then
    waits, idle, for the next exchange with that address and port (at most one per address
    and port, at most :attr:`keep_limit` in all). Idle connections hold no slot of the
    ``concurrency`` bound (they do hold a file each: the limit is what the file limit leaves);
    an exchange on one takes a slot like any other.
    """

    def __init__(self, concurrency: int = 1024, connect_timeout: float = 1.0,
                 timeout: float = 5.0, keep: int | None = None) -> None:
        self.concurrency = concurrency
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._slots = _Slots(concurrency)
        self.open_now = 0
        self.peak_open = 0
        self.connections = 0
        self.keep_limit = keep_limit(concurrency) if keep is None else keep
        self.reused = 0
        """Exchanges that ran on a kept connection."""
        self._idle: dict[tuple[str, int], tuple[socket.socket, float]] = {}
        self._fresh: dict[tuple[str, int], tuple[socket.socket, float]] = {}
        self._poller: _Poller | None = None
        self._http: aiohttp.ClientSession | None = None

    def _poller_for(self, loop: asyncio.AbstractEventLoop) -> _Poller:
        poller = self._poller
        if poller is None or poller.loop is not loop or loop.is_closed():
            if poller is not None and not poller.loop.is_closed():
                poller.close()
            poller = self._poller = _Poller(loop)
        return poller

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
                         timeout: float | None = None, keep: bool = False) -> frozenset[int]:
        """Which of ``ports`` accept a TCP connection, tried at once (each socket in a slot).

        This is the sweep's question for every address that is not known yet, so it is built
        on bare non-blocking sockets and one future per address, not on a task per port: on a
        mostly empty /16 it is nearly all the sweep does.

        ``keep`` leaves the connections that were made open, unused: the next exchange with
        that port sends its request on one instead of connecting again (identification: the
        port check's connection carries the first question). :meth:`drop_fresh` closes those
        nobody used; one left longer than :data:`FRESH_FOR` seconds is not used.
        """
        ports = tuple(ports)
        if not ports:
            return frozenset()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        found: set[int] = set()
        live: dict[int, tuple[socket.socket, asyncio.TimerHandle | None]] = {}
        left = len(ports)

        poller = self._poller_for(loop)

        def finish(port: int, ok: bool) -> None:
            nonlocal left
            sock, timer = live.pop(port)
            if timer is not None:
                timer.cancel()
                poller.forget(sock.fileno())
            if ok and keep and len(self._fresh) < self.keep_limit:
                self._fresh[(host, port)] = (sock, loop.time())
            else:
                sock.close()
            self._release()
            if ok:
                found.add(port)
            left -= 1
            if left == 0 and not done.done():
                done.set_result(None)

        def writable(port: int, events: int) -> None:
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
                    poller.watch(sock.fileno(), _OUT, functools.partial(writable, port))
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
        keep: bool = False,
    ) -> bytes:
        """Connect, send ``payload``, read the reply (until EOF or ``complete``), close.

        ``connect_timeout`` bounds the connect (:class:`DeviceUnreachable`), ``timeout`` the
        reply after it (:class:`DeviceTimeout`, carrying what did arrive).

        ``keep`` (reads only: a request may be sent twice) uses the idle connection kept for
        ``host:port`` if there is one, and keeps the connection open afterwards when
        ``complete`` said the reply was whole. A kept connection the device has closed
        meanwhile is noticed before anything is sent on it; one that breaks before a byte of
        the reply came is replaced by a new connection, once. Any exchange starts on the
        connection a port check left open (:meth:`open_ports` ``keep``), if there is one; one
        that is not ``keep`` (a write, perhaps) is never sent a second time: if that
        connection breaks before a byte of the reply came, that is the exchange's error.
        """
        sock = self._take_fresh(host, port) if self._fresh else None
        if sock is None and keep:
            sock = self._take_idle(host, port)
        if sock is not None:
            try:
                return await self._run(host, port, payload, complete, timeout,
                                       connect_timeout, limit, keep, sock)
            except _Stale:
                if not keep:  # perhaps a write the device acted on: never sent twice
                    raise DeviceError(f"{host}:{port}: connection lost before any answer"
                                      ) from None
                # a read, on a connection the device closed meanwhile: connect anew
        return await self._run(host, port, payload, complete, timeout, connect_timeout, limit,
                               keep, None)

    async def _run(self, host: str, port: int, payload: bytes, complete: Complete | None,
                   timeout: float | None, connect_timeout: float | None, limit: int,
                   keep: bool, sock: socket.socket | None) -> bytes:
        loop = asyncio.get_running_loop()
        connect_limit = connect_timeout or self.connect_timeout
        await self._acquire()
        conn = _Exchange(loop, self._poller_for(loop), payload, complete, limit, keep)
        try:
            if sock is not None:
                self.reused += 1
                conn.start_on(sock, timeout or self.timeout)
            else:
                family, address = await _address(loop, host, port, connect_limit)
                try:
                    conn.start(family, address, connect_limit, timeout or self.timeout, host,
                               port)
                except OSError as exc:  # no socket to be had (EMFILE, ENETUNREACH at once...)
                    raise _connect_error(host, port, exc) from None
            try:
                reply = await conn.done
            except _ReplyTimeout:
                partial = bytes(conn.buffer)
                raise DeviceTimeout(
                    f"{host}:{port}: reply timed out after {len(partial)} bytes", partial
                ) from None
            except DeviceError:
                if sock is not None and not conn.buffer:
                    raise _Stale() from None
                raise
            if sock is not None and not reply:
                raise _Stale()  # it closed without a word: it was gone already
            return reply
        finally:
            conn.close()
            if conn.kept is not None:
                self._park(host, port, conn.kept)
            self._release()

    def _park(self, host: str, port: int, sock: socket.socket) -> None:
        key = (host, port)
        old = self._idle.pop(key, None)
        if old is not None:
            old[0].close()
        if len(self._idle) < self.keep_limit:
            self._idle[key] = (sock, time.monotonic())
        else:
            sock.close()

    def _take_fresh(self, host: str, port: int) -> socket.socket | None:
        """The unused connection a port check left to ``host:port``, if any (and recent)."""
        entry = self._fresh.pop((host, port), None)
        if entry is None:
            return None
        sock, made = entry
        if asyncio.get_running_loop().time() - made > FRESH_FOR:
            sock.close()
            return None
        return self._quiet(sock)

    def drop_fresh(self, host: str, ports: Iterable[int]) -> None:
        """Close the connections port checks left to ``host`` that nobody used."""
        for port in ports:
            entry = self._fresh.pop((host, port), None)
            if entry is not None:
                entry[0].close()

    def _take_idle(self, host: str, port: int) -> socket.socket | None:
        """The idle connection to ``host:port``, if it is still open and quiet."""
        entry = self._idle.pop((host, port), None)
        return None if entry is None else self._quiet(entry[0])

    @staticmethod
    def _quiet(sock: socket.socket) -> socket.socket | None:
        """``sock`` if it is open with nothing waiting on it; else it is closed."""
        try:
            sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return sock  # open, nothing waiting: the normal case
        except OSError:
            pass
        sock.close()  # the device closed it (b""), or sent something unasked: start clean
        return None

    @property
    def idle(self) -> int:
        """Connections kept open now, waiting for their next exchange."""
        return len(self._idle)

    def close_idle(self, unused_for: float | None = None) -> int:
        """Close the kept connections (those unused for ``unused_for`` seconds, if given: a
        device that left the ranges, or went away, is not asked again, and its connection
        would hold a file for good). Returns how many were closed."""
        now = time.monotonic()
        stale = [key for key, (_, parked) in self._idle.items()
                 if unused_for is None or now - parked >= unused_for]
        for key in stale:
            self._idle.pop(key)[0].close()
        if unused_for is None:
            for sock, _ in self._fresh.values():
                sock.close()
            self._fresh.clear()
        return len(stale)

    @property
    def http(self) -> aiohttp.ClientSession:
        """A shared aiohttp session for device web APIs that need a full HTTP client (no
        pooling: one device, one request). Simple request/answer APIs are cheaper through
        :func:`webbo.agent.fleet.http1.request` (a fraction of the CPU per request).

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
        self.close_idle()
        if self._poller is not None:
            if not self._poller.loop.is_closed():
                self._poller.close()
            self._poller = None
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
        self.timed_out = False
        """A question went unanswered in time (the device accepts, then hangs or is slow)."""

    async def open_ports(self) -> frozenset[int]:
        """Which of the drivers' ports accept a connection (tried concurrently, once)."""
        if self._open is None:
            self._open = await self.net.open_ports(self.ip, self.ports, keep=True)
        return self._open

    def close(self) -> None:
        """Close what the port checks left open and no question used (identification done)."""
        if self._open:
            self.net.drop_fresh(self.ip, self._open)

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

    def tell(self, key: Hashable, answer: Any) -> None:
        """Record the answer to ``key`` learnt along with another question (one ``+``-joined
        reply answers several), so a driver asking it later gets it without asking."""
        self._answers.setdefault(key, answer)

    def note(self, what: str, limit: int = 300) -> None:
        """Remember what the device said (for the unknown-device record)."""
        if what and len(self.said) < 8:
            self.said.append(what[:limit])


def ip_to_int(ip: str) -> int:
    """A dotted IPv4 address as a number; ValueError for anything else. ``inet_pton`` is as
    strict as ``ipaddress`` (no "127.1", no leading zeros) at a tenth of its cost: ordering
    50,000 devices by address asks it 50,000 times."""
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, ip), "big")
    except (OSError, TypeError):
        raise ValueError(f"not an IPv4 address: {ip!r}") from None


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
