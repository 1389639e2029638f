"""Polling and control of a Whatsminer over API v3 (TCP 4433, firmware from late 2024).

Poll: one exchange on the connection kept open to the miner (v3 keeps an idle connection for
300 s, so with the usual intervals it is reused from cycle to cycle): ``get.miner.status``
``summary+pools+edevs`` and ``get.device.info`` (LED, sleep, error codes, PSU fan, host
name) sent together, and every ``settings_every`` polls ``get.miner.setting`` (power mode)
with them. A firmware that refuses the three-part ``get.miner.status`` is asked
``summary+pools`` and ``edevs`` apart (remembered per miner); one that answers only one request
at a time is asked one at a time (:meth:`V3Api.reads`).

Control: reboot → ``set.system.reboot``; LED → ``set.system.led``; sleep / wake →
``set.miner.service`` stop / start; power mode → ``set.miner.power_mode``; pools →
``set.miner.pools`` (encrypted with the write's token digest).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from webbo.agent.plugin import DeviceError, LedStatus, Reading, WorkMode
from webbo.plugins.common.rpc4028.client import GarbledReply
from webbo.plugins.inputs.whatsminer.api_v3 import NO_PARAM, V3Api, read_request, v3_error
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
_STATUS_ALL = read_request("get.miner.status", "summary+pools+edevs")
_STATUS = read_request("get.miner.status", "summary+pools")
_INFO = read_request("get.device.info")
_SETTING = read_request("get.miner.setting")
_REFUSED_PARAM = frozenset({-2, -3})
"""Codes of a firmware that does not take a ``param`` it was given."""


def _ok(reply: dict[str, Any] | None) -> Any:
    """The ``msg`` of a successful reply, None otherwise (a read the poll can do without)."""
    return reply.get("msg") if reply is not None and reply.get("code") == 0 else None


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
        self.split_status: set[str] = set()
        """Miners that refuse ``summary+pools+edevs`` in one ``get.miner.status``."""

    async def poll(self, ip: str, firmware: str | None = None, model: str = "") -> Reading:
        joined = ip not in self.split_status
        due = self.settings_due(ip)
        requests = [_STATUS_ALL if joined else _STATUS, _INFO]
        if due:
            requests.append(_SETTING)
        replies = await self.api.reads(ip, requests)
        status = replies.get("get.miner.status")
        if status is None:
            raise GarbledReply("get.miner.status: no answer among the replies")
        if status.get("code") != 0:
            if joined and status.get("code") in _REFUSED_PARAM:
                self.split_status.add(ip)  # ask the parts apart from now on
                return await self.poll(ip, firmware, model)
            raise v3_error("get.miner.status", status)
        msg = status.get("msg")
        edevs = msg if joined else await optional(self.api.get(ip, "get.miner.status", "edevs"))
        setting = self.settings_seen(ip, _ok(replies.get("get.miner.setting")), asked=due)
        reading = v3_reading(time.time_ns(), msg, edevs, info=_ok(replies.get("get.device.info")),
                             setting=setting, model=model)
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
