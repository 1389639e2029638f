"""Simulated Mercury meters on a pseudo-terminal (``webbo simulate --meters N``, demo, tests).

A :class:`SimBus` opens a pty pair and plays every meter of one RS-485 line behind its master
side; the agent opens the slave path (``/dev/pts/K``) exactly like a USB adapter's
``/dev/ttyUSB0``. Requests are cut into frames the way a meter does — as soon as the bytes form a
request of a legal length with a valid CRC, else at the end-of-frame silence — and each addressed
meter (:class:`~.simmeter.SimMeter`) answers after its reply delay.

Options (``SimOptions.extra``):

* ``meters``: explicit list of ``{serial_number, device_model, address, password_1,
  password_2, password_encoding, fault, fast_read, two_directions, active_only, measures,
  base_load_w, current_ratio}`` — exactly these meters (the demo passes three Mercury 230 on
  one line). ``measures`` binds a meter to simulated miners of the same process: a list of
  address spans (``["127.77.0.1-127.77.0.30"]``) whose draw (plus ``base_load_w`` watts) is
  the meter's active power, with currents to match, seen through current transformers of
  ``current_ratio`` (configure the same ``current_ratio`` in ``[[inputs.mercury]]``);
* ``reply_delay`` (s, default 0.01): the meter's processing time before it answers;
* ``line_speed`` (bool) and ``baudrate`` (default 9600): add the time the request and the reply
  take on a real line at that speed (8N1: 10 bits a byte);
* ``echo`` (bool): the adapter echoes every request (like some USB/CAN converters);
* ``session_seconds`` (default 240): how long an opened channel stays open;
* ``slow_delay`` (s, default 2.0): reply delay of a meter with the ``slow`` fault.

``SimOptions.faults`` maps a fault name of :data:`~.simmeter.FAULTS` (or ``echo``) to the share
of meters that show it, chosen deterministically from the seed. Tests may also set
``meter.fault`` or ``bus.echo`` on a running simulation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import termios
import tty
from typing import Any

import structlog

from webbo.agent.plugin import SimOptions
from webbo.plugins.inputs.mercury import protocol as p
from webbo.plugins.inputs.mercury.sim.meter import FAULTS, MeterFactory, MeterSpec, SimMeter

log = structlog.get_logger("webbo.sim.mercury")

FRAME_GAP = 0.005
"""End-of-frame silence at 9600 baud (the meter's system timeout)."""


def request_length(buf: bytes | bytearray) -> int:
    """Length of the complete, CRC-valid request at the start of ``buf``, or 0.

    A meter ends a frame by silence; we also cut as soon as the bytes form a request of a legal
    length for its code with a valid CRC, since a pty delivers no line timing.
    """
    if len(buf) < 4:
        return 0
    code = buf[1]
    if code == p.Code.WRITE:
        legal: tuple[int, ...] = tuple(sorted(set(p.WRITE_LENGTHS.values())))
    else:
        legal = p.REQUEST_LENGTHS.get(code, ())
    for size in legal:
        if size <= len(buf) and p.crc_ok(bytes(buf[:size])):
            return size
    return 0


def collide(replies: list[bytes]) -> bytes:
    """What a master hears when several meters answer at once (address 0 on a shared bus):
    the line is driven by all of them; we keep the bitwise AND, which breaks the CRC."""
    size = max(len(r) for r in replies)
    out = bytearray(b"\xff" * size)
    for reply in replies:
        for i, byte in enumerate(reply):
            out[i] &= byte
    return bytes(out)


class SimBus:
    """One pseudo-terminal carrying several simulated meters."""

    def __init__(self, meters: list[SimMeter], *, reply_delay: float = 0.01,
                 line_speed: bool = False, baudrate: int = 9600, echo: bool = False,
                 slow_delay: float = 2.0, seed: int = 0) -> None:
        self.meters = meters
        self.reply_delay = reply_delay
        self.line_speed = line_speed
        self.byte_time = 10.0 / baudrate
        self.echo = echo
        self.slow_delay = slow_delay
        self.rng = random.Random(f"mercury-bus-{seed}")
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave, termios.TCSANOW)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.requests = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self._buf = bytearray()
        self._idle: asyncio.TimerHandle | None = None
        self._pending: set[asyncio.TimerHandle] = set()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.master, self._readable)
        self._closed = False

    # -- input --------------------------------------------------------------------------------

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except BlockingIOError:
            return
        except OSError:  # no reader on the slave side right now: nothing to do
            return
        if not data:
            return
        self.bytes_in += len(data)
        if self.echo:
            self._send(data)
        self._buf += data
        while size := request_length(self._buf):
            request = bytes(self._buf[:size])
            del self._buf[:size]
            self._dispatch(request)
        if self._idle is not None:
            self._idle.cancel()
        self._idle = self._loop.call_later(FRAME_GAP, self._end_of_frame) if self._buf else None

    def _end_of_frame(self) -> None:
        """Silence after bytes that formed no legal request: a meter treats them as one frame
        (a request of another length, or noise) and, being a real meter, stays silent unless
        it is a well-formed request it does not know."""
        self._idle = None
        request = bytes(self._buf)
        self._buf.clear()
        self._dispatch(request)

    # -- meters -------------------------------------------------------------------------------

    def _dispatch(self, request: bytes) -> None:
        self.requests += 1
        answers: list[tuple[SimMeter, bytes]] = []
        for meter in self.meters:
            reply = meter.handle(request)
            if reply is not None:
                answers.append((meter, reply))
        if not answers:
            return
        if len(answers) > 1:
            reply = collide([r for _, r in answers])
            self._schedule(self.reply_delay, reply, len(request))
            return
        meter, reply = answers[0]
        delay = self.reply_delay
        fault = meter.fault
        if fault == "silent":
            return
        if fault == "bad_crc":
            reply = reply[:-1] + bytes((reply[-1] ^ 0x5A,))
        elif fault == "truncated":
            reply = reply[:max(1, len(reply) - 2)]
        elif fault == "garbage":
            reply = bytes(self.rng.randrange(256) for _ in range(len(reply)))
        elif fault == "slow":
            delay = self.slow_delay
        self._schedule(delay, reply, len(request))

    def _schedule(self, delay: float, reply: bytes, request_size: int) -> None:
        if self.line_speed:
            delay += (request_size + len(reply)) * self.byte_time
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            self._pending.discard(handle)  # type: ignore[arg-type]
            self._send(reply)

        handle = self._loop.call_later(delay, fire)
        self._pending.add(handle)

    def _send(self, data: bytes) -> None:
        if self._closed:
            return
        try:
            written = os.write(self.master, data)
        except OSError:
            return  # the pty's buffer is full (nobody reads): a line drops bytes too
        self.bytes_out += written

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for handle in (*self._pending, self._idle):
            if handle is not None:
                handle.cancel()
        self._pending.clear()
        self._loop.remove_reader(self.master)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class MercurySimulation:
    """A running simulation: ``devices`` (JSON-ready), the buses and their meters."""

    def __init__(self, buses: list[SimBus]) -> None:
        self.buses = buses
        self.devices: list[dict[str, Any]] = [
            {"port": bus.path, "serial_number": m.spec.serial_number,
             "device_model": m.spec.device_model, "address": m.address,
             **({"current_ratio": m.spec.current_ratio} if m.spec.current_ratio != 1 else {}),
             **({"measures": list(m.spec.measures)} if m.spec.measures is not None else {})}
            for bus in buses for m in bus.meters
        ]

    @property
    def bus(self) -> SimBus:
        return self.buses[0]

    @property
    def meters(self) -> list[SimMeter]:
        return [m for bus in self.buses for m in bus.meters]

    def meter(self, serial_number: str) -> SimMeter:
        digits = p.serial_digits(serial_number)
        for meter in self.meters:
            if meter.serial.digits == digits:
                return meter
        raise KeyError(serial_number)

    async def close(self) -> None:
        for bus in self.buses:
            await bus.close()


def _spec(item: dict[str, Any]) -> MeterSpec:
    allowed = set(MeterSpec.__dataclass_fields__)
    unknown = set(item) - allowed
    if unknown:
        raise ValueError(f"meters: unknown keys {sorted(unknown)} (known: {sorted(allowed)})")
    spec = MeterSpec(**item)
    if spec.address is None:
        spec.address = p.factory_address(p.parse_serial_number(spec.serial_number)[0],
                                         d_model=spec.password_encoding == "ascii")
    if spec.device_model not in p.MODELS:
        raise ValueError(f"meters: unsupported model {spec.device_model!r} "
                         f"(supported: {p.SUPPORTED_MODELS})")
    p.parse_serial_number(spec.serial_number)
    if not 1 <= spec.address <= p.MAX_ADDRESS:
        raise ValueError(f"meters: address {spec.address} is not within 1..{p.MAX_ADDRESS}")
    if spec.fault is not None and spec.fault not in FAULTS:
        raise ValueError(f"meters: unknown fault {spec.fault!r} (known: {', '.join(FAULTS)})")
    return spec


def _assign_faults(specs: list[MeterSpec], faults: dict[str, float], seed: int) -> None:
    rng = random.Random(f"mercury-faults-{seed}")
    free = [s for s in specs if s.fault is None]
    rng.shuffle(free)
    for name, share in sorted(faults.items()):
        if name == "echo" or name not in FAULTS:
            continue
        for _ in range(round(share * len(specs))):
            if not free:
                return
            free.pop().fault = name


async def start(count: int, options: SimOptions | None = None) -> MercurySimulation:
    """Start ``count`` simulated meters (or ``options.extra["meters"]``) on one pty."""
    options = options or SimOptions()
    extra = options.extra
    explicit = extra.get("meters")
    if explicit is not None:
        specs = [_spec(dict(item)) for item in explicit]
        addresses = [s.address for s in specs]
        if len(set(addresses)) != len(addresses):
            raise ValueError("meters: two meters on one address")
    else:
        if count < 0:
            raise ValueError("the number of meters cannot be negative")
        if count > p.MAX_ADDRESS:
            raise ValueError(f"at most {p.MAX_ADDRESS} meters fit on one bus")
        specs = MeterFactory(seed=options.seed).generate(count)
        _assign_faults(specs, options.faults, options.seed)
    if not specs:
        return MercurySimulation([])
    session = float(extra.get("session_seconds", 240.0))
    meters = [SimMeter(spec, random.Random(f"mercury-{options.seed}-{spec.serial_number}"),
                       session_seconds=session) for spec in specs]
    bus = SimBus(
        meters,
        reply_delay=float(extra.get("reply_delay", 0.01)),
        line_speed=bool(extra.get("line_speed", False)),
        baudrate=int(extra.get("baudrate", 9600)),
        echo=bool(extra.get("echo", False)) or options.faults.get("echo", 0) > 0,
        slow_delay=float(extra.get("slow_delay", 2.0)),
        seed=options.seed,
    )
    log.info("simulated meters", port=bus.path, meters=len(meters))
    return MercurySimulation([bus])
