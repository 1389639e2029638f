"""What ``/api/serial/*`` calls (manual §3.5.8–3.5.9): list ports, list, add and delete meters.

webbo.toml stays the single source of truth: ``add_device`` probes the meter live first (the
serial number matches, the password opens the channel, the phases fit the model, one real read
works) and only then appends an ``[[inputs.mercury]]`` table through the agent's config edits
(comments kept, the whole result validated, then hot-reloaded); ``delete_device`` removes the
table the same way. The running bus picks the change up without disturbing the other meters
on it.

Errors: :class:`ValueError` (a :class:`~webbo.agent.plugin.ConfigError`) for a request that is
wrong in itself (unknown key, unsupported model, already added, unknown serial number), and
:class:`~webbo.agent.plugin.DeviceError` for what the meter or the port said (no answer, wrong
serial, wrong password, port busy).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import msgspec
import structlog
import tomlkit
from serial.tools import list_ports

from webbo.agent.plugin import (
    ConfigEdits,
    ConfigError,
    DeviceError,
    PluginContext,
    append_table,
    remove_tables,
    validation_error,
)
from webbo.plugins.inputs.mercury import protocol as p
from webbo.plugins.inputs.mercury.bus import MeterBuses
from webbo.plugins.inputs.mercury.config import MercuryConfig, check_all
from webbo.plugins.inputs.mercury.session import ProbeResult, describe_probe

log = structlog.get_logger("webbo.mercury.api")

DEVICE_KEYS = ("port", "port_settings", "serial_number", "device_model", "address",
               "access_level", "password_1", "password_2", "password_encoding")
"""What ``devices/add`` accepts: the manual's device object (plus our ``password_encoding``)."""
PORT_SETTING_KEYS = ("baudrate", "bytesize", "parity", "stopbits", "timeout", "xonxoff",
                     "rtscts", "write_timeout", "dsrdtr", "inter_byte_timeout")
TABLE = "inputs.mercury"


def factory_addresses(digits: str) -> list[int]:
    """Where a meter may sit when it left the factory: its ordinary factory address, then the
    one a "D" (dual-protocol) meter gets, when different."""
    try:
        found = [p.factory_address(digits), p.factory_address(digits, d_model=True)]
    except ValueError:
        return [1]
    return list(dict.fromkeys(found))


def list_serial_ports(include_all: bool = False) -> list[str]:
    """Serial ports by name: USB adapters only by default (what an RS-485 dongle is), or
    every port the system reports (with their /dev/serial/by-id style links)."""
    ports = list_ports.comports(include_links=include_all)
    if not include_all:
        ports = [port for port in ports if port.vid is not None]
    return sorted({port.device for port in ports})


def device_config(device: Mapping[str, Any]) -> MercuryConfig:
    """Validate a ``devices/add`` device object; ConfigError names the key and the reason."""
    if not isinstance(device, Mapping):
        raise ConfigError("device", "expected an object")
    unknown = sorted(set(device) - set(DEVICE_KEYS))
    if unknown:
        raise ConfigError(f"device.{unknown[0]}", f"unknown key (known: {', '.join(DEVICE_KEYS)})")
    settings = device.get("port_settings")
    if isinstance(settings, Mapping):
        bad = sorted(set(settings) - set(PORT_SETTING_KEYS))
        if bad:
            raise ConfigError(f"device.port_settings.{bad[0]}",
                              f"unknown key (known: {', '.join(PORT_SETTING_KEYS)})")
    try:
        config = msgspec.convert(dict(device), MercuryConfig)
    except msgspec.ValidationError as exc:
        # the config loader's wording: "device.address: expected int, got str"
        raise validation_error("device", exc) from None
    errors = [ConfigError(f"device.{e.path}", e.reason) for e in config.check()]
    errors += [ConfigError(f"device.port_settings.{e.path}", e.reason)
               for e in config.port_settings.check()]
    if errors:
        raise errors[0]
    return config


class MercuryBackend:
    """The agent's serial backend (:class:`~webbo.agent.plugin.SerialBackend`): the service
    behind ``/api/serial/*`` and the meter pages. It also owns the agent's buses (their status,
    their closing)."""

    models: tuple[str, ...] = tuple(p.MODELS)

    def __init__(self, context: PluginContext) -> None:
        self.context = context
        self.buses = context.shared.get(MeterBuses)
        self._lock = asyncio.Lock()

    @property
    def _edits(self) -> ConfigEdits:
        if self.context.edits is None:
            raise ConfigError("", "meters cannot be changed here (no running agent)")
        return self.context.edits

    def _meters(self) -> list[MercuryConfig]:
        return list(self._edits.config.instances("inputs", "mercury"))

    def meters(self) -> list[dict[str, Any]]:
        return self.buses.meters()

    def status(self) -> dict[str, Any]:
        return self.buses.status()

    async def close(self) -> None:
        await self.buses.close()

    async def get_ports(self, include_all: bool = False) -> list[str]:
        """The system's serial ports (USB adapters, or all), and the ports meters are read on
        now (a pseudo-terminal of simulated meters, a fixed UART) so another meter on the same
        line can be added from the list."""
        found = await asyncio.to_thread(list_serial_ports, include_all)
        return sorted({*found, *(meter.port for meter in self._meters())})

    def get_devices(self) -> list[dict[str, Any]]:
        return [meter.as_manual() for meter in self._meters()]

    async def add_device(self, device: dict[str, Any]) -> bool:
        """Probe the meter live, then add its table. Without ``address`` (the manual's body:
        port, model, serial number) the meter is looked for at its factory address, which the
        serial number gives (two candidates: ordinary and "D" meters number differently)."""
        config = device_config(device)
        given = "address" in device
        candidates = [config] if given else [
            msgspec.structs.replace(config, address=address)
            for address in factory_addresses(config.digits)]
        async with self._lock:
            existing = self._meters()
            for meter in existing:
                if meter.digits == config.digits:
                    raise ConfigError("device.serial_number",
                                      f"meter {meter.serial_number} is already added")
            candidates = [c for c in candidates if not self._address_taken(existing, c, given)]
            if not candidates:
                raise ConfigError("device.address",
                                  f"the factory address of meter {config.serial_number} on "
                                  f"{config.port} is taken by another meter: give its address")
            for error in check_all([*existing, candidates[0]]):
                raise ConfigError("device", error.reason)
            chosen, result = await self._probe(candidates, given)
            log.info("meter probed", **describe_probe(result), port=chosen.port,
                     address=chosen.address)
            table = self._table(chosen, result.encoding)
            await self._edits.apply(lambda doc: append_table(doc, TABLE, table))
        return True

    @staticmethod
    def _address_taken(existing: list[MercuryConfig], config: MercuryConfig,
                       given: bool) -> bool:
        for meter in existing:
            if meter.port == config.port and meter.address == config.address:
                if given:
                    raise ConfigError("device.address",
                                      f"address {config.address} on {config.port} is already "
                                      f"used by meter {meter.serial_number}")
                return True
        return False

    async def _probe(self, candidates: list[MercuryConfig], given: bool
                     ) -> tuple[MercuryConfig, ProbeResult]:
        """The first candidate address the meter answers at, with what it answered."""
        failures: list[str] = []
        for config in candidates:
            try:
                return config, await self.buses.probe(config)
            except DeviceError as exc:
                if given or len(candidates) == 1:
                    raise
                failures.append(f"address {config.address}: {exc}")
        addresses = ", ".join(str(c.address) for c in candidates)
        raise DeviceError(f"meter {candidates[0].serial_number} does not answer on "
                          f"{candidates[0].port} at its factory address ({addresses}); give "
                          f"its address if it was changed ({'; '.join(failures)})")

    @staticmethod
    def _table(config: MercuryConfig, encoding: p.PasswordEncoding) -> dict[str, Any]:
        table: dict[str, Any] = {
            "port": config.port,
            "port_settings": config.port_settings.as_table(),
            "serial_number": config.serial_number,
            "device_model": config.device_model,
            "address": config.address,
            "access_level": config.access_level,
            "password_1": config.password_1,
            "password_2": config.password_2,
        }
        if encoding != "digits":
            table["password_encoding"] = encoding
        return table

    async def delete_device(self, serial_number: str) -> bool:
        if not isinstance(serial_number, str) or not serial_number.strip():
            raise ConfigError("serial_number", "expected a serial number like \"32297700-17\"")
        digits = p.serial_digits(serial_number)
        async with self._lock:
            if not any(meter.digits == digits for meter in self._meters()):
                raise ConfigError("serial_number", f"no meter with serial number "
                                                   f"{serial_number} is added")

            def mutate(doc: tomlkit.TOMLDocument) -> None:
                remove_tables(doc, TABLE, lambda table: p.serial_digits(
                    str(table.get("serial_number", ""))) == digits)

            await self._edits.apply(mutate)
        return True


__all__ = ["MercuryBackend", "device_config", "list_serial_ports"]
