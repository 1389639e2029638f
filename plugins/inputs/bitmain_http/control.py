"""Control of Antminers (stock firmware) through the CGI web interface.

The firmware's "OK" is not proof (reference §2.5: ``set_miner_conf`` answers ``M000`` and may
change nothing), so every change is read back and the action reports what the device really
did. Writes go as the stock web UI sends them: the full configuration object, ``text/plain``,
``X-Requested-With``, with the long timeout ``set_miner_conf.cgi`` needs.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from webbo.agent.core.contract import Action
from webbo.agent.core.errors import DeviceError
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.model import LedStatus, WorkMode
from webbo.plugins.inputs.bitmain_http.driver import (
    MODE_TO_VALUE,
    BitmainDriver,
    work_mode_of,
)
from webbo.plugins.inputs.cgminer.glue import pools_param

__all__ = ["run_action"]

CONF = "/cgi-bin/get_miner_conf.cgi"
SET_CONF = "/cgi-bin/set_miner_conf.cgi"


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


async def _post_conf(driver: BitmainDriver, device: Device, body: dict[str, Any],
                     action: str) -> None:
    answer = await driver.web.json(device.ip, SET_CONF, body,
                                   timeout=float(driver.config.conf_timeout), write=True)
    if answer.get("stats") != "success":
        raise DeviceError(f"{action}: the device refused the configuration: "
                          f"{answer.get('code', '')} {answer.get('msg', '')}".strip())


async def _read_back(driver: BitmainDriver, device: Device, done: Any) -> dict[str, Any]:
    """Read the configuration until ``done(conf)`` or the read-back time is over."""
    deadline = time.monotonic() + float(driver.config.readback_timeout)
    delay = 0.2
    while True:
        conf = await driver.web.json(device.ip, CONF)
        if done(conf) or time.monotonic() >= deadline:
            return conf
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 2.0)


async def set_work_mode(driver: BitmainDriver, device: Device, mode: str) -> None:
    try:
        wanted = WorkMode(mode)
        value = MODE_TO_VALUE[wanted]
    except (ValueError, KeyError):
        raise DeviceError(f"set_work_mode: unknown mode {mode!r} (normal, sleep, low_power)"
                          ) from None
    conf = await driver.web.json(device.ip, CONF)
    await _post_conf(driver, device, browser_conf(conf, mode=value), "set_work_mode")
    after = await _read_back(driver, device, lambda c: work_mode_of(c) == wanted)
    actual = work_mode_of(after)
    driver.remember(device, mode=actual)
    if actual != wanted:
        hint = (f"; {wanted} is not supported by {device.model} with this firmware"
                if wanted == WorkMode.LOW_POWER else "")
        raise DeviceError(f"set_work_mode: {device.model} answered OK but still reports "
                          f"{actual}{hint}")


async def set_pools(driver: BitmainDriver, device: Device, pools: list[dict[str, Any]]) -> None:
    if len(pools) != 3 or not all(isinstance(p, dict) for p in pools):
        raise DeviceError("set_pools: three pools are needed")
    conf = await driver.web.json(device.ip, CONF)
    body = browser_conf(conf, pools=pools)
    await _post_conf(driver, device, body, "set_pools")
    wanted = [{"address": p["url"], "worker": p["user"], "passwd": p["pass"]}
              for p in body["pools"]]
    after = await _read_back(driver, device, lambda c: pools_of(c) == wanted)
    if pools_of(after) != wanted:
        got = [p["address"] for p in pools_of(after)]
        raise DeviceError(f"set_pools: the device answered OK but still reports pools {got}")


async def set_led(driver: BitmainDriver, device: Device, status: Any) -> None:
    if status not in (0, 1, LedStatus.NORMAL, LedStatus.BLINK) or isinstance(status, bool):
        raise DeviceError(f"set_led: status must be 0 or 1, not {status!r}")
    on = int(status) == 1
    answer = await driver.web.json(device.ip, "/cgi-bin/blink.cgi",
                                   {"blink": "true" if on else "false"}, write=True)
    expected = "B000" if on else "B100"
    if answer.get("code") != expected:
        raise DeviceError(f"set_led: the device answered {answer.get('code')!r}")
    led = await get_led(driver, device)
    if led != (LedStatus.BLINK if on else LedStatus.NORMAL):
        raise DeviceError(f"set_led: the device answered OK but reports LED status {int(led)}")


async def get_led(driver: BitmainDriver, device: Device) -> LedStatus:
    answer = await driver.web.json(device.ip, "/cgi-bin/get_blink_status.cgi")
    blink = answer.get("blink")
    if not isinstance(blink, bool):
        raise DeviceError(f"get_led: unexpected answer {answer!r}"[:200])
    led = LedStatus.BLINK if blink else LedStatus.NORMAL
    driver.remember(device, led=led)
    return led


async def run_action(driver: BitmainDriver, device: Device, action: Action,
                     params: dict[str, Any]) -> Any:
    if action == Action.REBOOT:
        await driver.web.request(device.ip, "GET", "/cgi-bin/reboot.cgi", write=True)
        driver.remember(device, led=LedStatus.NORMAL)
        return None
    if action == Action.GET_LED:
        return int(await get_led(driver, device))
    if action == Action.SET_LED:
        await set_led(driver, device, params.get("status"))
        return None
    if action == Action.GET_WORK_MODE:
        mode = work_mode_of(await driver.web.json(device.ip, CONF))
        driver.remember(device, mode=mode)
        return mode.value
    if action == Action.SET_WORK_MODE:
        await set_work_mode(driver, device, str(params.get("mode", "")))
        return None
    if action == Action.GET_POOLS:
        return pools_of(await driver.web.json(device.ip, CONF))
    if action == Action.SET_POOLS:
        await set_pools(driver, device, pools_param(params))
        return None
    raise DeviceError(f"{action}: not supported by {device.model}")
