"""The bus poller: one asyncio task per serial port owns the line; meters take turns on it.

Why one task per port: RS-485 is half-duplex with one master. Two requests in flight garble each
other, and a meter's session state is per meter, so the simplest correct design is a single
owner that sends strictly one request at a time. Each ``[[inputs.mercury]]`` instance attaches a
:class:`Slot` (its meter) to the :class:`Bus` of its port and only reads the results.

* Scheduling: each meter is due every ``interval``; the most overdue meter goes next, so an
  overloaded line degrades to round robin instead of starving anyone.
* A meter that fails is retried after ``interval``, then 2×, 4×, … up to ``max_backoff``; one
  attempt on a dead meter costs a single reply timeout, so it never stalls the others.
* The port is reopened when it reports an error (adapter unplugged), when its path no longer
  names the device that was opened (replugged, re-pointed symlink) and after every meter on it
  went silent for several rounds (an adapter that hangs without an error).
* Live tests of new meters (``/api/serial/devices/add``) run as jobs on the same task, between
  readings, so they never collide with polling.
* Detaching one meter (a reload that changed or removed it) leaves the others polling; the task
  and the port close only with the last meter.

:class:`MeterBuses` is the registry of buses keyed by port path. It is a long-lived agent service
(one :class:`MeterBuses` per agent, kept in the agent's shared objects), so buses outlive
config reloads.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from webbo.agent.plugin import DeviceError, Metric, now_ns
from webbo.plugins.inputs.mercury.config import MercuryConfig, PortSettings
from webbo.plugins.inputs.mercury.link import NoAnswer, PortError, SerialLink, wait_event
from webbo.plugins.inputs.mercury.session import MeterSession, MeterState, ProbeResult

log = structlog.get_logger("webbo.mercury")

MEASUREMENT = "meter"
SILENT_ROUNDS_BEFORE_REOPEN = 3
REOPEN_FIRST_DELAY = 0.5
REOPEN_MAX_DELAY = 5.0
QUEUE_LIMIT = 32
"""Readings kept for the next gather (a gather normally takes one or two)."""

T = TypeVar("T")
Job = Callable[[SerialLink], Awaitable[Any]]


@dataclass
class Slot:
    """One meter on a bus: its config, what the poller learnt, and readings not yet gathered."""

    config: MercuryConfig
    interval: float
    state: MeterState = field(default_factory=MeterState)
    next_due: float = 0.0
    failures: int = 0
    status: str = "new"
    """new (not read yet), ok, or error."""
    last_error: str = ""
    last_ok_at: float | None = None
    """Wall-clock time of the last complete reading."""
    values: dict[str, float] = field(default_factory=dict)
    """The last complete reading."""
    readings: int = 0
    failed: int = 0
    last_exchanges: int = 0
    last_read_time: float = 0.0
    silent: bool = False
    """The last attempt got no answer at all."""
    pending: deque[tuple[Metric, str | None]] = field(
        default_factory=lambda: deque(maxlen=QUEUE_LIMIT))
    attempted: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def tags(self) -> dict[str, str]:
        c = self.config
        return {"serial": c.serial_number, "model": c.device_model, "port": c.port,
                "address": str(c.address)}

    def succeeded(self, values: dict[str, float], exchanges: int, took: float) -> None:
        fields: dict[str, Any] = dict(values)
        fields["online"] = True
        self.pending.append((Metric(MEASUREMENT, self.tags, fields, now_ns()), None))
        if self.status == "error":
            log.info("meter answers again", serial=self.config.serial_number,
                     after_failures=self.failures)
        self.values = values
        self.status = "ok"
        self.failures = 0
        self.last_error = ""
        self.last_ok_at = time.time()
        self.readings += 1
        self.last_exchanges = exchanges
        self.last_read_time = took
        self.silent = False
        self.attempted.set()

    def failed_with(self, error: str, *, silent: bool, count: bool = True) -> None:
        if count:
            self.failures += 1
        self.failed += 1
        if self.status != "error" or error != self.last_error:
            log.warning("meter reading failed", serial=self.config.serial_number,
                        port=self.config.port, address=self.config.address, error=error,
                        failures=self.failures)
        self.status = "error"
        self.last_error = error
        self.silent = silent
        self.pending.append((self.failure_point(), error))
        self.attempted.set()

    def failure_point(self) -> Metric:
        return Metric(MEASUREMENT, self.tags,
                      {"online": False, "error": self.last_error, "failures": self.failures},
                      now_ns())

    def backoff(self) -> float:
        """Delay before the next attempt: the interval, doubled per further failure, capped."""
        if self.failures <= 1:
            return self.interval
        return min(float(self.config.max_backoff),
                   self.interval * 2 ** min(self.failures - 1, 30))

    def drain(self) -> list[tuple[Metric, str | None]]:
        items = list(self.pending)
        self.pending.clear()
        return items

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {
            "serial_number": c.serial_number, "device_model": c.device_model, "port": c.port,
            "address": c.address, "state": self.status, "error": self.last_error,
            "failures": self.failures, "updated_at": self.last_ok_at,
            "next_poll_in_s": round(max(0.0, self.next_due - time.monotonic()), 3),
            "exchanges": self.last_exchanges, "read_time_s": round(self.last_read_time, 4),
            "password_encoding": self.state.encoding, "notes": list(self.state.notes),
            "values": dict(self.values),
        }


class Bus:
    """One serial port and the task that owns it."""

    def __init__(self, path: str, settings: PortSettings) -> None:
        self.path = path
        self.settings = settings
        self.link = SerialLink(path, settings)
        self.slots: dict[int, Slot] = {}
        self.port_error = ""
        self.log = log.bind(port=path)
        self._jobs: deque[tuple[Job, asyncio.Future[Any]]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._silent_polls = 0

    # -- membership ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"mercury bus {self.path}")

    def attach(self, slot: Slot) -> None:
        address = slot.config.address
        if address in self.slots:
            raise ValueError(f"address {address} on {self.path} is already polled for meter "
                             f"{self.slots[address].config.serial_number}")
        slot.next_due = time.monotonic()
        self.slots[address] = slot
        self._wake.set()

    def detach(self, slot: Slot) -> None:
        if self.slots.get(slot.config.address) is slot:
            del self.slots[slot.config.address]

    @property
    def idle(self) -> bool:
        return not self.slots and not self._jobs

    async def run_job(self, job: Callable[[SerialLink], Awaitable[T]]) -> T:
        """Run ``job(link)`` on the bus task between readings; return its result."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.append((job, future))
        self._wake.set()
        self.start()
        return await future

    async def close(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        while task is not None and not task.done():
            task.cancel()  # again if a cancellation got lost on the way
            await asyncio.wait({task}, timeout=1.0)
        if task is not None and not task.cancelled() and task.exception() is not None:
            self.log.error("bus task failed", error=repr(task.exception()))
        while self._jobs:
            _, future = self._jobs.popleft()
            if not future.done():
                future.set_exception(PortError(f"port {self.path} was closed"))
        await self.link.close()

    # -- the task -----------------------------------------------------------------------------

    async def _run(self) -> None:
        reopen_delay = REOPEN_FIRST_DELAY
        while not self._closing:
            try:
                if not self.link.is_open or self.link.device_changed():
                    if await self._reopen():
                        reopen_delay = REOPEN_FIRST_DELAY
                    else:
                        await self._sleep(reopen_delay)
                        reopen_delay = min(reopen_delay * 2, REOPEN_MAX_DELAY)
                        continue
                if self._jobs:
                    await self._run_one_job()
                    continue
                now = time.monotonic()
                slot = min(self.slots.values(), key=lambda s: s.next_due, default=None)
                if slot is None or slot.next_due > now:
                    await self._sleep(None if slot is None else slot.next_due - now)
                    continue
                await self._poll(slot)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not end polling of the whole line
                self.log.exception("bus loop error; going on")
                await self.link.close()
                await self._sleep(REOPEN_MAX_DELAY)

    async def _sleep(self, seconds: float | None) -> None:
        self._wake.clear()
        await wait_event(self._wake, seconds)

    async def _reopen(self) -> bool:
        was_open = self.link.is_open
        await self.link.close()
        try:
            await self.link.open()
        except PortError as exc:
            if str(exc) != self.port_error:
                self.log.warning("serial port unavailable", error=str(exc))
            self.port_error = str(exc)
            self._fail_port(str(exc))
            return False
        if self.port_error or was_open:
            self.log.info("serial port reopened")
        else:
            self.log.info("serial port open", settings=self.settings.as_table())
        self.port_error = ""
        self._silent_polls = 0
        return True

    def _fail_port(self, error: str) -> None:
        """The port is gone: due meters and waiting jobs fail with the reason (without growing
        the meters' back-off: it is not their fault), and are retried once it is back."""
        now = time.monotonic()
        for slot in self.slots.values():
            if slot.next_due <= now:
                slot.failed_with(error, silent=False, count=False)
                slot.next_due = now + slot.interval
        while self._jobs:
            _, future = self._jobs.popleft()
            if not future.done():
                future.set_exception(PortError(error, busy="busy" in error,
                                               missing="not present" in error))

    async def _run_one_job(self) -> None:
        job, future = self._jobs.popleft()
        if future.done():
            return
        try:
            result = await job(self.link)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)

    async def _poll(self, slot: Slot) -> None:
        started = time.monotonic()
        session = MeterSession(self.link, slot.config, slot.state)
        try:
            values = await session.read()
        except PortError as exc:
            slot.failed_with(str(exc), silent=False, count=False)
            slot.next_due = started + slot.interval
            await self.link.close()
            return
        except DeviceError as exc:
            slot.failed_with(str(exc), silent=isinstance(exc, NoAnswer))
            slot.next_due = started + slot.backoff()
            await self._note_silence(isinstance(exc, NoAnswer))
            return
        except Exception as exc:  # a bug must fail one reading, never the bus task
            self.log.exception("meter reading crashed", serial=slot.config.serial_number)
            slot.failed_with(f"internal error: {exc!r}", silent=False)
            slot.next_due = started + slot.backoff()
            return
        finally:
            slot.last_exchanges = session.exchanges
        slot.succeeded(values, session.exchanges, time.monotonic() - started)
        slot.next_due = started + slot.interval
        await self._note_silence(False)

    async def _note_silence(self, silent: bool) -> None:
        """Every meter silent for several rounds: the adapter may hang without an error (or
        was swapped under the same name); reopen the port."""
        if not silent:
            self._silent_polls = 0
            return
        self._silent_polls += 1
        if (self._silent_polls >= SILENT_ROUNDS_BEFORE_REOPEN * max(1, len(self.slots))
                and all(s.silent for s in self.slots.values())):
            self.log.warning("no meter on the port answers; reopening it")
            self._silent_polls = 0
            await self.link.close()

    def describe(self) -> dict[str, Any]:
        stats = self.link.stats
        return {
            "port": self.path, "open": self.link.is_open, "error": self.port_error,
            "echo": self.link.echoes, "settings": self.settings.as_manual(),
            "exchanges": stats.exchanges, "timeouts": stats.timeouts,
            "bad_frames": stats.bad_frames, "bytes_out": stats.bytes_out,
            "bytes_in": stats.bytes_in,
            "meters": [slot.describe() for slot in self.slots.values()],
        }


class MeterBuses:
    """Every bus of one agent, keyed by port path (``context.shared.get(MeterBuses)``)."""

    def __init__(self) -> None:
        self.buses: dict[str, Bus] = {}
        self._lock = asyncio.Lock()

    async def attach(self, config: MercuryConfig, interval: float) -> Slot:
        async with self._lock:
            bus = self.buses.get(config.port)
            if bus is not None and bus.settings != config.port_settings:
                if not bus.idle:
                    raise ValueError(f"{config.port} is polled with other port settings")
                await bus.close()
                bus = None
            if bus is None:
                bus = self.buses[config.port] = Bus(config.port, config.port_settings)
            slot = Slot(config, interval)
            bus.attach(slot)
            bus.start()
            return slot

    async def detach(self, slot: Slot) -> None:
        async with self._lock:
            bus = self.buses.get(slot.config.port)
            if bus is None:
                return
            bus.detach(slot)
            if bus.idle:
                del self.buses[slot.config.port]
                await bus.close()

    async def probe(self, config: MercuryConfig) -> ProbeResult:
        """Test a meter live: on the bus of its port when one runs (between readings), else on
        the port opened just for this."""
        async with self._lock:
            bus = self.buses.get(config.port)
        if bus is not None:
            if bus.settings != config.port_settings:
                raise ValueError(
                    f"{config.port} is already polled with other port settings "
                    f"({_settings_text(bus.settings)}); meters on one line share them")
            return await bus.run_job(lambda link: _probe(link, config))
        link = SerialLink(config.port, config.port_settings)
        await link.open()
        try:
            return await _probe(link, config)
        finally:
            await link.close()

    def meters(self) -> list[dict[str, Any]]:
        """Live state and the latest values of every polled meter (for the Meters page)."""
        return [slot.describe() for bus in self.buses.values() for slot in bus.slots.values()]

    def status(self) -> dict[str, Any]:
        return {"ports": [bus.describe() for bus in self.buses.values()]}

    async def close(self) -> None:
        async with self._lock:
            buses, self.buses = list(self.buses.values()), {}
        for bus in buses:
            await bus.close()


async def _probe(link: SerialLink, config: MercuryConfig) -> ProbeResult:
    return await MeterSession(link, config, MeterState()).probe()


def _settings_text(settings: PortSettings) -> str:
    return (f"{settings.baudrate} {settings.bytesize}{settings.parity}"
            f"{settings.serial_kwargs()['stopbits']}")
