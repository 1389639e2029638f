"""The Mercury "230 family" wire protocol: frames, CRC, requests, value codecs.

Pure functions and small value types only (no I/O), shared by the poller and the simulator so
both sides speak from one definition. Every layout here is taken from the team's reference
(``../shared/reference/mercury-protocol.md``, which cites the manufacturer's command-set document
for the eight models 203.2TD, 204, 208, 230, 231, 234, 236 and 238):

* frame: ``addr | code | params… | CRC16`` (request), ``addr | data… | CRC16`` (reply); no length
  byte, so a reader needs the expected reply length (:data:`REPLY_LENGTHS`) to know a frame is
  complete; a 1-byte data field is a status (:class:`Status`);
* CRC-16/MODBUS, low byte first;
* 3-byte values are sent in the order 1st, 3rd, 2nd with two direction bits in the 1st byte;
  4-byte energies in the order 2nd, 1st, 4th, 3rd, unsigned, ``FF FF FF FF`` meaning "this kind
  of energy is not counted by this meter";
* serial numbers are four *binary* bytes of two decimal digits each (not BCD).

Decoders never raise on odd input except :class:`ProtocolError` (a value the operator should
see, e.g. a reply of the wrong length), so a garbled reply fails one meter, never the poll.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Literal

# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """One supported meter model and what the poller needs to know about it."""

    name: str
    phases: Literal[1, 3]

    @property
    def three_phase(self) -> bool:
        return self.phases == 3


MODELS: dict[str, Model] = {
    name: Model(name, phases)
    for name, phases in (("203.2TD", 1), ("204", 1), ("208", 1), ("230", 3), ("231", 3),
                         ("234", 3), ("236", 3), ("238", 3))
}
"""The eight models of the manual (§3.5.9); all speak the 230-family protocol."""

SUPPORTED_MODELS = ", ".join(MODELS)

# --------------------------------------------------------------------------------------------
# Frames and CRC
# --------------------------------------------------------------------------------------------


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/MODBUS (reflected 0xA001, init 0xFFFF, no final XOR)."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def frame(body: bytes | bytearray) -> bytes:
    """``body`` with its CRC appended, low byte first (how every frame goes on the wire)."""
    crc = crc16(body)
    return bytes(body) + bytes((crc & 0xFF, crc >> 8))


def crc_ok(data: bytes | bytearray | memoryview) -> bool:
    """True when the last two bytes of ``data`` are the CRC of the bytes before them."""
    if len(data) < 3:
        return False
    crc = crc16(data[:-2])
    return data[-2] == crc & 0xFF and data[-1] == crc >> 8


# --------------------------------------------------------------------------------------------
# Addresses and status
# --------------------------------------------------------------------------------------------

UNIVERSAL_ADDRESS = 0x00
"""Every meter answers it: only for a line with one meter."""
BROADCAST_ADDRESS = 0xFE
"""Every meter executes, nobody answers."""
MAX_ADDRESS = 240


class Status(enum.IntEnum):
    """The low nibble of a 1-byte reply (manufacturer's Table 1.3)."""

    OK = 0
    BAD_REQUEST = 1
    INTERNAL_ERROR = 2
    ACCESS_DENIED = 3
    CLOCK_ALREADY_SET = 4
    CHANNEL_CLOSED = 5


STATUS_TEXT: dict[int, str] = {
    0: "ok",
    1: "invalid command or parameter",
    2: "internal meter error",
    3: "access level too low for this request",
    4: "the clock was already corrected today",
    5: "the channel is not open",
}


def status_text(code: int) -> str:
    return STATUS_TEXT.get(code, f"unknown status {code}")


class ProtocolError(ValueError):
    """A reply that cannot be what the request asked for (wrong length, impossible value)."""


def factory_address(serial_digits: str, *, d_model: bool = False) -> int:
    """The network address a meter leaves the factory with, derived from its serial number.

    non-D meters: the last three digits if ≤ 239, else the last two; 0 becomes 1.
    D meters (dual Mercury/SPODES): 17..124 — the last three digits if ≤ 124, else the last
    two; 10 is added while the result is below 17.
    """
    last3 = int(serial_digits[-3:])
    if d_model:
        address = last3 if last3 <= 124 else last3 % 100
        while address < 17:
            address += 10
        return address
    address = last3 if last3 <= 239 else last3 % 100
    return address or 1


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


class Code(enum.IntEnum):
    TEST = 0x00
    OPEN = 0x01
    CLOSE = 0x02
    WRITE = 0x03
    READ_TIME = 0x04
    READ_ENERGY = 0x05
    READ_PARAM = 0x08


class Param(enum.IntEnum):
    """Second byte of a ``08`` read."""

    SERIAL = 0x00
    PASSPORT = 0x01
    RATIOS = 0x02
    FIRMWARE = 0x03
    ADDRESS = 0x05
    STATUS_WORD = 0x0A
    SINGLE = 0x11
    VARIANT = 0x12
    FROZEN = 0x14
    GROUP = 0x16


class Bwri(enum.IntEnum):
    """The quantity byte of ``08 11`` / ``08 16`` reads (high nibble = quantity)."""

    POWER_P = 0x00
    POWER_Q = 0x04
    POWER_S = 0x08
    VOLTAGE = 0x10
    CURRENT = 0x20
    POWER_FACTOR = 0x30
    FREQUENCY = 0x40
    ANGLE = 0x50
    THD = 0x60
    TEMPERATURE = 0x70
    LINE_VOLTAGE = 0x80
    FAST_ALL = 0xA0


@dataclass(frozen=True)
class Request:
    """One request frame and the number of data bytes a successful reply carries."""

    frame: bytes
    reply_data: int
    what: str
    """What it asks, for messages ("voltages", "energy T2")."""
    alt_data: tuple[int, ...] = ()
    """Other data sizes a valid answer may have (the fast read: 78 or 95 bytes)."""

    @property
    def address(self) -> int:
        return self.frame[0]

    @property
    def code(self) -> int:
        return self.frame[1]

    @property
    def reply_length(self) -> int:
        return self.reply_data + 3

    @property
    def reply_lengths(self) -> tuple[int, ...]:
        """Every frame length a valid answer may have, shortest first."""
        return tuple(sorted({self.reply_data + 3, *(n + 3 for n in self.alt_data)}))

    @property
    def reply_may_equal_request(self) -> bool:
        """Only the test request is answered with its own bytes: its echo and its answer
        cannot be told apart."""
        return self.code == Code.TEST


def test_request(address: int) -> Request:
    return Request(frame(bytes((address, Code.TEST))), 1, "test")


def open_request(address: int, level: int, password: bytes) -> Request:
    if len(password) != 6:
        raise ValueError("a password is 6 bytes")
    return Request(frame(bytes((address, Code.OPEN, level)) + password), 1,
                   f"open channel (level {level})")


def close_request(address: int) -> Request:
    return Request(frame(bytes((address, Code.CLOSE))), 1, "close channel")


def serial_request(address: int) -> Request:
    return Request(frame(bytes((address, Code.READ_PARAM, Param.SERIAL))), 7, "serial number")


def variant_request(address: int) -> Request:
    return Request(frame(bytes((address, Code.READ_PARAM, Param.VARIANT))), 6, "variant")


def address_request(address: int) -> Request:
    return Request(frame(bytes((address, Code.READ_PARAM, Param.ADDRESS))), 2, "address")


def time_request(address: int) -> Request:
    return Request(frame(bytes((address, Code.READ_TIME, 0x00))), 8, "clock")


def energy_request(address: int, tariff: int = 0, array: int = 0, month: int = 0) -> Request:
    """``05``: accumulated energy. ``array`` 0 = from reset; ``tariff`` 0 = sum, 1..4."""
    what = "energy" + (f" T{tariff}" if tariff else "")
    data = 12 if array == 6 else 16
    return Request(frame(bytes((address, Code.READ_ENERGY, (array << 4) | month, tariff))),
                   data, what)


# Data bytes of the answer to each grouped (16h) read, by quantity.
_GROUP_DATA = {
    Bwri.POWER_P: 12, Bwri.POWER_Q: 12, Bwri.POWER_S: 12, Bwri.VOLTAGE: 9, Bwri.CURRENT: 9,
    Bwri.POWER_FACTOR: 12, Bwri.FREQUENCY: 3, Bwri.ANGLE: 9, Bwri.THD: 6, Bwri.TEMPERATURE: 2,
    Bwri.LINE_VOLTAGE: 9,
}

FAST_READ_DATA = 78
"""``08 16 A0`` answer without the newer firmware's tail (THD, temperature, line voltages)."""
FAST_READ_EXTENDED_DATA = 95


def quantity_of(bwri: int) -> Bwri | None:
    """The quantity a BWRI byte names, None for none. For powers, bits 3-2 pick P, Q or S and
    bits 1-0 the phase; for the others the low nibble is the phase (or unused)."""
    high = bwri & 0xF0
    if high == 0x00:
        return {0x00: Bwri.POWER_P, 0x04: Bwri.POWER_Q, 0x08: Bwri.POWER_S}.get(bwri & 0x0C)
    try:
        return Bwri(high)
    except ValueError:
        return None


def group_request(address: int, bwri: int) -> Request:
    """``08 16 <bwri>``: all phases (and Σ where one exists) of one quantity."""
    quantity = quantity_of(bwri)
    if quantity is None:
        raise ValueError(f"BWRI {bwri:02X} names no quantity")
    body = bytes((address, Code.READ_PARAM, Param.GROUP, bwri))
    if quantity is Bwri.FAST_ALL:
        return Request(frame(body), FAST_READ_DATA, "fast read of all values",
                       (FAST_READ_EXTENDED_DATA,))
    return Request(frame(body), _GROUP_DATA[quantity], _QUANTITY_TEXT[quantity])


def single_request(address: int, bwri: int) -> Request:
    """``08 11 <bwri>``: one value (3 bytes; 2 for THD and temperature)."""
    quantity = quantity_of(bwri)
    if quantity is None or quantity is Bwri.FAST_ALL:
        raise ValueError(f"BWRI {bwri:02X} names no single value")
    return Request(frame(bytes((address, Code.READ_PARAM, Param.SINGLE, bwri))),
                   single_size(quantity), _QUANTITY_TEXT[quantity])


def single_size(quantity: Bwri) -> int:
    """Data bytes of an ``08 11`` answer: 2 for THD and temperature, else 3."""
    return 2 if quantity in (Bwri.THD, Bwri.TEMPERATURE) else 3


_QUANTITY_TEXT = {
    Bwri.POWER_P: "active power", Bwri.POWER_Q: "reactive power",
    Bwri.POWER_S: "apparent power", Bwri.VOLTAGE: "voltages", Bwri.CURRENT: "currents",
    Bwri.POWER_FACTOR: "power factors", Bwri.FREQUENCY: "frequency",
    Bwri.ANGLE: "phase angles", Bwri.THD: "voltage THD", Bwri.TEMPERATURE: "temperature",
    Bwri.LINE_VOLTAGE: "line voltages", Bwri.FAST_ALL: "fast read",
}


REQUEST_LENGTHS: dict[int, tuple[int, ...]] = {
    Code.TEST: (4,),
    Code.OPEN: (11,),
    Code.CLOSE: (4,),
    Code.READ_TIME: (5, 6),
    Code.READ_ENERGY: (6,),
    Code.READ_PARAM: (5, 6),
}
"""Legal request lengths by code (writes ``03`` vary with their parameter)."""

WRITE_LENGTHS: dict[int, int] = {0x05: 6, 0x1F: 18}
"""Lengths of the write requests the simulator knows: address change, password change."""


# --------------------------------------------------------------------------------------------
# Passwords and serial numbers
# --------------------------------------------------------------------------------------------

PasswordEncoding = Literal["digits", "ascii"]
HEX_DIGITS = frozenset("0123456789ABCDEFabcdef")


def password_bytes(password: str, encoding: PasswordEncoding) -> bytes:
    """The 6 password bytes as sent.

    ``digits`` (ordinary meters): each character is one byte holding its value, "111111" →
    ``01 01 01 01 01 01``; a changed password may hold hex letters, 'A' → ``0A``.
    ``ascii`` (dual-protocol "D" meters): the characters' codes, "111111" → ``31 31 …``.
    """
    if len(password) != 6:
        raise ValueError("a password has exactly 6 characters")
    if encoding == "ascii":
        try:
            return password.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError("an ASCII password holds only ASCII characters") from None
    if not set(password) <= HEX_DIGITS:
        raise ValueError('with password_encoding = "digits" every character is 0-9 or A-F')
    return bytes(int(char, 16) for char in password)


def other_encoding(encoding: PasswordEncoding) -> PasswordEncoding:
    return "ascii" if encoding == "digits" else "digits"


SERIAL_PATTERN = re.compile(r"^(?P<digits>\d{8})(?:-(?P<year>\d{2}))?$")


def parse_serial_number(text: str) -> tuple[str, int | None]:
    """``"32297700-17"`` → ("32297700", 17). The meter stores the 8 digits; the suffix is the
    year of manufacture (two digits), which is checked only as a warning."""
    match = SERIAL_PATTERN.match(text.strip())
    if match is None:
        raise ValueError(f'expected 8 digits, optionally "-YY" (like "32297700-17"), got {text!r}')
    year = match.group("year")
    return match.group("digits"), int(year) if year is not None else None


def serial_digits(text: str) -> str:
    """The 8 digits of a serial number as configured, or the text unchanged if malformed."""
    try:
        return parse_serial_number(text)[0]
    except ValueError:
        return text.strip()


@dataclass(frozen=True)
class SerialInfo:
    """What ``08 00`` answers: the serial number and the date of manufacture."""

    digits: str
    day: int
    month: int
    year: int
    """Two digits (17 for 2017)."""

    @property
    def made(self) -> str:
        return f"{self.day:02d}.{self.month:02d}.20{self.year:02d}"


def decode_serial(data: bytes) -> SerialInfo:
    """Four binary bytes of two digits each, then day, month, year (binary)."""
    if len(data) != 7:
        raise ProtocolError(f"serial number reply has {len(data)} data bytes, expected 7")
    if any(b > 99 for b in data[:4]):
        raise ProtocolError(f"serial number bytes out of range: {data[:4].hex(' ')}")
    return SerialInfo("".join(f"{b:02d}" for b in data[:4]), data[4], data[5], data[6])


def encode_serial(info: SerialInfo) -> bytes:
    digits = info.digits
    return bytes(int(digits[i:i + 2]) for i in range(0, 8, 2)) + bytes(
        (info.day, info.month, info.year))


# --------------------------------------------------------------------------------------------
# Variant ("вариант исполнения")
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """The bits of ``08 12`` the poller uses."""

    raw: bytes
    phases: int
    two_directions: bool
    """False: one-direction meter, A− (and R− by quadrant) may be absent."""
    reactive: bool
    """False: an "A" (active-only) meter, no reactive quantities."""
    constant: int | None
    """Meter constant, imp/kWh."""


_CONSTANTS = {0: 5000, 1: 25000, 2: 1250, 3: 500, 4: 1000, 5: 250}


def decode_variant(data: bytes) -> Variant:
    if len(data) < 6:
        raise ProtocolError(f"variant reply has {len(data)} data bytes, expected 6")
    b2, b3 = data[1], data[2]
    return Variant(
        raw=bytes(data[:6]),
        phases=1 if b2 & 0x10 else 3,
        two_directions=not b2 & 0x80,
        reactive=(b3 >> 4) & 0x03 == 0,
        constant=_CONSTANTS.get(b2 & 0x0F),
    )


# --------------------------------------------------------------------------------------------
# Value codecs
# --------------------------------------------------------------------------------------------

Sign = Literal["active", "reactive"] | None
NO_VALUE_3 = b"\xff\xff\xff"
NO_VALUE_4 = b"\xff\xff\xff\xff"


def dec3(wire: bytes, sign: Sign = None) -> int | None:
    """A 3-byte value: wire order 1st, 3rd, 2nd; the two top bits of the 1st byte are the
    directions of active (bit 7) and reactive (bit 6) power, masked off for the magnitude.
    ``FF FF FF`` means "no value" (a dead phase) and gives None."""
    if wire == NO_VALUE_3:
        return None
    value = ((wire[0] & 0x3F) << 16) | (wire[2] << 8) | wire[1]
    if (sign == "active" and wire[0] & 0x80) or (sign == "reactive" and wire[0] & 0x40):
        return -value
    return value


def enc3(value: int, *, active_reverse: bool = False, reactive_reverse: bool = False) -> bytes:
    """The inverse of :func:`dec3` for a magnitude (the simulator's side)."""
    value = min(abs(value), 0x3FFFFF)
    first = (value >> 16) | (0x80 if active_reverse else 0) | (0x40 if reactive_reverse else 0)
    return bytes((first, value & 0xFF, (value >> 8) & 0xFF))


def dec4(wire: bytes) -> int | None:
    """A 4-byte energy: wire order 2nd, 1st, 4th, 3rd; unsigned; ``FF FF FF FF`` = absent."""
    if wire == NO_VALUE_4:
        return None
    return (wire[1] << 24) | (wire[0] << 16) | (wire[3] << 8) | wire[2]


def enc4(value: int | None) -> bytes:
    if value is None:
        return NO_VALUE_4
    value &= 0xFFFFFFFF
    return bytes(((value >> 16) & 0xFF, value >> 24, value & 0xFF, (value >> 8) & 0xFF))


Fields = dict[str, float]

ENERGY_KINDS = (
    ("energy_active_import", "kwh"),
    ("energy_active_export", "kwh"),
    ("energy_reactive_import", "kvarh"),
    ("energy_reactive_export", "kvarh"),
)


def decode_energy(data: bytes, tariff: int = 0) -> Fields:
    """A+, A−, R+, R− in Wh/varh → kWh/kvarh fields; absent kinds are left out."""
    if len(data) != 16:
        raise ProtocolError(f"energy reply has {len(data)} data bytes, expected 16")
    fields: Fields = {}
    suffix = f"_t{tariff}" if tariff else ""
    for i, (name, unit) in enumerate(ENERGY_KINDS):
        value = dec4(data[4 * i:4 * i + 4])
        if value is not None:
            fields[f"{name}{suffix}_{unit}"] = value / 1000
    return fields


@dataclass(frozen=True)
class QuantitySpec:
    """How one quantity's values are named, scaled and signed."""

    total: str | None
    """Field of the Σ value (powers, PF), None when the group has no Σ."""
    phase: str
    """Field pattern of the per-phase values ({n} = 1..3)."""
    scale: float
    sign: Sign = None
    phase_names: tuple[str, ...] = ("l1", "l2", "l3")


QUANTITIES: dict[Bwri, QuantitySpec] = {
    Bwri.POWER_P: QuantitySpec("power_active_w", "power_active_{n}_w", 0.01, "active"),
    Bwri.POWER_Q: QuantitySpec("power_reactive_var", "power_reactive_{n}_var", 0.01, "reactive"),
    Bwri.POWER_S: QuantitySpec("power_apparent_va", "power_apparent_{n}_va", 0.01),
    Bwri.VOLTAGE: QuantitySpec(None, "voltage_{n}_v", 0.01),
    Bwri.CURRENT: QuantitySpec(None, "current_{n}_a", 0.001),
    Bwri.POWER_FACTOR: QuantitySpec("power_factor", "power_factor_{n}", 0.001, "active"),
    Bwri.FREQUENCY: QuantitySpec("frequency_hz", "", 0.01),
    Bwri.ANGLE: QuantitySpec(None, "angle_{n}_deg", 0.01,
                             phase_names=("l1_l2", "l1_l3", "l2_l3")),
    Bwri.THD: QuantitySpec(None, "voltage_thd_{n}_pct", 0.01),
    Bwri.TEMPERATURE: QuantitySpec("temperature_c", "", 1.0),
    Bwri.LINE_VOLTAGE: QuantitySpec(None, "voltage_{n}_v", 0.01,
                                    phase_names=("l1_l2", "l2_l3", "l1_l3")),
}


def to_primary(fields: Fields, current_ratio: int = 1, voltage_ratio: int = 1) -> Fields:
    """A meter on instrument transformers measures their secondary side: currents × Kт,
    voltages × Kн, powers and energies × Kт·Kн give the feed's values. Ratios, angles, the
    power factor, frequency, THD and temperature stay as they are."""
    if current_ratio == 1 and voltage_ratio == 1:
        return fields
    both = current_ratio * voltage_ratio
    out: Fields = {}
    for name, value in fields.items():
        if name.endswith(("_w", "_var", "_va", "_kwh", "_kvarh")):
            value = round(value * both, 6)
        elif name.endswith("_a"):
            value = round(value * current_ratio, 6)
        elif name.endswith("_v"):
            value = round(value * voltage_ratio, 6)
        out[name] = value
    return out


def _scaled(raw: int | None, scale: float) -> float | None:
    return None if raw is None else round(raw * scale, 6)


def decode_group(quantity: Bwri, data: bytes) -> Fields:
    """The answer to ``08 16 <quantity>``: Σ (where it exists) then phases 1..3."""
    expected = _GROUP_DATA[quantity]
    if len(data) != expected:
        raise ProtocolError(f"{_QUANTITY_TEXT[quantity]} reply has {len(data)} data bytes, "
                            f"expected {expected}")
    spec = QUANTITIES[quantity]
    fields: Fields = {}
    if quantity is Bwri.TEMPERATURE:
        fields["temperature_c"] = float(int.from_bytes(data, "big", signed=True))
        return fields
    if quantity is Bwri.THD:
        for i, name in enumerate(spec.phase_names):
            fields[spec.phase.format(n=name)] = round(
                int.from_bytes(data[2 * i:2 * i + 2], "little") * spec.scale, 6)
        return fields
    values = [dec3(data[i:i + 3], spec.sign) for i in range(0, len(data), 3)]
    if quantity is Bwri.FREQUENCY:
        value = _scaled(values[0], spec.scale)
        if value is not None:
            fields["frequency_hz"] = value
        return fields
    if spec.total is not None:
        total = _scaled(values.pop(0), spec.scale)
        if total is not None:
            fields[spec.total] = total
    for name, raw in zip(spec.phase_names, values, strict=True):
        value = _scaled(raw, spec.scale)
        if value is not None:
            fields[spec.phase.format(n=name)] = value
    return fields


def decode_fast_read(data: bytes) -> Fields:
    """``08 16 A0``: P, Q, S (Σ + 3 each), U×3, angles×3, I×3, PF (Σ + 3), f; newer firmware
    adds THD×3 (2 bytes LE each), temperature (2 bytes BE), line voltages×3 (95 bytes)."""
    if len(data) not in (FAST_READ_DATA, FAST_READ_EXTENDED_DATA):
        raise ProtocolError(f"fast read reply has {len(data)} data bytes, expected "
                            f"{FAST_READ_DATA} or {FAST_READ_EXTENDED_DATA}")
    layout = [(Bwri.POWER_P, 12), (Bwri.POWER_Q, 12), (Bwri.POWER_S, 12), (Bwri.VOLTAGE, 9),
              (Bwri.ANGLE, 9), (Bwri.CURRENT, 9), (Bwri.POWER_FACTOR, 12), (Bwri.FREQUENCY, 3)]
    if len(data) == FAST_READ_EXTENDED_DATA:
        layout += [(Bwri.THD, 6), (Bwri.TEMPERATURE, 2), (Bwri.LINE_VOLTAGE, 9)]
    fields: Fields = {}
    offset = 0
    for quantity, size in layout:
        fields.update(decode_group(quantity, data[offset:offset + size]))
        offset += size
    return fields


def decode_single(bwri: int, data: bytes, *, single_phase: bool = True) -> Fields:
    """The answer to ``08 11 <bwri>``: one value. On a single-phase meter the phase value is
    named like phase 1 of a three-phase meter (``voltage_l1_v``) and Σ like Σ."""
    quantity = quantity_of(bwri)
    if quantity is None or quantity is Bwri.FAST_ALL:
        raise ValueError(f"BWRI {bwri:02X} names no single value")
    size = single_size(quantity)
    if len(data) != size:
        raise ProtocolError(f"{_QUANTITY_TEXT[quantity]} reply has {len(data)} "
                            f"data bytes, expected {size}")
    spec = QUANTITIES[quantity]
    if quantity is Bwri.TEMPERATURE:
        return {"temperature_c": float(int.from_bytes(data, "big", signed=True))}
    index = bwri & 0x03
    if quantity is Bwri.THD:
        raw: int | None = int.from_bytes(data, "little")
    else:
        raw = dec3(data, spec.sign)
    value = _scaled(raw, spec.scale)
    if value is None:
        return {}
    if quantity is Bwri.FREQUENCY:
        return {"frequency_hz": value}
    if quantity is Bwri.CURRENT and single_phase:
        index = 1  # 1: the phase wire (0 would be the imbalance, 2 the neutral)
    if index == 0 and spec.total is not None:
        return {spec.total: value}
    if index == 0:
        raise ProtocolError(f"BWRI {bwri:02X} names no phase")
    return {spec.phase.format(n=spec.phase_names[index - 1]): value}


SINGLE_PHASE_READS: tuple[int, ...] = (0x11, 0x21, 0x00, 0x04, 0x08, 0x30, 0x40)
"""``08 11`` reads of a single-phase meter: U, I (phase wire), P, Q, S, PF, f."""
GROUP_READS: tuple[int, ...] = (0x11, 0x21, 0x00, 0x04, 0x08, 0x30, 0x40)
"""``08 16`` reads of a three-phase meter when it has no fast read: the same quantities."""
REACTIVE_BWRI = frozenset({0x04})
TARIFFS = (0, 1, 2, 3, 4)


def describe(data: bytes | bytearray) -> str:
    """Bytes as the manual writes them: ``01 08 16 11 4E 76``."""
    return data.hex(" ").upper()
