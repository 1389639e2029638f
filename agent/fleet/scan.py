"""``webbo scan FIRST-LAST|CIDR``: one sweep of an address range, without the agent.

Every miner driver installed takes part, with the settings of ``-c FILE`` (ports, credentials,
timeouts, concurrency) when given, else each driver's defaults (real firmware ports: 4028, 80,
4433). Found devices are identified and polled once; nothing is written anywhere.
"""

from __future__ import annotations

import ipaddress
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import msgspec
import structlog

from webbo.agent.core.config import (
    Config,
    ConfigError,
    IPRange,
    IPRangeGroup,
    NetworkSection,
    PluginInstance,
)
from webbo.agent.core.contract import PluginContext
from webbo.agent.core.plugins import PluginRegistry
from webbo.agent.fleet.discovery import MinerFleet

__all__ = ["parse_target", "scan", "scan_config"]

log = structlog.get_logger("webbo.scan")


def parse_target(text: str) -> tuple[str, str]:
    """``10.0.0.1-10.0.0.200``, ``10.0.0.1-200`` or ``10.0.0.0/24`` → (first, last)."""
    text = text.strip()
    try:
        if "/" in text:
            network = ipaddress.IPv4Network(text, strict=False)
            return str(network.network_address), str(network.broadcast_address)
        if "-" in text:
            first_text, last_text = (part.strip() for part in text.split("-", 1))
            first = ipaddress.IPv4Address(first_text)
            if last_text.isdigit():
                last = ipaddress.IPv4Address(int(first) & ~0xFF | int(last_text))
            else:
                last = ipaddress.IPv4Address(last_text)
        else:
            first = last = ipaddress.IPv4Address(text)
    except ValueError as exc:
        raise ConfigError("", f"not an IPv4 range {text!r}: {exc} "
                          "(use FIRST-LAST, FIRST-N or CIDR)") from None
    if first > last:
        raise ConfigError("", f"{last} is before {first}")
    return str(first), str(last)


def scan_config(registry: PluginRegistry, config: Config | None, first: str, last: str
                ) -> Config:
    """The config of one scan: the given one (or defaults) with one range, first..last."""
    base = config or Config()
    inputs = list(base.inputs)
    miner_names = {i.name for i in inputs if registry.inputs[i.name].kind == "miner"}
    if not miner_names:
        for name, itype in sorted(registry.inputs.items()):
            if itype.kind == "miner":
                inputs.append(PluginInstance("inputs", name, 0, itype.config()))
    range_ = IPRange(first=first, last=last, name="scan",
                     uuid="00000000-0000-4000-8000-000000000000")
    network = NetworkSection(ip_range_groups=[IPRangeGroup(
        name="scan", uuid="00000000-0000-4000-8000-000000000001", ip_ranges=[range_])])
    size = range_.size
    if size > base.agent.max_addresses:
        raise ConfigError("", f"{first}-{last} holds {size} addresses, more than "
                          f"agent.max_addresses = {base.agent.max_addresses}")
    return msgspec.structs.replace(base, network=network, inputs=inputs)


class Progress:
    """A one-line progress bar on a terminal (stderr), refreshed at most 10 times a second."""

    def __init__(self, total: int, out: TextIO = sys.stderr) -> None:
        self.total = max(1, total)
        self.done = 0
        self.out = out
        self.enabled = out.isatty() and total >= 256
        self._last = 0.0

    def step(self) -> None:
        self.done += 1
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= 0.1 or self.done == self.total:
            self._last = now
            width = 30
            filled = int(width * self.done / self.total)
            self.out.write(f"\rscanning [{'#' * filled}{'.' * (width - filled)}] "
                           f"{self.done}/{self.total}")
            self.out.flush()

    def close(self) -> None:
        if self.enabled:
            self.out.write("\n")
            self.out.flush()


async def scan(registry: PluginRegistry, config: Config,
               on_address: Callable[[], None] | None = None) -> tuple[list[dict[str, Any]],
                                                                        MinerFleet]:
    """Sweep the config's range once; the found devices as rows (sorted by address)."""
    fleet = MinerFleet(PluginContext(config=config, state_dir=config.state_dir, log=log,
                                     inputs=registry.inputs), persistent=False)
    fleet.configure(config)
    try:
        await fleet.sweep(None, on_address=on_address)
    finally:
        await fleet.close()
    rows = []
    for device in sorted(fleet.inventory.devices(),
                         key=lambda d: ipaddress.IPv4Address(d.ip or "0.0.0.0")):
        reading = device.reading
        rows.append({
            "ip": device.ip, "mac": device.mac, "make": device.make, "model": device.model,
            "firmware": device.firmware,
            "hashrate_ths": round(reading.hashrate_ths, 3)
            if reading and reading.hashrate_ths is not None else None,
            "hostname": device.hostname, "serial": device.serial, "driver": device.driver,
            "mac_source": device.mac_source, "state": device.state, "error": device.error,
        })
    return rows, fleet


def table(rows: list[dict[str, Any]]) -> str:
    """Rows as an aligned text table."""
    columns = ("ip", "mac", "make", "model", "firmware", "hashrate_ths", "state")
    cells = [[("" if r[c] is None else str(r[c])) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    for row in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)
