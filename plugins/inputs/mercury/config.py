"""``[[inputs.mercury]]``: one table per meter, shaped like the manual's device object (§3.5.9).

::

    [[inputs.mercury]]
      port = "/dev/ttyACM0"
      port_settings = { baudrate = 9600, bytesize = 8, parity = "N", stopbits = 1 }
      serial_number = "32297700-17"
      device_model = "230"
      address = 1
      access_level = 1
      password_1 = "111111"
      password_2 = "222222"

TOML has no null: a port setting whose value is None (``timeout``, ``write_timeout``,
``inter_byte_timeout``) is simply left out. Checks that involve several meters (a serial number
twice, two meters on one address of one port, one port with two different settings) live in
:func:`check_all`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Literal

import msgspec

from webbo.agent.plugin import Config, ConfigError, Duration, InputConfig, Section
from webbo.plugins.inputs.mercury import protocol as p

PARITIES = {"N": "none", "E": "even", "O": "odd", "M": "mark", "S": "space"}
BAUDRATES = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
"""What the meters support (the manufacturer's list)."""


class PortSettings(Section, kw_only=True):
    """The arguments of ``serial.Serial`` except ``port`` and ``exclusive`` (the manual's
    ``port_settings``), with the manual's defaults."""

    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: int | float = 1
    timeout: float | None = None
    """Reply wait in seconds. None: derived from the baud rate (manufacturer's table + the
    frames' time on the line + an allowance for USB adapters)."""
    xonxoff: bool = False
    rtscts: bool = False
    write_timeout: float | None = None
    """Accepted for the manual's shape; a stuck write is bounded by the reply wait anyway."""
    dsrdtr: bool = False
    inter_byte_timeout: float | None = None
    """End-of-frame silence in seconds. None: the manufacturer's value for the baud rate."""

    def check(self) -> Iterator[ConfigError]:
        if self.baudrate not in BAUDRATES:
            yield ConfigError("baudrate", f"{self.baudrate} is not a speed Mercury meters use "
                                          f"({', '.join(map(str, BAUDRATES))})")
        if self.bytesize not in (5, 6, 7, 8):
            yield ConfigError("bytesize", f"must be 5, 6, 7 or 8, not {self.bytesize}")
        if self.parity not in PARITIES:
            yield ConfigError("parity", f'must be one of "N", "E", "O", "M", "S", not '
                                        f"{self.parity!r}")
        if self.stopbits not in (1, 1.5, 2):
            yield ConfigError("stopbits", f"must be 1, 1.5 or 2, not {self.stopbits}")
        for key in ("timeout", "write_timeout", "inter_byte_timeout"):
            value = getattr(self, key)
            if value is not None and value < 0:
                yield ConfigError(key, "cannot be negative")

    def bits_per_byte(self) -> float:
        return 1 + self.bytesize + (self.parity != "N") + float(self.stopbits)

    def serial_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``serial.Serial``. The asyncio transport does its own waiting
        (it sets timeout and write_timeout to 0), so the timeouts are ours to apply."""
        stopbits = int(self.stopbits) if float(self.stopbits).is_integer() else self.stopbits
        return {"baudrate": self.baudrate, "bytesize": self.bytesize, "parity": self.parity,
                "stopbits": stopbits, "xonxoff": self.xonxoff, "rtscts": self.rtscts,
                "dsrdtr": self.dsrdtr}

    def as_manual(self) -> dict[str, Any]:
        """The manual's ``port_settings`` object: every key, None for "not set"."""
        out = msgspec.structs.asdict(self)
        if float(self.stopbits).is_integer():
            out["stopbits"] = int(self.stopbits)
        return out

    def as_table(self) -> dict[str, Any]:
        """For webbo.toml: None values left out (TOML has no null)."""
        return {k: v for k, v in self.as_manual().items() if v is not None}


class MercuryConfig(InputConfig, kw_only=True):
    """``[[inputs.mercury]]``: one Mercury meter on an RS-485 line."""

    port: str
    """The adapter's device, e.g. "/dev/ttyUSB0" (a stable /dev/serial/by-id/... link is
    better: USB names can swap after a reboot)."""
    port_settings: PortSettings = msgspec.field(default_factory=PortSettings)
    serial_number: str
    """8 digits, optionally "-YY" (the year of manufacture): "32297700-17"."""
    device_model: str
    """One of 203.2TD, 204, 208, 230, 231, 234, 236, 238."""
    address: int = 1
    """Network address 1..240 (0 = "whoever is on the line": only for a meter alone on it)."""
    access_level: int = 1
    """1 (reading; enough for monitoring) or 2 (owner)."""
    password_1: str = "111111"
    password_2: str = "222222"
    password_encoding: Literal["digits", "ascii"] = "digits"
    """How the password goes on the wire: "digits" (one byte per character, ordinary meters)
    or "ascii" ("D" dual-protocol meters). On a refusal the other one is tried once and the
    result is logged."""
    max_backoff: Duration = Duration(300.0)
    """A meter that stops answering is retried less and less often, at most this far apart."""
    current_ratio: int = 1
    """Ratio of the current transformers the meter measures through (Kт: 500/5 A → 100). The
    meter reports what its terminals see; currents, powers and energies are multiplied by
    this (and by voltage_ratio) before they are written. 1: a directly connected meter."""
    voltage_ratio: int = 1
    """Ratio of the voltage transformers (Kн; 1 on the 0.4 kV side where farms meter)."""

    def check(self) -> Iterator[ConfigError]:
        if not self.port.startswith("/"):
            yield ConfigError("port", f'expected a device path like "/dev/ttyUSB0", got '
                                      f"{self.port!r}")
        try:
            p.parse_serial_number(self.serial_number)
        except ValueError as exc:
            yield ConfigError("serial_number", str(exc))
        if self.device_model not in p.MODELS:
            yield ConfigError("device_model", f"unsupported model {self.device_model!r} "
                                              f"(supported: {p.SUPPORTED_MODELS})")
        if not 0 <= self.address <= p.MAX_ADDRESS:
            yield ConfigError("address", f"must be 1..{p.MAX_ADDRESS} (or 0), not {self.address}")
        if self.access_level not in (1, 2):
            yield ConfigError("access_level", f"must be 1 or 2, not {self.access_level}")
        for key in ("password_1", "password_2"):
            yield from _check_password(key, getattr(self, key), self.password_encoding)
        if self.max_backoff <= 0:
            yield ConfigError("max_backoff", "must be longer than 0s")
        for key in ("current_ratio", "voltage_ratio"):
            if not 1 <= getattr(self, key) <= 10_000:
                yield ConfigError(key, f"must be 1..10000, not {getattr(self, key)}")

    @property
    def password(self) -> str:
        """The password of the configured access level."""
        return self.password_2 if self.access_level == 2 else self.password_1

    @property
    def model(self) -> p.Model:
        return p.MODELS[self.device_model]

    @property
    def digits(self) -> str:
        return p.serial_digits(self.serial_number)

    def as_manual(self) -> dict[str, Any]:
        """The manual's device object (``/api/serial/devices/get``)."""
        return {
            "port": self.port,
            "port_settings": self.port_settings.as_manual(),
            "serial_number": self.serial_number,
            "device_model": self.device_model,
            "address": self.address,
            "access_level": self.access_level,
            "password_1": self.password_1,
            "password_2": self.password_2,
        }


def _check_password(key: str, value: str, encoding: str) -> Iterator[ConfigError]:
    if len(value) != 6:
        yield ConfigError(key, f"must be exactly 6 characters, got {len(value)}")
        return
    try:
        p.password_bytes(value, "ascii" if encoding == "ascii" else "digits")
    except ValueError as exc:
        yield ConfigError(key, str(exc))


def check_all(meters: list[MercuryConfig], config: Config | None = None
              ) -> Iterable[ConfigError]:
    """Rules across meters: a serial number once; one meter per address of a port; one set of
    port settings per port; the universal address 0 only for a meter alone on its port."""
    serials: dict[str, int] = {}
    places: dict[tuple[str, int], int] = {}
    ports: dict[str, int] = {}
    per_port: dict[str, int] = {}
    for meter in meters:
        per_port[meter.port] = per_port.get(meter.port, 0) + 1
    for i, meter in enumerate(meters):
        path = f"inputs.mercury[{i}]"
        digits = meter.digits
        if digits in serials:
            yield ConfigError(f"{path}.serial_number",
                              f"meter {meter.serial_number} is already configured as "
                              f"inputs.mercury[{serials[digits]}]")
        serials.setdefault(digits, i)
        place = (meter.port, meter.address)
        if place in places:
            yield ConfigError(f"{path}.address",
                              f"address {meter.address} on {meter.port} is already used by "
                              f"inputs.mercury[{places[place]}]; meters on one line need "
                              f"distinct addresses")
        places.setdefault(place, i)
        first = ports.setdefault(meter.port, i)
        if first != i and meters[first].port_settings != meter.port_settings:
            yield ConfigError(f"{path}.port_settings",
                              f"differ from inputs.mercury[{first}] on the same port "
                              f"{meter.port}; one line has one speed and format")
        if meter.address == p.UNIVERSAL_ADDRESS and per_port[meter.port] > 1:
            yield ConfigError(f"{path}.address",
                              f"address 0 makes every meter on {meter.port} answer at once; "
                              f"use each meter's own address")
