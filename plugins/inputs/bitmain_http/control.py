"""Control of Antminers (stock firmware) through the CGI web interface.

The firmware's "OK" is not proof (reference §2.5: ``set_miner_conf`` answers ``M000`` and may
change nothing), so every change is read back and the action reports what the device really
did. Writes go as the stock web UI sends them: the full configuration object, ``text/plain``,
``X-Requested-With``, with the long timeout ``set_miner_conf.cgi`` needs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from webbo.agent.plugin import (
    Device,
    DeviceError,
    LedStatus,
    MinerDriver,
    MiningPool,
    WorkMode,
)
from webbo.plugins.inputs.bitmain_http.web import WebClient

__all__ = ["MODE_TO_VALUE", "AntminerControl", "browser_conf", "pools_of", "work_mode_of"]

CONF = "/cgi-bin/get_miner_conf.cgi"
SET_CONF = "/cgi-bin/set_miner_conf.cgi"
MODE_TO_VALUE = {WorkMode.NORMAL: 0, WorkMode.SLEEP: 1, WorkMode.LOW_POWER: 3}
VALUE_TO_MODE = {"0": WorkMode.NORMAL, "": WorkMode.NORMAL, "1": WorkMode.SLEEP,
                 "3": WorkMode.LOW_POWER}


def work_mode_of(conf: dict[str, Any]) -> WorkMode:
    """``bitmain-work-mode`` of get_miner_conf (a string on real firmware) → WorkMode."""
    value = conf.get("bitmain-work-mode", "")
    return VALUE_TO_MODE.get(str(value).strip(), WorkMode.UNKNOWN)


def pools_of(conf: dict[str, Any]) -> list[dict[str, str]]:
    slots = []
    raw = conf.get("pools") if isinstance(conf.get("pools"), list) else []
    for item in raw[:3]:
        item = item if isinstance(item, dict) else {}
        slots.append({"address": str(item.get("url", "")), "worker": str(item.get("user", "")),
                      "passwd": str(item.get("pass", ""))})
    while len(slots) < 3:
        slots.append({"address": "", "worker": "", "passwd": ""})
    return slots


def browser_conf(conf: dict[str, Any], *, mode: int | None = None,
                 pools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The object the stock web UI posts: fan settings, frequency level, work mode, 3 pools."""
    current = conf.get("bitmain-work-mode", "0")
    try:
        current_mode = int(str(current).strip() or "0")
    except ValueError:
        current_mode = 0
    if pools is None:
        pool_items = [{"url": p["address"], "user": p["worker"], "pass": p["passwd"]}
                      for p in pools_of(conf)]
    else:
        pool_items = [{"url": str(p.get("address", "")), "user": str(p.get("worker", "")),
                       "pass": str(p.get("passwd", ""))} for p in pools]
    return {
        "bitmain-fan-ctrl": bool(conf.get("bitmain-fan-ctrl", False)),
        "bitmain-fan-pwm": str(conf.get("bitmain-fan-pwm", "100")),
        "miner-mode": current_mode if mode is None else mode,
        "freq-level": str(conf.get("bitmain-freq-level", conf.get("freq-level", "100"))),
        "pools": pool_items,
    }


class AntminerControl(MinerDriver):
    """The control actions of the ``bitmain_http`` driver (its base class): every change is
    posted as the stock web UI posts it, then read back until the device shows it."""

    web: WebClient
    conf_timeout: float
    readback_timeout: float

    def remember(self, device: Device, *, mode: WorkMode | None = None,
                 led: LedStatus | None = None) -> None:
        """What a control action verified (the driver carries it into its next readings)."""

    async def _post_conf(self, device: Device, body: dict[str, Any], action: str) -> None:
        answer = await self.web.json(device.ip, SET_CONF, body, timeout=self.conf_timeout,
                                     write=True)
        if answer.get("stats") != "success":
            raise DeviceError(f"{action}: the device refused the configuration: "
                              f"{answer.get('code', '')} {answer.get('msg', '')}".strip())

    async def _read_back(self, device: Device, done: Callable[[dict[str, Any]], bool]
                         ) -> dict[str, Any]:
        """Read the configuration until ``done(conf)`` or the read-back time is over."""
        deadline = time.monotonic() + self.readback_timeout
        delay = 0.2
        while True:
            conf = await self.web.json(device.ip, CONF)
            if done(conf) or time.monotonic() >= deadline:
                return conf
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 2.0)

    async def reboot(self, device: Device) -> None:
        await self.web.request(device.ip, "GET", "/cgi-bin/reboot.cgi", write=True)
        self.remember(device, led=LedStatus.NORMAL)

    async def get_work_mode(self, device: Device) -> WorkMode:
        mode = work_mode_of(await self.web.json(device.ip, CONF))
        self.remember(device, mode=mode)
        return mode

    async def set_work_mode(self, device: Device, mode: WorkMode) -> None:
        value = MODE_TO_VALUE.get(mode)
        if value is None:
            raise DeviceError(f"set_work_mode: unknown mode {mode!r} (normal, sleep, low_power)")
        conf = await self.web.json(device.ip, CONF)
        await self._post_conf(device, browser_conf(conf, mode=value), "set_work_mode")
        after = await self._read_back(device, lambda c: work_mode_of(c) == mode)
        actual = work_mode_of(after)
        self.remember(device, mode=actual)
        if actual != mode:
            hint = (f"; {mode} is not supported by {device.model} with this firmware"
                    if mode == WorkMode.LOW_POWER else "")
            raise DeviceError(f"set_work_mode: {device.model} answered OK but still reports "
                              f"{actual}{hint}")

    async def get_pools(self, device: Device) -> list[MiningPool]:
        return [MiningPool(**slot) for slot in pools_of(await self.web.json(device.ip, CONF))]

    async def set_pools(self, device: Device, pools: list[MiningPool]) -> None:
        if len(pools) != 3:
            raise DeviceError("set_pools: three pools are needed")
        conf = await self.web.json(device.ip, CONF)
        body = browser_conf(conf, pools=[{"address": p.address, "worker": p.worker,
                                          "passwd": p.passwd} for p in pools])
        await self._post_conf(device, body, "set_pools")
        wanted = [{"address": p["url"], "worker": p["user"], "passwd": p["pass"]}
                  for p in body["pools"]]
        after = await self._read_back(device, lambda c: pools_of(c) == wanted)
        if pools_of(after) != wanted:
            got = [p["address"] for p in pools_of(after)]
            raise DeviceError(f"set_pools: the device answered OK but still reports pools {got}")

    async def get_led(self, device: Device) -> LedStatus:
        answer = await self.web.json(device.ip, "/cgi-bin/get_blink_status.cgi")
        blink = answer.get("blink")
        if not isinstance(blink, bool):
            raise DeviceError(f"get_led: unexpected answer {answer!r}"[:200])
        led = LedStatus.BLINK if blink else LedStatus.NORMAL
        self.remember(device, led=led)
        return led

    async def set_led(self, device: Device, status: LedStatus) -> None:
        on = status == LedStatus.BLINK
        answer = await self.web.json(device.ip, "/cgi-bin/blink.cgi",
                                     {"blink": "true" if on else "false"}, write=True)
        expected = "B000" if on else "B100"
        if answer.get("code") != expected:
            raise DeviceError(f"set_led: the device answered {answer.get('code')!r}")
        led = await self.get_led(device)
        if led != (LedStatus.BLINK if on else LedStatus.NORMAL):
            raise DeviceError(f"set_led: the device answered OK but reports LED status "
                              f"{int(led)}")
