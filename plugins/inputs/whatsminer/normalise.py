"""Whatsminer answers → the normalised :class:`~webbo.agent.plugin.Reading`.

Pure functions over decoded JSON, so they are property-tested with arbitrary input: any shape
that is not what a firmware sends becomes a missing value (or, for the one answer a reading
cannot do without, a :class:`~webbo.plugins.common.rpc4028.client.GarbledReply`), never a crash.

Units (reference §3.2, §3.6): v2 reports MH/s (``MHS 1m``) and GH/s (``Factory GHS``); v3
reports TH/s. Power in W, temperatures in °C.

Firmwares differ in what they send; a value offered under another documented key is read from
there: the current hashrate from the first of ``MHS 1m``, ``MHS 5s``, ``HS RT``, ``MHS 5m``,
``MHS 15m``, ``MHS av`` present (v3: ``hash-1min``, ``hash-realtime``, ``hash-15min``,
``hash-average``), the PSU fan from ``get_psu`` where the summary has none, the work mode from
the summary where ``status`` is missing. Fans: a stopped fan reads 0 rpm; a hydro or immersion
model (MicroBT numbers them M_3_ and M_6_: M53, M56S, M63...; v2 also says ``Liquid Cooling``)
has no fans, and says so with ``cooling``.
"""

from __future__ import annotations

import re
from sys import intern
from typing import Any

from webbo.agent.plugin import BoardReading, ErrorCode, LedStatus, PoolReading, Reading, WorkMode
from webbo.plugins.common.numbers import as_float, as_int, to_ths
from webbo.plugins.common.rpc4028.client import GarbledReply

__all__ = [
    "cooling_of",
    "error_codes",
    "led_from",
    "section",
    "v2_boards",
    "v2_hashing",
    "v2_pools",
    "v2_reading",
    "v2_work_mode",
    "v3_pools",
    "v3_reading",
    "v3_work_mode",
]

TRUNCATED = ErrorCode(code="truncated",
                      message="the miner cut its error list short (its reply buffer "
                              "overflowed); more codes may be active")

_POWER_MODES = {"normal": WorkMode.NORMAL, "low": WorkMode.LOW_POWER}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    """A text field; interned: the texts of a reading (pool URL and worker, status, firmware,
    host name) repeat every poll and over the farm, and a reading lives until the next one."""
    return intern(value) if isinstance(value, str) else ("" if value is None else str(value))


def _true(value: Any) -> bool | None:
    """"true"/"false"/bool → bool; anything else → None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, int):
        return bool(value)
    return None


def _positive(value: float | None) -> float | None:
    return value if value is not None and value > 0 else None


def section(reply: Any, name: str) -> list[dict[str, Any]]:
    """The entries of a cgminer-style section (``SUMMARY``, ``DEVS``, ``POOLS``), also when a
    2.0.5 build wraps it in ``Msg``."""
    reply = _dict(reply)
    value = reply.get(name)
    if value is None:
        msg = _dict(reply.get("Msg"))
        value = msg.get(name)
        if value is None and name == "SUMMARY" and ("MHS av" in msg or "Elapsed" in msg):
            value = msg
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return []
    return [entry for entry in value if isinstance(entry, dict)]


# -- pieces shared by v2 and v3 ---------------------------------------------------------------


def error_codes(value: Any) -> list[ErrorCode]:
    """``[{"<code>": "<time>"}, ...]`` (v2), with a ``reason`` (v3), a dict of codes (the 2.0.4
    list-shaped-like-a-dict bug, once repaired) or bare codes."""
    items = [value] if isinstance(value, dict) else value if isinstance(value, list) else []
    found: list[ErrorCode] = []
    for item in items:
        if isinstance(item, dict):
            reason = _text(item.get("reason"))
            for code, when in item.items():
                if code != "reason":
                    found.append(ErrorCode(code=_text(code), message=reason, time=_text(when)))
        elif isinstance(item, str | int) and not isinstance(item, bool):
            found.append(ErrorCode(code=str(item)))
    return found


def led_from(status: Any) -> LedStatus | None:
    """``ledstat``/``ledstatus``: "auto" is the firmware driving the LEDs; anything else is a
    manual (locate) pattern."""
    if not isinstance(status, str) or not status:
        return None
    return LedStatus.NORMAL if status.strip().lower() == "auto" else LedStatus.BLINK


_MODEL_COOLING = {"3": "hydro", "6": "immersion"}
_MODEL_SERIES = re.compile(r"M(\d)(\d)")


def cooling_of(model: str, liquid: Any = None) -> str | None:
    """``hydro`` / ``immersion`` for MicroBT's liquid-cooled series (the second digit of the
    model: M33, M53S, M63 are hydro; M36, M56S, M66 immersion), ``air`` for M30, M50, M60...;
    for a model that does not tell, the summary's ``Liquid Cooling`` flag (hydro) or None."""
    match = _MODEL_SERIES.search(model or "")
    if match is not None:
        return _MODEL_COOLING.get(match.group(2), "air")
    flag = _true(liquid)
    return None if flag is None else ("hydro" if flag else "air")


def _fans(cooling: str | None, *values: Any) -> list[int]:
    """Fan speeds as reported (a stopped fan reads 0); none on a model without fans, whose
    firmware fills the fan fields with 0."""
    if cooling in ("hydro", "immersion"):
        return []
    speeds = [s for s in (as_int(v) for v in values) if s is not None and s >= 0]
    return speeds if cooling == "air" or any(speeds) else []


def _max(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


# -- v2 ---------------------------------------------------------------------------------------

_CURRENT_MHS = ("MHS 1m", "MHS 5s", "HS RT", "MHS 5m", "MHS 15m", "MHS av")
"""Where a v2 firmware puts the current hashrate (MH/s), in the order it is looked for."""
_AVERAGE_MHS = ("MHS av", "MHS 15m", "MHS 5m")


def _first_mhs(data: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    """The first of ``keys`` holding a number, in TH/s."""
    for key in keys:
        value = data.get(key)
        if value is not None:
            ths = to_ths(value, "MH")
            if ths is not None:
                return ths
    return None


def v2_hashing(summary: dict[str, Any]) -> bool:
    """True when the summary shows the miner hashing now (then it is not asleep, and
    ``status`` has nothing to add)."""
    current = _first_mhs(summary, _CURRENT_MHS)
    return current is not None and current > 0


def v2_boards(devs: list[dict[str, Any]]) -> list[BoardReading]:
    boards = []
    for position, dev in enumerate(devs):
        index = as_int(dev.get("ASC"))
        if index is None:
            index = as_int(dev.get("Slot"))
        chip = as_float(dev.get("Chip Temp Max"))
        boards.append(BoardReading(
            index=position if index is None or index < 0 else index,
            hashrate_ths=_first_mhs(dev, _CURRENT_MHS),
            expected_hashrate_ths=_positive(to_ths(dev.get("Factory GHS"), "GH")),
            temp_board_c=as_float(dev.get("Temperature")),
            temp_chip_c=chip if chip is not None else as_float(dev.get("Chip Temp Avg")),
            chips=as_int(dev.get("Effective Chips")),
            frequency_mhz=as_float(dev.get("Chip Frequency")),
            serial=_text(dev.get("PCB SN")) or None,
        ))
    return boards


def v2_pools(pools: list[dict[str, Any]]) -> list[PoolReading]:
    out = []
    for position, pool in enumerate(pools):
        number = as_int(pool.get("POOL"))
        out.append(PoolReading(
            index=number - 1 if number is not None and number > 0 else position,
            url=_text(pool.get("URL")),
            user=_text(pool.get("User")),
            status=_text(pool.get("Status")),
            active=_true(pool.get("Stratum Active")) is True,
            accepted=as_int(pool.get("Accepted")),
            rejected=as_int(pool.get("Rejected")),
        ))
    return out


def v2_mining(status: Any) -> bool | None:
    """Whether btminer hashes, from ``status``: ``mineroff`` (2.0.5) or ``btmineroff`` (v1)."""
    status = _dict(status)
    for key in ("mineroff", "btmineroff"):
        off = _true(status.get(key))
        if off is not None:
            return not off
    return None


def v2_work_mode(status: Any, summary: dict[str, Any]) -> WorkMode | None:
    """sleep when btminer is powered off; else the summary's ``Power Mode`` (High has no
    place in the manual's modes: unknown)."""
    if v2_mining(status) is False:
        return WorkMode.SLEEP
    mode = summary.get("Power Mode")
    if not isinstance(mode, str) or not mode:
        mode = _dict(status).get("power_mode")
    if isinstance(mode, str) and mode:
        return _POWER_MODES.get(mode.strip().lower(), WorkMode.UNKNOWN)
    return None


def v2_reading(time_ns: int, summary_reply: Any, devs_reply: Any = None, pools_reply: Any = None,
               *, status: Any = None, info: Any = None, errors: Any = None,
               errors_truncated: bool = False, psu: Any = None,
               firmware: str | None = None, model: str = "") -> Reading:
    """One v2 poll: ``summary`` (required), ``edevs``, ``pools``, and the ``Msg`` objects of
    ``status``, ``get_miner_info``, ``get_error_code`` and ``get_psu`` where read."""
    summaries = section(summary_reply, "SUMMARY")
    if not summaries:
        raise GarbledReply("summary: the answer has no SUMMARY section")
    s = summaries[0]
    info = _dict(info)
    boards = v2_boards(section(devs_reply, "DEVS"))
    power = as_float(s.get("Power"))
    psu_fan = as_int(s.get("Power Fanspeed"))
    if psu_fan is None:
        psu_fan = as_int(_dict(psu).get("fan_speed"))
    codes = error_codes(_dict(errors).get("error_code")) if errors is not None else []
    if errors is None:  # firmware older than get_error_code: codes in the summary
        count = as_int(s.get("Error Code Count")) or 0
        for i in range(min(count, 1000)):
            codes.extend(error_codes([s.get(f"Error Code {i}")]))
    if errors_truncated:
        codes.append(TRUNCATED)
    fw = firmware or _text(s.get("Firmware Version")).strip("'") or None
    hashrate = _first_mhs(s, _CURRENT_MHS)
    mining = v2_mining(status)
    if mining is None and hashrate is not None:
        mining = hashrate > 0  # status not asked (it hashes) or not known to this firmware
    cooling = cooling_of(model, s.get("Liquid Cooling"))
    return Reading(
        time_ns=time_ns,
        hashrate_ths=hashrate,
        hashrate_avg_ths=_first_mhs(s, _AVERAGE_MHS),
        expected_hashrate_ths=_positive(to_ths(s.get("Factory GHS"), "GH")),
        power_w=power if power is not None and power >= 0 else None,
        power_limit_w=_positive(as_float(s.get("Power Limit"))),
        temp_env_c=as_float(s.get("Env Temp")),
        temp_board_max_c=_max([b.temp_board_c for b in boards]) or as_float(s.get("Temperature")),
        temp_chip_max_c=as_float(s.get("Chip Temp Max")),
        fans_rpm=_fans(cooling, s.get("Fan Speed In"), s.get("Fan Speed Out")),
        fan_psu_rpm=psu_fan,
        cooling=cooling,
        uptime_s=as_int(s.get("Elapsed")),
        work_mode=v2_work_mode(status, s),
        led=led_from(info.get("ledstat")),
        is_mining=mining,
        accepted=as_int(s.get("Accepted")),
        rejected=as_int(s.get("Rejected")),
        firmware=fw,
        hostname=_text(info.get("hostname")) or None,
        boards=boards,
        pools=v2_pools(section(pools_reply, "POOLS")),
        errors=codes,
    )


# -- v3 ---------------------------------------------------------------------------------------


def v3_work_mode(info: Any, setting: Any) -> WorkMode | None:
    """sleep when the miner service is stopped (``miner.working`` false); else the
    ``power-mode`` of ``get.miner.setting``."""
    working = _true(_dict(_dict(info).get("miner")).get("working"))
    if working is False:
        return WorkMode.SLEEP
    mode = _dict(setting).get("power-mode")
    if isinstance(mode, str) and mode:
        return _POWER_MODES.get(mode.strip().lower(), WorkMode.UNKNOWN)
    return None


def v3_pools(raw: Any) -> list[PoolReading]:
    """``get.miner.status`` ``pools``: ``id`` (1-based), ``url``, ``account``, ``status``."""
    pools = []
    for position, pool in enumerate(raw if isinstance(raw, list) else []):
        pool = _dict(pool)
        number = as_int(pool.get("id"))
        pools.append(PoolReading(
            index=number - 1 if number is not None and number > 0 else position,
            url=_text(pool.get("url")), user=_text(pool.get("account")),
            status=_text(pool.get("status")), active=_true(pool.get("stratum-active")) is True,
        ))
    return pools


_CURRENT_V3 = ("hash-1min", "hash-realtime", "hash-15min", "hash-average")
_AVERAGE_V3 = ("hash-average", "hash-15min")


def _first_ths(data: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = as_float(data.get(key))
        if value is not None:
            return value
    return None


def v3_reading(time_ns: int, status: Any, edevs: Any = None, *, info: Any = None,
               setting: Any = None, model: str = "") -> Reading:
    """One v3 poll: ``get.miner.status`` (summary, and pools when asked together), its
    ``edevs``, ``get.device.info`` and ``get.miner.setting``."""
    status = _dict(status)
    s = status.get("summary")
    if not isinstance(s, dict):
        raise GarbledReply("get.miner.status: the answer has no summary")
    info = _dict(info)
    system, miner, network = (_dict(info.get(k)) for k in ("system", "miner", "network"))
    board_temps = s.get("board-temperature")
    board_temps = board_temps if isinstance(board_temps, list) else []
    boards = []
    devs = _dict(edevs).get("edevs", [])
    for position, dev in enumerate(devs if isinstance(devs, list) else []):
        dev = _dict(dev)
        index = as_int(dev.get("slot"))
        index = position if index is None or index < 0 else index
        boards.append(BoardReading(
            index=index,
            hashrate_ths=as_float(dev.get("hash-average")),
            expected_hashrate_ths=_positive(as_float(dev.get("factory-hash"))),
            temp_board_c=as_float(board_temps[index]) if index < len(board_temps) else None,
            temp_chip_c=as_float(dev.get("chip-temp-max", dev.get("chip-temp-avg"))),
            chips=as_int(dev.get("effective-chips")),
            frequency_mhz=as_float(dev.get("freq")),
        ))
    power = as_float(s.get("power-realtime", s.get("power-5min")))
    hashrate = _first_ths(s, _CURRENT_V3)
    working = _true(miner.get("working"))
    if working is None and hashrate is not None:
        working = hashrate > 0
    cooling = cooling_of(model or _text(miner.get("type")))
    return Reading(
        time_ns=time_ns,
        hashrate_ths=hashrate,
        hashrate_avg_ths=_first_ths(s, _AVERAGE_V3),
        expected_hashrate_ths=_positive(as_float(s.get("factory-hash"))),
        power_w=power if power is not None and power >= 0 else None,
        power_limit_w=_positive(as_float(s.get("power-limit"))),
        temp_env_c=as_float(s.get("environment-temperature")),
        temp_board_max_c=_max([as_float(t) for t in board_temps]),
        temp_chip_max_c=as_float(s.get("chip-temp-max")),
        fans_rpm=_fans(cooling, s.get("fan-speed-in"), s.get("fan-speed-out")),
        fan_psu_rpm=as_int(_dict(info.get("power")).get("fanspeed")),
        cooling=cooling,
        uptime_s=as_int(s.get("elapsed")),
        work_mode=v3_work_mode(info, setting),
        led=led_from(system.get("ledstatus")),
        is_mining=working,
        firmware=_text(system.get("fwversion")) or None,
        hostname=_text(network.get("hostname")) or None,
        boards=boards,
        pools=v3_pools(status.get("pools")),
        errors=error_codes(info.get("error-code")),
    )
