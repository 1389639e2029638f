"""The Whatsminer miner driver: identification, polls and control actions.

Identification (reference §3.7, §5.2): one ``+``-joined request on 4028,
``devdetails+summary+edevs+pools``: ``devdetails`` naming the ``bitmicro`` driver (or
btminer) is a Whatsminer, with its model; the summary gives the firmware (``Firmware Version``;
``get_version`` only where it does not) and the MAC; ``get_miner_info`` the host name and
serial (and the MAC on firmwares whose summary lacks it). The rest of that first answer is
the miner's first poll, which the fleet makes right after: it is not asked again. Firmware
dated 2024-11-01 or later speaks API v3 on 4433, as does anything whose 4433 answers
``get.device.info`` with a ``miner`` section (also when 4028 is closed). The choice is cached in
the inventory (``extra["api"]``), so polls do not ask again. The parts of the joined answer are
left in the probe, so the generic cgminer driver, asked after this one, does not ask
``devdetails`` again either.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import msgspec

from webbo.agent.plugin import (
    PRIORITY_MAKE,
    Action,
    Device,
    DeviceError,
    DeviceTimeout,
    DriverContext,
    Identity,
    LedStatus,
    MinerDriver,
    MiningPool,
    Probe,
    Reading,
    WorkMode,
    normalise_mac,
)
from webbo.plugins.common.rpc4028 import client as rpc
from webbo.plugins.inputs.whatsminer.api_v2 import V2Api, msg_of
from webbo.plugins.inputs.whatsminer.api_v3 import NO_PARAM, V3Api
from webbo.plugins.inputs.whatsminer.backend import Backend, optional
from webbo.plugins.inputs.whatsminer.commands import parse_command
from webbo.plugins.inputs.whatsminer.config import WhatsminerConfig
from webbo.plugins.inputs.whatsminer.normalise import section
from webbo.plugins.inputs.whatsminer.pool_memory import PoolMemory
from webbo.plugins.inputs.whatsminer.power import has_power_percent, set_power_v2, set_power_v3
from webbo.plugins.inputs.whatsminer.tokens import TokenCache
from webbo.plugins.inputs.whatsminer.v2 import V2Backend
from webbo.plugins.inputs.whatsminer.v3 import V3Backend

__all__ = ["MAKE", "NAME", "V3_SINCE", "WhatsminerDriver", "firmware_date"]

NAME = "whatsminer"
MAKE = "Whatsminer"
V3_SINCE = 20241101
"""Firmware from this date on answers API v3 (pyasic: after 2024-11-00; asic-rs: ≥ 2024-11-0)."""
_DATE = re.compile(r"(\d{8})")


def firmware_date(fw: Any) -> int | None:
    """20250321 from ``"20250321.14.REL"`` (or ``"'20210322.22.REL'"``); None if absent."""
    match = _DATE.search(fw) if isinstance(fw, str) else None
    return int(match.group(1)) if match else None


def is_btminer(reply: Any) -> bool:
    """A 4028 answer from btminer names its ``bitmicro`` driver (or btminer itself)."""
    text = msgspec.json.encode(reply).upper()
    return b"BITMICRO" in text or b"BTMINER" in text


_FIRST = ("devdetails", "summary", "edevs", "pools")
"""Identification's one joined request: what the miner is, and its first poll."""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class WhatsminerDriver(MinerDriver):
    """MicroBT Whatsminer: btminer API v2 (4028) and v3 (4433)."""

    name = NAME
    priority = PRIORITY_MAKE
    """Before the generic cgminer driver, which would also read a Whatsminer's 4028."""
    make = MAKE
    config: WhatsminerConfig

    def __init__(self, config: WhatsminerConfig, context: DriverContext) -> None:
        super().__init__(config, context)
        # one token cache and one pool-password memory per agent, whatever the instances
        tokens = context.shared.get(TokenCache)
        self.pool_memory = context.shared.get(PoolMemory, lambda: PoolMemory(context.state_dir))
        timeout = float(config.timeout) if config.timeout is not None else None
        confirm = float(config.confirm_timeout)
        self.v2 = V2Backend(
            V2Api(self.net, port=config.port, timeout=timeout,
                  write_timeout=float(config.write_timeout), tokens=tokens,
                  token_lifetime=float(config.token_lifetime)),
            config.password, confirm, config.settings_every)
        self.v3 = V3Backend(
            V3Api(self.net, port=config.v3_port, timeout=timeout,
                  write_timeout=float(config.write_timeout)),
            config.v3_account, config.v3_password, confirm, config.settings_every)
        self.ports = (config.port, config.v3_port)

    # -- identification -------------------------------------------------------------------

    async def identify(self, probe: Probe) -> Identity | None:
        open_ports = await probe.open_ports()
        v3_open = self.config.v3_port in open_ports
        silent: DeviceTimeout | None = None
        if self.config.port in open_ports:
            try:
                parts = await self._first_answer(probe)
            except DeviceTimeout as exc:  # accepts, answers nothing in time
                parts, silent = {}, exc
            details = parts.get("devdetails")
            if details is not None and is_btminer(details):
                return await self._identify_v2(probe, parts, v3_open)
        if v3_open and self.config.api != "v2":
            info = await self._v3_info(probe)
            if info is not None:
                return self._identity_v3(info)
        if silent is not None:
            raise silent  # the fleet records a device that times out, not an unknown one
        return None

    async def _first_answer(self, probe: Probe) -> dict[str, dict[str, Any]]:
        """``devdetails+summary+edevs+pools`` joined ({} if nothing usable came), each part
        left in the probe for the drivers asked after this one; plain ``devdetails`` where
        the join is refused."""
        port = self.config.port

        async def ask() -> dict[str, dict[str, Any]]:
            try:
                parts = await rpc.joined(probe.net, probe.ip, _FIRST, port=port,
                                         timeout=self.v2.api.timeout)
            except DeviceTimeout as exc:
                probe.tell(("rpc", port, "devdetails"), exc)  # no second wait for it
                raise
            except DeviceError as exc:
                probe.note(f"{NAME}: {'+'.join(_FIRST)}: {exc}")
                return {}
            for name, part in (parts or {}).items():
                probe.tell(("rpc", port, name), part)
            return parts or {}

        parts = await probe.ask((NAME, port, "first"), ask)
        if parts:
            return parts
        try:
            return {"devdetails": await rpc.probe_call(probe, "devdetails", port=port,
                                                       timeout=self.v2.api.timeout)}
        except DeviceError as exc:
            probe.note(f"{NAME}: devdetails: {exc}")
            return {}

    async def _v3_info(self, probe: Probe) -> dict[str, Any] | None:
        """``get.device.info`` on 4433 if it answers like a Whatsminer (asked once per sweep)."""
        try:
            info = await probe.ask(("whatsminer-v3", self.config.v3_port, "get.device.info"),
                                   lambda: self.v3.api.get(probe.ip, "get.device.info"))
        except DeviceError as exc:
            probe.note(f"{NAME}: get.device.info: {exc}")
            return None
        return info if isinstance(info, dict) and isinstance(info.get("miner"), dict) else None

    async def _identify_v2(self, probe: Probe, parts: dict[str, dict[str, Any]],
                           v3_open: bool) -> Identity:
        ip = probe.ip
        api = self.v2.api
        summaries = section(parts.get("summary"), "SUMMARY")
        summary = summaries[0] if summaries else {}
        firmware = str(summary.get("Firmware Version") or "").strip("'")
        # get_version (never joined by the firmware) is the only place API v1 shows, and v1
        # has no power percent: asked beside get_miner_info, so the wait is one exchange.
        version, info = await asyncio.gather(optional(api.read(ip, "get_version")),
                                             optional(api.read(ip, "get_miner_info")))
        version_msg = _dict(msg_of(version) if version else None)
        if not firmware:
            firmware = str(version_msg.get("fw_ver") or "").strip("'")
        info_msg = _dict(msg_of(info) if info else None)
        mac = normalise_mac(info_msg.get("mac")) or normalise_mac(summary.get("MAC"))
        if mac is None:
            raise DeviceError(f"{ip}: a Whatsminer that shows no usable MAC "
                              "(get_miner_info and summary)")
        api_name = await self._choose_api(probe, firmware, v3_open)
        models = [d.get("Model") for d in section(parts.get("devdetails"), "DEVDETAILS")]
        model = next((m for m in models if isinstance(m, str) and m), "Whatsminer")
        extra = {"api": api_name}
        api_ver = str(version_msg.get("api_ver") or "").replace("whatsminer v", "")
        if api_ver:
            extra["api_ver"] = api_ver
        if api_name == "v2" and "summary" in parts:
            self.v2.prefetch(ip, parts, info)
        return Identity(driver=NAME, mac=mac, make=MAKE, model=model, firmware=firmware,
                        hostname=str(info_msg.get("hostname") or ""),
                        serial=str(info_msg.get("minersn") or ""), extra=extra)

    async def _choose_api(self, probe: Probe, firmware: str, v3_open: bool) -> str:
        if self.config.api != "auto":
            return self.config.api
        if not v3_open:
            return "v2"
        date = firmware_date(firmware)
        if date is not None and date >= V3_SINCE:
            return "v3"
        return "v3" if await self._v3_info(probe) is not None else "v2"

    def _identity_v3(self, info: dict[str, Any]) -> Identity:
        network, miner, system = (_dict(info.get(k)) for k in ("network", "miner", "system"))
        mac = normalise_mac(network.get("mac"))
        if mac is None:
            raise DeviceError("a Whatsminer (API v3) that shows no usable MAC")
        return Identity(driver=NAME, mac=mac, make=MAKE,
                        model=str(miner.get("type") or "Whatsminer"),
                        firmware=str(system.get("fwversion") or ""),
                        hostname=str(network.get("hostname") or ""),
                        serial=str(miner.get("miner-sn") or ""),
                        extra={"api": "v3", "api_ver": str(system.get("api") or "")})

    # -- polls ----------------------------------------------------------------------------

    def backend_for(self, device: Device) -> Backend:
        api = self.config.api if self.config.api != "auto" else device.extra.get("api", "v2")
        return self.v3 if api == "v3" else self.v2

    async def poll(self, device: Device) -> Reading:
        return await self.backend_for(device).poll(device.ip, device.firmware or None,
                                                   device.model)

    # -- control ----------------------------------------------------------------------------

    async def reboot(self, device: Device) -> None:
        await self.backend_for(device).reboot(device.ip)

    async def get_led(self, device: Device) -> LedStatus:
        return await self.backend_for(device).get_led(device.ip)

    async def set_led(self, device: Device, status: LedStatus) -> None:
        await self.backend_for(device).set_led(device.ip, status)

    async def get_work_mode(self, device: Device) -> WorkMode:
        return await self.backend_for(device).get_work_mode(device.ip)

    async def set_work_mode(self, device: Device, mode: WorkMode) -> None:
        await self.backend_for(device).set_work_mode(device.ip, mode)

    async def get_pools(self, device: Device) -> list[MiningPool]:
        slots = await self.backend_for(device).read_pools(device.ip)
        return [MiningPool(address=url, worker=worker,
                           passwd=self.pool_memory.password(device.mac, i, url, worker))
                for i, (url, worker) in enumerate(slots)]

    async def set_pools(self, device: Device, pools: list[MiningPool]) -> None:
        slots = [{"address": p.address, "worker": p.worker, "passwd": p.passwd} for p in pools]
        await self.backend_for(device).set_pools(device.ip, slots)
        await asyncio.to_thread(self.pool_memory.remember, device.mac, slots)

    async def command(self, device: Device, name: str, args: dict[str, Any]) -> Any:
        command, checked = parse_command({"name": name, "args": args})
        return await self.backend_for(device).command(device.ip, command, checked)

    async def raw(self, device: Device, command: str, params: dict[str, Any],
                  write: bool) -> Any:
        """A command of the miner's API as the ``whatsminer`` library sends it: on API v2 a
        read (``get_read_only_info``) goes in clear and a write (``exec_command``, with its
        additional parameters) is encrypted with the current token, renewed once when the
        miner says it expired; on API v3 ``get.*`` reads and ``set.*`` writes (``params``:
        ``{"param": ...}``) — a command without the dotted v3 form goes to the v2 port, which
        v3 firmware still serves for reads. Writes only where ``raw_writes`` allows; never
        retried."""
        ip = device.ip
        if command.startswith(("get.", "set.")):
            unknown = sorted(set(params) - {"param"})
            if unknown:
                raise DeviceError(f"{command}: unknown parameter {unknown[0]!r} (API v3 "
                                  'commands take "param")')
            param = params.get("param", NO_PARAM)
            if not command.startswith("set."):
                return await self.v3.api.get(ip, command, param)
            self._raw_write_allowed(command, write)
            return await self.v3.write(ip, command, param)
        if not write:
            if params:
                raise DeviceError(f"{command}: a read takes no parameters (send it as a write "
                                  "if it is one)")
            return await self.v2.api.read(ip, command)
        self._raw_write_allowed(command, write)
        return await self.v2.api.write(ip, self.v2.password, command,
                                       {k: v for k, v in params.items()})

    def _raw_write_allowed(self, command: str, write: bool) -> None:
        if not write:
            raise DeviceError(f"{command}: this command changes the miner; send it as a write "
                              "(write: true)")
        if not self.config.raw_writes:
            raise DeviceError(f"{command}: raw writes are off for these miners "
                              "([[inputs.whatsminer]] raw_writes = false)")

    # -- power targets (the power room curtails with these) ---------------------------------

    def supports(self, device: Device | None = None) -> frozenset[Action]:
        offered = super().supports(device)
        if device is not None and not self._power_percent(device):
            offered = offered - {Action.SET_POWER_LIMIT}
        return offered

    def _power_percent(self, device: Device) -> bool:
        backend = self.backend_for(device)
        return has_power_percent(backend.api_name, device.extra.get("api_ver", ""))

    def why_unsupported(self, action: Action, device: Device) -> str:
        if action == Action.SET_POWER_LIMIT:
            return "(API v1 firmware has no power percent; use the work modes)"
        return ""

    async def set_power_limit(self, device: Device, watts: int) -> None:
        """Hold the miner at or under ``watts`` with a temporary power percent of its power
        limit (:mod:`.power`: no restart, gone at the next one)."""
        if not self._power_percent(device):
            raise self.unsupported(Action.SET_POWER_LIMIT, device)
        backend = self.backend_for(device)
        if isinstance(backend, V3Backend):
            await set_power_v3(backend, device.ip, watts)
        else:
            assert isinstance(backend, V2Backend)
            await set_power_v2(backend, device.ip, watts)
