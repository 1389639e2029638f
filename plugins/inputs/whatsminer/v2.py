"""Polling and control of a Whatsminer over API v2 (firmware up to late 2024).

Poll: one connection for ``summary+edevs+pools`` (``+``-joined; one command per connection on
a firmware that refuses that, remembered per miner), then ``get_error_code`` (codes with their
times: a flat ``get_`` command, which btminer never joins) on a second one. What the summary
already tells is not asked again: ``status`` only when the summary shows no hashrate (is it
asleep?), ``get_psu`` only when the summary has no PSU fan; and every ``settings_every`` polls
``get_miner_info`` (LED, host name). A command the firmware does not know (``get_error_code``
before API 2.0.1, ``status`` on some builds) is not asked again of that miner: the error codes
then come from the summary's ``Error Code N`` fields, the work mode from its ``Power Mode``
and its hashrate.

Control (reference §3.3): reboot → ``reboot``; LED → ``set_led``; work mode → ``power_off`` /
``power_on`` / ``set_normal_power`` / ``set_low_power``; pools → ``update_pools``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from webbo.agent.plugin import DeviceError, LedStatus, Reading, WorkMode
from webbo.plugins.common.rpc4028.client import RpcError
from webbo.plugins.inputs.whatsminer.api_v2 import CODE_INVALID_CMD, V2Api, msg_of
from webbo.plugins.inputs.whatsminer.backend import LED_BLINK, Backend, optional, slots_of
from webbo.plugins.inputs.whatsminer.commands import Command
from webbo.plugins.inputs.whatsminer.normalise import (
    led_from,
    section,
    v2_hashing,
    v2_mining,
    v2_pools,
    v2_reading,
    v2_work_mode,
)

__all__ = ["V2Backend"]

_MODE_WRITES = {WorkMode.NORMAL: "set_normal_power", WorkMode.LOW_POWER: "set_low_power"}
PREFETCH_FOR = 3.0
"""Seconds what identification read may stand for the miner's first poll."""


class V2Backend(Backend):
    api_name = "v2"

    def __init__(self, api: V2Api, password: str, confirm_timeout: float,
                 settings_every: int = 1) -> None:
        super().__init__(confirm_timeout, settings_every)
        self.api = api
        self.password = password
        # What each miner's firmware lacks, learnt at its first polls (not asked again):
        self.no_multi: set[str] = set()
        """``+``-joined reports refused."""
        self.no_error_code: set[str] = set()
        """No ``get_error_code`` (before API 2.0.1): codes come in the summary."""
        self.no_status: set[str] = set()
        """No ``status``: the summary tells the work mode."""
        self.no_psu: set[str] = set()
        """No ``get_psu``."""
        self._prefetched: dict[str, tuple[float, dict[str, dict[str, Any]], Any]] = {}

    def prefetch(self, ip: str, reports: dict[str, dict[str, Any]], info: Any) -> None:
        """What identification read (the joined reports, ``get_miner_info``): the miner's
        first poll, made right after, uses it instead of asking again."""
        now = time.monotonic()
        if len(self._prefetched) > 4096:  # polls that never came: forget the stale ones
            self._prefetched = {k: v for k, v in self._prefetched.items()
                                if now - v[0] < PREFETCH_FOR}
        self._prefetched[ip] = (now, reports, info)

    def _take_prefetched(self, ip: str) -> tuple[dict[str, dict[str, Any]], Any] | None:
        entry = self._prefetched.pop(ip, None) if self._prefetched else None
        if entry is None or time.monotonic() - entry[0] > PREFETCH_FOR:
            return None
        return entry[1], entry[2]

    # -- poll -----------------------------------------------------------------------------

    async def reports(self, ip: str) -> dict[str, dict[str, Any]]:
        """summary, edevs and pools; summary is required, the others are best effort."""
        if ip not in self.no_multi:
            try:
                parts, joined = await self.api.reports(ip, ("summary", "edevs", "pools"))
            except RpcError:
                joined = False  # one of them is refused by this firmware: ask each on its own
            if joined:
                return parts
            self.no_multi.add(ip)
        parts = {"summary": await self.api.read(ip, "summary", key="command")}
        for name in ("edevs", "devs"):
            devs = await optional(self.api.read(ip, name, key="command"))
            if devs is not None:
                parts["edevs"] = devs
                break
        pools = await optional(self.api.read(ip, "pools", key="command"))
        if pools is not None:
            parts["pools"] = pools
        return parts

    async def flat(self, ip: str, command: str, unknown: set[str]) -> tuple[Any, bool] | None:
        """(``Msg``, cut short) of a flat read the poll can do without; None if it failed. A
        firmware that does not know the command is put in ``unknown`` (not asked again)."""
        if ip in unknown:
            return None
        try:
            reply, truncated = await self.api.read_full(ip, command)
        except RpcError as exc:
            if exc.code == CODE_INVALID_CMD:
                unknown.add(ip)
            return None
        except DeviceError:
            return None
        return msg_of(reply), truncated

    async def poll(self, ip: str, firmware: str | None = None, model: str = "") -> Reading:
        prefetched = self._take_prefetched(ip)
        first_info = None
        if prefetched is not None:
            reports, first_info = prefetched
        else:
            reports = await self.reports(ip)
        summary = section(reports["summary"], "SUMMARY")
        s = summary[0] if summary else {}
        errors = await self.flat(ip, "get_error_code", self.no_error_code)
        status = None if v2_hashing(s) else await self.flat(ip, "status", self.no_status)
        psu = None if "Power Fanspeed" in s else await self.flat(ip, "get_psu", self.no_psu)
        if first_info is not None and self.settings_due(ip):
            info = self.settings_seen(ip, first_info, asked=True)
        else:
            info = await self.settings(ip, self.api.read(ip, "get_miner_info"))
        return v2_reading(
            time.time_ns(), reports["summary"], reports.get("edevs"), reports.get("pools"),
            status=status[0] if status else None, info=msg_of(info) if info else None,
            errors=errors[0] if errors else None, errors_truncated=bool(errors and errors[1]),
            psu=psu[0] if psu else None, firmware=firmware, model=model)

    # -- control --------------------------------------------------------------------------

    async def write(self, ip: str, cmd: str, params: dict[str, Any] | None = None, *,
                    closes: bool = False) -> Any:
        self._prefetched.pop(ip, None)  # what identification read is no longer the news
        return await self.api.write_ok(ip, self.password, cmd, params, closes=closes)

    async def reboot(self, ip: str) -> None:
        # btminer often reboots without answering: hanging up after our request is success.
        await self.write(ip, "reboot", closes=True)

    async def get_led(self, ip: str) -> LedStatus:
        msg = msg_of(await self.api.read(ip, "get_miner_info"))
        led = led_from(msg.get("ledstat")) if isinstance(msg, dict) else None
        if led is None:
            raise DeviceError("get_led: get_miner_info shows no ledstat")
        return led

    async def write_led(self, ip: str, status: LedStatus) -> None:
        params = dict(LED_BLINK) if status == LedStatus.BLINK else {"param": "auto"}
        await self.write(ip, "set_led", params)

    async def _state(self, ip: str) -> tuple[bool | None, WorkMode | None]:
        status, summary = await asyncio.gather(self.api.read(ip, "status"),
                                               self.api.read(ip, "summary", key="command"))
        summaries = section(summary, "SUMMARY")
        mode = v2_work_mode(msg_of(status), summaries[0] if summaries else {})
        return v2_mining(msg_of(status)), mode

    async def get_work_mode(self, ip: str) -> WorkMode:
        return (await self._state(ip))[1] or WorkMode.UNKNOWN

    async def write_work_mode(self, ip: str, mode: WorkMode) -> None:
        mining, current = await self._state(ip)
        if mode == WorkMode.SLEEP:
            if mining is not False:
                await self.write(ip, "power_off", {"respbefore": "true"})
            return
        if mining is False:
            await self.write(ip, "power_on")
            current = None  # the power mode shows once btminer runs again
        if current != mode:
            await self.write(ip, _MODE_WRITES[mode])

    async def read_pools(self, ip: str) -> list[tuple[str, str]]:
        return slots_of(v2_pools(section(await self.api.read(ip, "pools", key="command"),
                                         "POOLS")))

    async def write_pools(self, ip: str, pools: list[dict[str, str]]) -> None:
        params: dict[str, Any] = {}
        for n, pool in enumerate(pools, start=1):
            params[f"pool{n}"] = pool["address"]
            params[f"worker{n}"] = pool["worker"]
            params[f"passwd{n}"] = pool["passwd"]
        await self.write(ip, "update_pools", params)

    async def pools_not_applied(self, ip: str, pools: list[dict[str, str]]) -> None:
        # Some firmwares keep new pools until btminer restarts (reference §3.3, pyasic #325).
        await self.write(ip, "restart_btminer")
        if not await self.pools_shown(ip, pools, self.confirm_timeout):
            raise DeviceError("set_pools: the miner accepted the pools but still shows others "
                              "after restarting btminer")

    async def command(self, ip: str, command: Command, args: Any) -> Any:
        self.forget_settings(ip)
        cmd, params = command.v2(args)
        return await self.write(ip, cmd, params, closes=command.closes(args))
