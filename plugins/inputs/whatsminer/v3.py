"""Polling and control of a Whatsminer over API v3 (TCP 4433, firmware from late 2024).

Poll: ``get.miner.status`` ``summary+pools`` and ``edevs``, ``get.device.info`` (LED, sleep,
error codes, PSU fan, host name), concurrently, and every ``settings_every`` polls
``get.miner.setting`` (power mode).

Control: reboot → ``set.system.reboot``; LED → ``set.system.led``; sleep / wake →
``set.miner.service`` stop / start; power mode → ``set.miner.power_mode``; pools →
``set.miner.pools`` (encrypted with the write's token digest).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from webbo.agent.plugin import DeviceError, LedStatus, Reading, WorkMode
from webbo.plugins.inputs.whatsminer.api_v3 import NO_PARAM, V3Api
from webbo.plugins.inputs.whatsminer.backend import LED_BLINK, Backend, optional, slots_of
from webbo.plugins.inputs.whatsminer.commands import Command
from webbo.plugins.inputs.whatsminer.normalise import (
    led_from,
    v3_pools,
    v3_reading,
    v3_work_mode,
)

__all__ = ["V3Backend"]

_POWER_MODE = {WorkMode.NORMAL: "normal", WorkMode.LOW_POWER: "low"}


def _part(msg: Any, name: str) -> dict[str, Any]:
    part = msg.get(name) if isinstance(msg, dict) else None
    return part if isinstance(part, dict) else {}


class V3Backend(Backend):
    api_name = "v3"

    def __init__(self, api: V3Api, account: str, password: str, confirm_timeout: float,
                 settings_every: int = 1) -> None:
        super().__init__(confirm_timeout, settings_every)
        self.api = api
        self.account = account
        self.password = password

    async def poll(self, ip: str, firmware: str | None = None) -> Reading:
        status, edevs, info, setting = await asyncio.gather(
            self.api.get(ip, "get.miner.status", "summary+pools"),
            optional(self.api.get(ip, "get.miner.status", "edevs")),
            optional(self.api.get(ip, "get.device.info")),
            self.settings(ip, self.api.get(ip, "get.miner.setting")),
        )
        reading = v3_reading(time.time_ns(), status, edevs, info=info, setting=setting)
        if reading.firmware is None and firmware:
            reading.firmware = firmware
        return reading

    async def write(self, ip: str, cmd: str, param: Any = NO_PARAM, *, sensitive: bool = False,
                    closes: bool = False) -> Any:
        return await self.api.set(ip, self.account, self.password, cmd, param,
                                  sensitive=sensitive, closes=closes)

    async def reboot(self, ip: str) -> None:
        await self.write(ip, "set.system.reboot", closes=True)

    async def get_led(self, ip: str) -> LedStatus:
        system = _part(await self.api.get(ip, "get.device.info", "system"), "system")
        led = led_from(system.get("ledstatus"))
        if led is None:
            raise DeviceError("get_led: get.device.info shows no ledstatus")
        return led

    async def write_led(self, ip: str, status: LedStatus) -> None:
        param: Any = [dict(LED_BLINK)] if status == LedStatus.BLINK else "auto"
        await self.write(ip, "set.system.led", param)

    async def _state(self, ip: str) -> tuple[bool | None, str, WorkMode]:
        """(working, power-mode setting, work mode)."""
        miner, setting = await asyncio.gather(self.api.get(ip, "get.device.info", "miner"),
                                              self.api.get(ip, "get.miner.setting"))
        working = _part(miner, "miner").get("working")
        power_mode = str(setting.get("power-mode", "")) if isinstance(setting, dict) else ""
        mode = v3_work_mode(miner, setting) or WorkMode.UNKNOWN
        return (None if working is None else str(working).lower() == "true"), power_mode, mode

    async def get_work_mode(self, ip: str) -> WorkMode:
        return (await self._state(ip))[2]

    async def write_work_mode(self, ip: str, mode: WorkMode) -> None:
        working, power_mode, _ = await self._state(ip)
        if mode == WorkMode.SLEEP:
            if working is not False:
                await self.write(ip, "set.miner.service", "stop")
            return
        if working is False:
            await self.write(ip, "set.miner.service", "start")
        if power_mode.lower() != _POWER_MODE[mode]:
            await self.write(ip, "set.miner.power_mode", _POWER_MODE[mode])

    async def read_pools(self, ip: str) -> list[tuple[str, str]]:
        msg = await self.api.get(ip, "get.miner.status", "pools")
        return slots_of(v3_pools(msg.get("pools") if isinstance(msg, dict) else None))

    async def write_pools(self, ip: str, pools: list[dict[str, str]]) -> None:
        param = [{"pool": p["address"], "worker": p["worker"], "passwd": p["passwd"]}
                 for p in pools]
        await self.write(ip, "set.miner.pools", param, sensitive=True)

    async def command(self, ip: str, command: Command, args: Any) -> Any:
        self.forget_settings(ip)
        cmd, param = command.v3(args)
        return await self.write(ip, cmd, NO_PARAM if param is None else param,
                                closes=command.closes(args))
