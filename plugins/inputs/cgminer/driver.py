"""The ``cgminer`` miner driver: any cgminer-compatible RPC on 4028 (bmminer included).

It is the generic fallback (lowest priority): it claims any address whose RPC answers
``version``, after the make-specific drivers have declined it.

* Identification: ``version`` (and ``devdetails`` for a model name); the MAC comes from the RPC
  where the firmware gives one (Avalon ``VERSION[0].MAC``), else this host's neighbour table
  (``/proc/net/arp``: devices on the same L2 segment), else it is *derived* from the IP
  (``02:00:`` + the four octets, ``mac_source="derived"``) — such a device is keyed by its
  address, so a DHCP move makes it a new device.
* Poll: ``summary+pools+devs`` (``+stats`` on bmminer) on one connection; a firmware that
  refuses ``+`` is remembered per device and then asked one command per connection.
* Control, where the firmware allows it (:mod:`.control`): pools through privileged RPC when
  ``write_access`` says the firmware grants it; reboot through SSH when credentials are set.
  LED and work mode have no generic cgminer command: they are not offered.
"""

from __future__ import annotations

from typing import Any

from webbo.agent.plugin import (
    PRIORITY_GENERIC,
    Device,
    DeviceError,
    DriverContext,
    Identity,
    Probe,
    Reading,
    neighbour_mac,
    normalise_mac,
)
from webbo.plugins.common.rpc4028 import client as rpc
from webbo.plugins.common.rpc4028.parse import first, reading_from, section
from webbo.plugins.inputs.cgminer.config import CgminerConfig
from webbo.plugins.inputs.cgminer.control import CgminerControl

__all__ = ["CgminerConfig", "CgminerDriver", "derive_mac", "model_of"]


def derive_mac(ip: str) -> str:
    """``02:00:`` + the address's octets: a locally administered MAC standing for the IP."""
    a, b, c, d = (int(x) for x in ip.split("."))
    return f"02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}"


def _clean_model(text: str) -> str:
    text = text.strip()
    if " (" in text:
        text = text.split(" (")[0]
    if text.endswith("_I"):
        text = text[:-2]
    return text


def model_of(version: dict[str, Any], details: dict[str, Any] | None = None
             ) -> tuple[str, str, str]:
    """(make, model, firmware) from ``version`` (and ``devdetails``)."""
    info = first(version, "VERSION")
    firmware = ""
    for key in ("CompileTime", "VERSION", "Miner"):
        value = info.get(key)
        if isinstance(value, str) and value:
            firmware = value
            break
    software = ""
    for key in ("BMMiner", "CGMiner", "Cgminer", "BCFMiner", "BOSminer", "LUXminer"):
        value = info.get(key)
        if isinstance(value, str) and value:
            software = f"{key.lower()} {value}"
            break
    if not firmware:
        firmware = software
    prod = info.get("PROD")
    if isinstance(prod, str) and prod:
        return "Avalon" if "avalon" in prod.lower() else prod.split(" ")[0], prod.strip(), firmware
    kind = info.get("Type")
    if isinstance(kind, str) and kind:
        model = _clean_model(kind)
        return model.split(" ")[0] or "cgminer", model, firmware
    for detail in section(details, "DEVDETAILS"):
        model = detail.get("Model")
        if isinstance(model, str) and model.strip():
            return "cgminer", model.strip(), firmware
    return "cgminer", "cgminer", firmware


class CgminerDriver(CgminerControl):
    """Any cgminer-compatible RPC on 4028 (generic fallback)."""

    name = "cgminer"
    priority = PRIORITY_GENERIC
    make = "cgminer"
    config: CgminerConfig

    def __init__(self, config: CgminerConfig, context: DriverContext) -> None:
        super().__init__(config, context)
        self.ports = (config.port,)
        self.timeout = float(config.timeout) if config.timeout else None
        self.no_multi: set[str] = set()
        """MACs of devices whose firmware refuses ``+`` (asked one command at a time)."""

    async def identify(self, probe: Probe) -> Identity | None:
        port = self.config.port
        if port not in await probe.open_ports():
            return None
        version = await rpc.probe_call(probe, "version", port=port, timeout=self.timeout)
        if not first(version, "VERSION"):
            return None
        try:
            details = await rpc.probe_call(probe, "devdetails", port=port, timeout=self.timeout)
        except DeviceError:
            details = {}
        make, model, firmware = model_of(version, details)
        info = first(version, "VERSION")
        mac, source = normalise_mac(str(info.get("MAC", "") or "")), "device"
        if mac is None:
            mac, source = normalise_mac(neighbour_mac(probe.ip)), "arp"
        if mac is None:
            mac, source = derive_mac(probe.ip), "derived"
        bitmain = "BMMiner" in info or make == "Antminer"
        return Identity(driver=self.name, mac=mac, make=make, model=model, firmware=firmware,
                        mac_source=source,
                        extra={"api": str(info.get("API", "")), "stats": "1" if bitmain else ""})

    def commands_for(self, device: Device) -> list[str]:
        if device.extra.get("stats"):
            return ["summary", "stats", "pools"]
        return ["summary", "pools", "devs"]

    async def poll(self, device: Device) -> Reading:
        allow = self.config.multi_command and device.mac not in self.no_multi
        parts, joined = await rpc.multicall(self.net, device.ip, self.commands_for(device),
                                            port=self.config.port, timeout=self.timeout,
                                            allow_multi=allow)
        if allow and not joined:
            self.no_multi.add(device.mac)
        return reading_from(parts)
