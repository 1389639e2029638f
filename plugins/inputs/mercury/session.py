"""Talking to one meter: open the channel, check who it is, read a full set of values.

A :class:`MeterSession` runs on the bus task that owns the :class:`~.link.SerialLink`, so it never
competes for the line. What it learns survives between readings in :class:`MeterState`: whether
the channel is still open (the meter keeps it 240 s after the last correct request, so a reading
every few seconds needs no new "open"), which password encoding worked, the variant bits (phases,
directions, reactive or not), whether the meter has the fast read ``08 16 A0``, and which reads it
refused with status 1 (asked no more: a quantity it lacks is absent, never 0).

A full reading of a three-phase meter is the fast read plus energy Σ and T1..T4: 6 exchanges
(9 on first contact: + serial, open, variant). Without the fast read it takes the seven grouped
``08 16`` reads instead (12). A single-phase meter reads seven ``08 11`` values (12).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from webbo.agent.plugin import DeviceError
from webbo.plugins.inputs.mercury import protocol as p
from webbo.plugins.inputs.mercury.config import MercuryConfig
from webbo.plugins.inputs.mercury.link import ECHO_ONLY, BadFrame, NoAnswer, SerialLink

SESSION_SECONDS = 240.0
SESSION_MARGIN = 15.0
"""Re-open a little before the meter's 240 s would run out (clock drift, a slow bus)."""

log = structlog.get_logger("webbo.mercury")


class MeterStatusError(DeviceError):
    """The meter answered a request with a non-zero status."""

    def __init__(self, status: int, request: p.Request) -> None:
        self.status = status
        self.request = request
        super().__init__(f"the meter at address {request.address} refused {request.what}: "
                         f"{p.status_text(status)} (status {status})")


class WrongMeter(DeviceError):
    """Another meter answers at the configured address."""


class WrongPassword(DeviceError):
    """The meter refused the password."""


class WrongModel(DeviceError):
    """The meter's variant contradicts the configured model (phases)."""


@dataclass
class MeterState:
    """What the poller remembers about one meter between readings."""

    session_until: float = 0.0
    encoding: p.PasswordEncoding | None = None
    """The password encoding the meter accepted (None until it did)."""
    serial: p.SerialInfo | None = None
    variant: p.Variant | None = None
    variant_known: bool = False
    fast_read: bool | None = None
    """Answers ``08 16 A0``: None until tried."""
    refused: set[tuple[int, ...]] = field(default_factory=set)
    """Reads the meter answered with status 1 (see :func:`_refusal_key`)."""
    notes: list[str] = field(default_factory=list)
    """Things the operator should know (reported once each in the log)."""

    def forget_session(self) -> None:
        self.session_until = 0.0

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            log.warning(text)


@dataclass
class ProbeResult:
    """What a live test of a meter found (``/api/serial/devices/add``)."""

    serial: p.SerialInfo
    encoding: p.PasswordEncoding
    variant: p.Variant | None
    sample: dict[str, float]
    notes: list[str]


class MeterSession:
    """One meter, one pass (a reading or a probe), over the bus's link."""

    def __init__(self, link: SerialLink, config: MercuryConfig, state: MeterState) -> None:
        self.link = link
        self.config = config
        self.state = state
        self.address = config.address
        self.answered = False
        """A reply came back during this pass: from now on a lost frame is retried once."""
        self.exchanges = 0

    # -- one request --------------------------------------------------------------------------

    async def ask(self, request: p.Request, *, retry: bool = True, reopen: bool = True) -> bytes:
        """Send ``request``; return the reply's data bytes. Status 5 (channel not open) opens
        the channel and asks once more; a lost or garbled frame is asked once more when the meter
        has answered before in this pass."""
        for attempt in (0, 1):
            self.exchanges += 1
            try:
                reply = await self.link.exchange(request)
            except (NoAnswer, BadFrame):
                if attempt == 0 and retry and self.answered:
                    continue
                self.state.forget_session()
                raise
            self.answered = True
            data = reply[1:-2]
            if request.reply_data == 1 or len(data) == 1:
                status = data[0] & 0x0F
                if request.reply_data == 1 and status == p.Status.OK:
                    self._refresh()
                    return data
                if status == p.Status.CHANNEL_CLOSED and reopen and attempt == 0:
                    self.state.forget_session()
                    await self.open()
                    continue
                raise MeterStatusError(status, request)
            self._refresh()
            return data
        raise AssertionError("unreachable")  # pragma: no cover

    def _refresh(self) -> None:
        if self.state.session_until:
            self.state.session_until = time.monotonic() + SESSION_SECONDS - SESSION_MARGIN

    # -- session ------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the channel at the configured level; on a refusal try the other password
        encoding once and remember (and report) the one that worked."""
        config = self.config
        level = config.access_level
        first = self.state.encoding or config.password_encoding
        try:
            await self._open_with(first)
        except MeterStatusError as refused:
            other = p.other_encoding(first)
            try:
                await self._open_with(other)
            except (MeterStatusError, ValueError):
                raise WrongPassword(
                    f"the meter at address {self.address} refused the level {level} password "
                    f"(tried the {first} and the {other} encoding; status {refused.status})"
                ) from None
            if self.state.encoding is None and other != config.password_encoding:
                self.state.note(
                    f"meter {config.serial_number}: the password was accepted in the {other} "
                    f'encoding; set password_encoding = "{other}" for it')
            self.state.encoding = other
            return
        self.state.encoding = first

    async def _open_with(self, encoding: p.PasswordEncoding) -> None:
        password = p.password_bytes(self.config.password, encoding)
        self.state.session_until = 0.0
        await self.ask(p.open_request(self.address, self.config.access_level, password),
                       reopen=False)
        self.state.session_until = time.monotonic() + SESSION_SECONDS - SESSION_MARGIN

    async def ensure_open(self) -> None:
        if time.monotonic() >= self.state.session_until:
            await self.open()

    async def close(self) -> None:
        try:
            await self.ask(p.close_request(self.address), retry=False, reopen=False)
        finally:
            self.state.forget_session()

    async def test(self) -> bool:
        """The test request. Its answer repeats its own bytes, so with an echoing adapter it
        "answers" with no meter on the line: a hint for messages, never proof of presence."""
        try:
            await self.ask(p.test_request(self.address), retry=False, reopen=False)
        except DeviceError:
            return False
        self.answered = False  # the echo may have been all there was
        return True

    # -- identity -----------------------------------------------------------------------------

    async def identify(self) -> p.SerialInfo:
        """``08 00`` (needs no open channel): the meter at this address must carry the configured
        serial number. A year suffix that disagrees with the date of manufacture is only noted."""
        info = p.decode_serial(await self.ask(p.serial_request(self.address)))
        config = self.config
        digits, year = p.parse_serial_number(config.serial_number)
        if info.digits != digits:
            raise WrongMeter(f"the meter at address {self.address} on {config.port} has serial "
                             f"number {info.digits}, not {digits}")
        if year is not None and year != info.year:
            self.state.note(f"meter {config.serial_number}: made on {info.made}, the suffix "
                            f"-{year:02d} does not match the year")
        self.state.serial = info
        return info

    async def read_variant(self) -> p.Variant | None:
        try:
            variant = p.decode_variant(await self.ask(p.variant_request(self.address)))
        except MeterStatusError as exc:
            if exc.status != p.Status.BAD_REQUEST:
                raise
            variant = None
        self.state.variant = variant
        self.state.variant_known = True
        model = self.config.model
        if variant is not None and variant.phases != model.phases:
            self.state.note(f"meter {self.config.serial_number}: it reports {variant.phases} "
                            f"phase(s), but model {model.name} has {model.phases}")
        return variant

    # -- a full reading -----------------------------------------------------------------------

    async def read(self) -> dict[str, float]:
        """Every value the meter has: instantaneous quantities and energy Σ, T1..T4."""
        state = self.state
        if state.serial is None:
            await self.identify()
        await self.ensure_open()
        if not state.variant_known:
            await self.read_variant()
        fields: dict[str, float] = {}
        if self.config.model.three_phase:
            fields.update(await self._three_phase_values())
        else:
            fields.update(await self._single_values())
        for tariff in p.TARIFFS:
            data = await self._optional(p.energy_request(self.address, tariff))
            if data is not None:
                fields.update(p.decode_energy(data, tariff))
        return p.to_primary(fields, self.config.current_ratio, self.config.voltage_ratio)

    def _skip(self, bwri: int) -> bool:
        variant = self.state.variant
        return bwri in p.REACTIVE_BWRI and variant is not None and not variant.reactive

    async def _optional(self, request: p.Request) -> bytes | None:
        """A read the meter may not have: status 1 marks it refused (asked no more)."""
        key = _refusal_key(request)
        if key in self.state.refused:
            return None
        try:
            return await self.ask(request)
        except MeterStatusError as exc:
            if exc.status != p.Status.BAD_REQUEST:
                raise
            self.state.refused.add(key)
            return None

    async def _three_phase_values(self) -> dict[str, float]:
        state = self.state
        if state.fast_read is not False:
            fields = await self._fast_read()
            if fields is not None:
                return fields
        fields = {}
        for bwri in p.GROUP_READS:
            if self._skip(bwri):
                continue
            data = await self._optional(p.group_request(self.address, bwri))
            if data is not None:
                quantity = p.quantity_of(bwri)
                assert quantity is not None
                fields.update(p.decode_group(quantity, data))
        return fields

    async def _fast_read(self) -> dict[str, float] | None:
        request = p.group_request(self.address, p.Bwri.FAST_ALL)
        first_try = self.state.fast_read is None
        try:
            data = await self.ask(request, retry=not first_try)
        except MeterStatusError as exc:
            if exc.status != p.Status.BAD_REQUEST:
                raise
            self.state.fast_read = False
            return None
        except (NoAnswer, BadFrame):
            if not first_try:
                raise
            # An older firmware may stay silent on a read it does not know. If the meter still
            # answers (the channel is reopened: the failed exchange forgot it), fall back for
            # good; if it does not, the meter is gone and the fast read is tried next time.
            await self.ensure_open()
            self.state.fast_read = False
            return None
        self.state.fast_read = True
        return p.decode_fast_read(data)

    async def _single_values(self) -> dict[str, float]:
        fields: dict[str, float] = {}
        for bwri in p.SINGLE_PHASE_READS:
            if self._skip(bwri):
                continue
            data = await self._optional(p.single_request(self.address, bwri))
            if data is not None:
                fields.update(p.decode_single(bwri, data, single_phase=True))
        return fields

    # -- a live test before adding ------------------------------------------------------------

    async def probe(self) -> ProbeResult:
        """What ``devices/add`` requires before it writes anything: the meter answers, carries
        the serial number, accepts the password, its phases match the model, and one real
        read of values works."""
        echo_only = await self.test()
        try:
            await self.identify()
        except NoAnswer as exc:
            hint = self._no_answer_hint(echo_only, str(exc))
            raise NoAnswer(f"{exc}{hint}") from None
        await self.open()
        variant = await self.read_variant()
        model = self.config.model
        if variant is not None and variant.phases != model.phases:
            raise WrongModel(f"the meter reports {variant.phases} phase(s), but model "
                             f"{model.name} has {model.phases}: check device_model")
        if model.three_phase:
            data = await self.ask(p.group_request(self.address, p.Bwri.VOLTAGE))
            sample = p.decode_group(p.Bwri.VOLTAGE, data)
        else:
            data = await self.ask(p.single_request(self.address, 0x11))
            sample = p.decode_single(0x11, data)
        notes = list(self.state.notes)
        try:
            await self.close()
        except DeviceError:
            pass  # the session times out by itself
        assert self.state.serial is not None and self.state.encoding is not None
        return ProbeResult(self.state.serial, self.state.encoding, variant, sample, notes)

    def _no_answer_hint(self, test_answered: bool, said: str) -> str:
        digits = self.config.digits
        hints: list[str] = []
        # The link says so itself when it saw the echo in the failed exchange; whether it did
        # depends on how the bytes arrived, so the hint fills in when it did not.
        if test_answered and self.link.echoes is not False and ECHO_ONLY not in said:
            hints.append(ECHO_ONLY)
        factory = p.factory_address(digits)
        if factory != self.address:
            hints.append(f"the factory address of serial {digits} is {factory}")
        hints.append("check wiring, address and baud rate; a D-model's RS-485 channel may be "
                     "set to SPODES instead of the Mercury protocol")
        return "; " + "; ".join(hints)


def _refusal_key(request: p.Request) -> tuple[int, ...]:
    """Identifies a read whatever the address: the request bytes between address and CRC."""
    return tuple(request.frame[1:-2])


def describe_probe(result: ProbeResult) -> dict[str, Any]:
    """A probe result as plain data (for logs and the API)."""
    return {
        "serial": result.serial.digits,
        "made": result.serial.made,
        "password_encoding": result.encoding,
        "phases": result.variant.phases if result.variant else None,
        "sample": result.sample,
        "notes": result.notes,
    }
