"""``set_power_limit`` on Whatsminers: a power target in watts, as a temporary power percent.

The firmware has two ways to hold a miner under a power (reference §3.3, §3.6):

* ``adjust_power_limit`` / ``set.miner.power_limit`` changes the stored power limit and restarts
  btminer (minutes without hashing, then a re-tune): right for a permanent change, wrong for
  curtailment that moves every few minutes;
* ``set_power_pct`` / ``set.miner.power_percent`` runs the miner at a percentage of its power
  limit until the next restart, without stopping it.

So a power target is sent as the percentage of the miner's power limit that stays at or under
the requested watts (rounded down: the miner never gets more than was asked). The limit is
read from the miner first (summary ``Power Limit`` on v2, ``get.miner.setting`` on v3). On v3
the setting is read back; v2 has no read of the power percent, so its "API command OK" is the
answer. API v1 firmware (``whatsminer v1.4.0``) has no power percent: the driver does not
offer the action there (work modes remain).
"""

from __future__ import annotations

from typing import Any

from webbo.agent.plugin import DeviceError
from webbo.plugins.common.numbers import as_float, as_int
from webbo.plugins.inputs.whatsminer.normalise import section
from webbo.plugins.inputs.whatsminer.v2 import V2Backend
from webbo.plugins.inputs.whatsminer.v3 import V3Backend
from webbo.plugins.inputs.whatsminer.wire import confirm

__all__ = ["has_power_percent", "percent_for", "set_power_v2", "set_power_v3"]


def has_power_percent(api: str, api_ver: str) -> bool:
    """True where the firmware takes a power percent: API v3, and v2 from API 2.0 on."""
    if api == "v3":
        return True
    major = api_ver.strip().split(".", 1)[0]
    return not major.isdigit() or int(major) >= 2


def percent_for(watts: int, limit: float | None) -> int:
    """The percent of ``limit`` that stays at or under ``watts`` (1..100)."""
    if not limit or limit <= 0:
        raise DeviceError("set_power_limit: the miner reports no power limit to take a "
                          "percentage of")
    percent = min(100, int(watts * 100 // limit))
    if percent < 1:
        raise DeviceError(f"set_power_limit: {watts} W is under 1% of the power limit "
                          f"({limit:g} W); put the miner to sleep instead")
    return percent


async def set_power_v2(backend: V2Backend, ip: str, watts: int) -> int:
    """Send the power percent for ``watts``; answers the percent sent."""
    summary = await backend.api.read(ip, "summary", key="command")
    entries = section(summary, "SUMMARY")
    limit = as_float(entries[0].get("Power Limit")) if entries else None
    percent = percent_for(watts, limit)
    backend.forget_settings(ip)
    await backend.write(ip, "set_power_pct", {"percent": str(percent)})
    return percent


async def set_power_v3(backend: V3Backend, ip: str, watts: int) -> int:
    """Send the power percent for ``watts`` and read it back; answers the percent sent."""
    setting = await backend.api.get(ip, "get.miner.setting")
    limit = as_float(setting.get("power-limit")) if isinstance(setting, dict) else None
    percent = percent_for(watts, limit)
    backend.forget_settings(ip)
    await backend.write(ip, "set.miner.power_percent", {"percent": str(percent),
                                                       "mode": "normal"})
    shown: list[Any] = []

    async def applied() -> bool:
        now = await backend.api.get(ip, "get.miner.setting")
        shown[:] = [now.get("power-percent") if isinstance(now, dict) else None]
        return as_int(shown[0]) == percent

    if not await confirm(applied, backend.confirm_timeout):
        raise DeviceError(f"set_power_limit: the miner accepted {percent}% but reports "
                          f"{shown[0] if shown else 'nothing readable'}")
    return percent
