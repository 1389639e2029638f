"""One serial port as the master of an RS-485 line: open, one exchange at a time, close.

The 230-family frame has no length byte and ends by silence, so a reply is complete when it has
the length the request implies (:attr:`Request.reply_length`) and a valid CRC, or — for an error
— when a 4-byte status frame is followed by silence. Timing comes from the port settings
(reference §3.2): the reply wait is the manufacturer's recommended wait for the baud rate plus the
time both frames take on the line plus an allowance for USB adapters' latency, unless
``port_settings.timeout`` sets it; the end-of-frame gap (also the pause kept before each request)
is the manufacturer's for the baud rate unless ``inter_byte_timeout`` sets it.

Echoing adapters send the request back before the reply: a leading exact copy is dropped, and an
echo alone is "no answer", never a sign of life. Stray bytes before the reply (a late answer to
an earlier, timed-out request) are skipped: the reply is found by address, length and CRC.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any

import serial
import serial_asyncio

from webbo.agent.plugin import DeviceError
from webbo.plugins.inputs.mercury import protocol as p
from webbo.plugins.inputs.mercury.config import PortSettings

# (minimum baud, end-of-frame gap, recommended reply wait), manufacturer's Table 1.1, n = 1.
_TIMING = (
    (38400, 0.002, 0.150),
    (19200, 0.003, 0.150),
    (9600, 0.005, 0.150),
    (4800, 0.010, 0.180),
    (2400, 0.020, 0.250),
    (1200, 0.040, 0.400),
    (600, 0.080, 0.800),
    (0, 0.160, 1.600),
)

USB_ALLOWANCE = 0.1
"""Extra reply wait for USB adapters (FTDI latency timer 16 ms, scheduling on a busy host)."""
ECHO_ONLY = "only the echo of the request came back"
"""Said of a failed exchange where an echoing adapter's copy of the request was all there was."""


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set or ``timeout`` passes; True if it is set.

    ``asyncio.wait_for`` on Python 3.11 can swallow a cancellation that arrives while the
    awaited event fires (the task then runs on and whoever cancelled it waits forever);
    ``asyncio.timeout`` keeps it."""
    if timeout is None:
        await event.wait()
        return True
    try:
        async with asyncio.timeout(max(timeout, 0.0)):
            await event.wait()
    except TimeoutError:
        pass
    return event.is_set()


def line_timing(baudrate: int) -> tuple[float, float]:
    """(end-of-frame gap, recommended reply wait) in seconds for a baud rate."""
    for minimum, gap, wait in _TIMING:
        if baudrate >= minimum:
            return gap, wait
    return _TIMING[-1][1:]


class NoAnswer(DeviceError):
    """Nothing (or only the echo of the request) came back in time."""


class BadFrame(DeviceError):
    """Something came back, but not a valid reply: wrong CRC, cut short, wrong address."""


class PortError(DeviceError):
    """The port cannot be opened, or it went away."""

    def __init__(self, message: str, *, busy: bool = False, missing: bool = False) -> None:
        super().__init__(message)
        self.busy = busy
        self.missing = missing


@dataclass
class LinkStats:
    exchanges: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    timeouts: int = 0
    bad_frames: int = 0
    echoes: int = 0
    stray_bytes: int = 0
    opens: int = 0


class _Receiver(asyncio.Protocol):
    """Collects what the port receives and wakes the waiting exchange."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.event = asyncio.Event()
        self.last_rx = 0.0
        self.lost: BaseException | None = None
        self.closed = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.last_rx = time.monotonic()
        self.event.set()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = exc or ConnectionError("port closed")
        self.event.set()
        self.closed.set()


class SerialLink:
    """The master side of one line. Not safe for concurrent use: the bus task owns it."""

    def __init__(self, path: str, settings: PortSettings) -> None:
        self.path = path
        self.settings = settings
        self.byte_time = settings.bits_per_byte() / settings.baudrate
        gap, self.recommended_wait = line_timing(settings.baudrate)
        self.gap = settings.inter_byte_timeout if settings.inter_byte_timeout is not None else gap
        self.stats = LinkStats()
        self.echoes: bool | None = None
        """Whether the adapter echoes requests (learnt from replies; None until known)."""
        self._transport: Any = None
        self._rx: _Receiver | None = None
        self._idle_since = 0.0
        self._device: tuple[int, int] | None = None

    # -- open / close -------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._rx is not None and self._rx.lost is None

    async def open(self) -> None:
        """Open the port exclusively (a second program on the same line would garble it)."""
        if self.is_open:
            return
        await self.close()
        loop = asyncio.get_running_loop()
        kwargs = self.settings.serial_kwargs()
        try:
            transport, receiver = await serial_asyncio.create_serial_connection(
                loop, _Receiver, url=self.path, exclusive=True, **kwargs)
        except serial.SerialException as exc:
            raise self._open_error(exc) from None
        except (OSError, ValueError) as exc:
            raise PortError(f"cannot open {self.path}: {exc}") from None
        self._transport, self._rx = transport, receiver
        self.stats.opens += 1
        self._idle_since = time.monotonic()
        self.echoes = None
        self._device = self._identity()

    def _open_error(self, exc: serial.SerialException) -> PortError:
        text = str(exc)
        if "exclusively lock" in text or "Resource temporarily unavailable" in text or \
                "Device or resource busy" in text:
            return PortError(f"port {self.path} is busy: another program holds it", busy=True)
        if "No such file" in text or "No such device" in text or not os.path.exists(self.path):
            return PortError(f"port {self.path} is not present (adapter unplugged?)",
                             missing=True)
        if "Permission denied" in text:
            return PortError(f"no permission to open {self.path} (add the agent's user to the "
                             f"dialout group)")
        return PortError(f"cannot open {self.path}: {text}")

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_rdev, st.st_ino

    def device_changed(self) -> bool:
        """True when the path no longer names the device we opened (the adapter was unplugged,
        or the name now points at another one)."""
        return self._device is not None and self._identity() != self._device

    async def close(self) -> None:
        """Close the port and wait until it is really closed (its lock released), so that it
        can be opened again right away.

        Unsent output is discarded first: the transport's close ends in a blocking
        ``tcdrain``, which would stall the whole event loop while an adapter (flow control, a
        hung USB device) holds the output back."""
        transport, rx = self._transport, self._rx
        self._transport = self._rx = None
        if transport is None or rx is None or rx.lost is not None:
            return  # already closed by the transport itself
        with contextlib.suppress(Exception):
            transport.get_extra_info("serial").reset_output_buffer()
        with contextlib.suppress(Exception):
            transport.abort()
        await wait_event(rx.closed, 2.0)

    def lost_reason(self) -> str:
        rx = self._rx
        if rx is None or rx.lost is None:
            return f"port {self.path} is closed"
        return f"port {self.path} went away: {rx.lost}"

    # -- timing -------------------------------------------------------------------------------

    def reply_timeout(self, request: p.Request) -> float:
        if self.settings.timeout is not None:
            return self.settings.timeout
        on_line = (len(request.frame) + request.reply_length) * self.byte_time
        if self.echoes:
            on_line += len(request.frame) * self.byte_time
        return self.recommended_wait + on_line + USB_ALLOWANCE

    @property
    def quiet(self) -> float:
        """Silence that tells "no more bytes are coming" after a short or broken frame."""
        return max(4 * self.gap + 4 * self.byte_time, 0.03)

    # -- the exchange -------------------------------------------------------------------------

    async def exchange(self, request: p.Request) -> bytes:
        """Send one request and return its reply frame (CRC checked, echo removed).

        Raises :class:`NoAnswer`, :class:`BadFrame` or :class:`PortError`.
        """
        rx = self._rx
        if rx is None or rx.lost is not None:
            raise PortError(self.lost_reason())
        # keep the line quiet for the end-of-frame gap before talking
        pause = self._idle_since + self.gap - time.monotonic()
        if pause > 0:
            await asyncio.sleep(pause)
        if rx.buffer:
            self.stats.stray_bytes += len(rx.buffer)
            rx.buffer.clear()
        rx.event.clear()
        self._transport.write(request.frame)
        self.stats.exchanges += 1
        self.stats.bytes_out += len(request.frame)
        started = time.monotonic()
        deadline = started + self.reply_timeout(request)
        try:
            return await self._await_reply(rx, request, deadline)
        finally:
            self.stats.bytes_in += len(rx.buffer)
            rx.buffer.clear()
            self._idle_since = time.monotonic()

    async def _await_reply(self, rx: _Receiver, request: p.Request, deadline: float) -> bytes:
        while True:
            if rx.lost is not None:
                raise PortError(self.lost_reason())
            now = time.monotonic()
            settled = now - rx.last_rx >= self.quiet
            found = self._find_reply(rx.buffer, request, settled)
            if found is not None:
                return found
            wait = deadline - now
            if wait <= 0 or (settled and self._complete_but_broken(rx.buffer, request)):
                raise self._failure(rx.buffer, request)
            if rx.buffer and not settled:
                # wait for the rest of the frame, or for the silence that says it ended
                wait = min(wait, self.quiet - (now - rx.last_rx) + 0.001)
            rx.event.clear()
            await wait_event(rx.event, wait)

    @staticmethod
    def _complete_but_broken(raw: bytearray, request: p.Request) -> bool:
        """A whole reply's worth of bytes arrived, then silence, and none of it is valid:
        fail now rather than at the deadline."""
        body = bytes(raw)
        if body.startswith(request.frame) and not request.reply_may_equal_request:
            body = body[len(request.frame):]
        return len(body) >= request.reply_lengths[-1]

    def _strip_echo(self, buf: bytes, request: p.Request, settled: bool) -> bytes | None:
        """``buf`` without a leading echo of the request; None while it cannot be told yet."""
        req = request.frame
        if len(buf) < len(req) and req.startswith(buf) and not settled:
            return None  # part of an echo, or the first bytes of the reply: wait
        if not buf.startswith(req):
            if len(buf) >= len(req) and not request.reply_may_equal_request:
                self.echoes = False if self.echoes is None else self.echoes
            return buf
        if request.reply_may_equal_request and len(buf) == len(req):
            # the test request: its answer has its own bytes. Echo alone, or answer alone?
            if self.echoes:
                return b""
            return buf if settled else None
        self.echoes = True
        self.stats.echoes += 1
        return buf[len(req):]

    def _find_reply(self, raw: bytearray, request: p.Request, settled: bool) -> bytes | None:
        body = self._strip_echo(bytes(raw), request, settled)
        if not body:
            return None
        address = request.address
        sizes = request.reply_lengths
        for start in range(len(body)):
            if body[start] != address:
                continue
            rest = len(body) - start
            for size in sizes:
                # (the fast read's 78-byte layout is the head of its 95-byte one, so even a
                # chance CRC match of the shorter size decodes right)
                if rest >= size and p.crc_ok(body[start:start + size]):
                    self.stats.stray_bytes += start
                    return body[start:start + size]
            if 4 not in sizes and rest == 4 and settled and p.crc_ok(body[start:start + 4]):
                self.stats.stray_bytes += start
                return body[start:start + 4]  # a status: the meter refused the request
        return None

    def _failure(self, raw: bytearray, request: p.Request) -> DeviceError:
        body = bytes(raw)
        req = request.frame
        echoed = body.startswith(req)
        if echoed:
            body = body[len(req):]
        stray = _foreign_frames(body, request.address)
        body = body[stray:]
        if not body:
            # nothing from this meter: silence, the echo alone, or another meter's late answer
            self.stats.timeouts += 1
            notes = []
            if echoed:
                notes.append(ECHO_ONLY)
            if stray:
                notes.append(f"{stray} bytes of another meter's late answer")
            note = f" ({'; '.join(notes)})" if notes else ""
            return NoAnswer(f"no answer to {request.what} from address {request.address} on "
                            f"{self.path}{note}")
        self.stats.bad_frames += 1
        if len(body) < request.reply_length and not (len(body) == 4 and p.crc_ok(body)):
            reason = f"cut short: {len(body)} of {request.reply_length} bytes"
        else:
            reason = "bad CRC"
        return BadFrame(f"garbled answer to {request.what} from address {request.address} on "
                        f"{self.path}: {reason} ({p.describe(body[:32])})")


def _foreign_frames(body: bytes, address: int) -> int:
    """How many leading bytes of ``body`` are whole, valid frames of other addresses (late
    answers to earlier, timed-out requests)."""
    start = 0
    while start < len(body) and body[start] != address:
        for end in range(start + 4, min(len(body), start + 260) + 1):
            if p.crc_ok(body[start:end]):
                start = end
                break
        else:
            break
    return start
