"""cgminer/bmminer replies → the normalised :class:`~webbo.agent.plugin.Reading` parts.

Every function here takes whatever the device sent (already JSON-decoded, but of any shape) and
never raises: a missing or odd field becomes ``None``, never an exception and never a 0.
Units are normalised to TH/s: ``GHS *`` keys are GH/s, ``MHS *`` keys MH/s, Bitmain ``stats``
carries its own ``rate_unit``.

Temperature convention (reference §1.5 notes that firmwares disagree): on Bitmain ``stats`` the
per-chain ``temp_pcbN`` sensors are the *board* temperature and ``temp_chipN`` the *chip*
temperature (maximum of the four sensors each); where the dash strings are absent, ``tempN`` is
the board and ``temp2_N`` the chip temperature.
"""

from __future__ import annotations

import time
from sys import intern
from typing import Any

from webbo.agent.plugin import BoardReading, PoolReading, Reading
from webbo.plugins.common.numbers import as_float, as_int, to_ths

__all__ = ["first", "parse_bmminer_stats", "parse_devs", "parse_pools", "parse_summary",
           "reading_from", "section"]


def section(reply: Any, name: str) -> list[dict[str, Any]]:
    """The list under ``name`` (``SUMMARY``, ``STATS``, ...), dicts only; a dict alone (Foundry's
    ``DEVS``) counts as a list of one."""
    if not isinstance(reply, dict):
        return []
    value = reply.get(name)
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return []


def first(reply: Any, name: str) -> dict[str, Any]:
    items = section(reply, name)
    return items[0] if items else {}


def _hashrate(data: dict[str, Any], *suffixes: str) -> float | None:
    """The first of ``GHS <suffix>`` / ``MHS <suffix>`` / ``THS <suffix>`` present, in TH/s."""
    for suffix in suffixes:
        for prefix, unit in (("GHS", "GH"), ("MHS", "MH"), ("THS", "TH"), ("KHS", "KH")):
            value = data.get(f"{prefix} {suffix}")
            if value is not None:
                ths = to_ths(value, unit)
                if ths is not None:
                    return ths
    return None


def parse_summary(reply: Any) -> dict[str, Any]:
    """Fields of ``summary``: hashrate_ths, hashrate_avg_ths, accepted, rejected, hw_errors,
    uptime_s (only those present)."""
    data = first(reply, "SUMMARY")
    out: dict[str, Any] = {}
    current = _hashrate(data, "5s", "1m", "5m", "15m", "av")
    if current is not None:
        out["hashrate_ths"] = current
    average = _hashrate(data, "av", "30m", "15m")
    if average is not None:
        out["hashrate_avg_ths"] = average
    for key, name in (("Accepted", "accepted"), ("Rejected", "rejected"),
                      ("Hardware Errors", "hw_errors"), ("Elapsed", "uptime_s")):
        value = as_int(data.get(key))
        if value is not None:
            out[name] = value
    power = as_float(data.get("Power"))
    if power is not None and power > 0:
        out["power_w"] = power
    return out


_INF = float("inf")


def _dash_max(value: Any) -> float | None:
    """Max of a ``"73-45-64-65"`` sensor string (zeros are absent sensors)."""
    if not isinstance(value, str) or not value:
        return None
    parts = value.split("-")
    numbers: list[float | None]
    try:
        numbers = [float(part) for part in parts]  # the usual case: plain numbers
    except ValueError:
        numbers = [as_float(part) for part in parts]
    best: float | None = None
    for number in numbers:
        if number is not None and 0 < number < _INF and (best is None or number > best):
            best = number
    return best


def _positive(value: Any) -> float | None:
    number = as_float(value)
    return number if number is not None and number > 0 else None


_FAN_KEYS = tuple(f"fan{i}" for i in range(1, 17))


def _fans(data: dict[str, Any]) -> list[int]:
    """Fan speeds of Bitmain ``stats``: ``fan_num`` fans from the first block of four that
    holds one turning (fan1..4 on S19, fan5..6 on S9), a stopped one as 0; none when
    ``fan_num`` is 0 (hydro models). Without ``fan_num`` a 0 cannot be told from an empty
    slot, so only turning fans count."""
    get = data.get
    speeds = [None if (raw := get(key)) is None else as_int(raw) for key in _FAN_KEYS]
    count = as_int(data.get("fan_num"))
    if count is None or not 0 <= count <= len(speeds):
        return [rpm for rpm in speeds if rpm is not None and rpm > 0]
    turning = next((i for i, rpm in enumerate(speeds) if rpm), 0)
    start = turning - turning % 4
    return [rpm for rpm in speeds[start:start + count] if rpm is not None and rpm >= 0]
_CHAIN_KEYS = tuple(
    (i - 1, f"chain_acn{i}", f"chain_rate{i}", f"chain_acs{i}", f"temp_pcb{i}", f"temp{i}",
     f"temp_chip{i}", f"temp2_{i}", f"chain_hw{i}", f"freq{i}")
    for i in range(1, 17)
)


def parse_bmminer_stats(reply: Any) -> dict[str, Any]:
    """Bitmain ``stats``: boards, fans_rpm, expected_hashrate_ths, temp maxima, uptime_s.

    Chains and fans are found wherever the firmware numbers them (1..4 on S19, 6..8 on S9).
    This runs once per Antminer per poll, so key names are prebuilt and absent keys skipped.
    """
    blocks = section(reply, "STATS")
    data: dict[str, Any] = {}
    for block in blocks:
        if "chain_acn1" in block or "fan_num" in block or "miner_count" in block or \
                "chain_rate1" in block or "chain_acn6" in block:
            data = block
            break
    if not data and len(blocks) > 1:
        data = blocks[1]
    out: dict[str, Any] = {}
    if not data:
        return out
    unit = data.get("rate_unit") if isinstance(data.get("rate_unit"), str) else "GH"
    expected = to_ths(data.get("total_rateideal"), unit or "GH")
    if expected is not None and expected > 0:
        out["expected_hashrate_ths"] = expected
    uptime = as_int(data.get("Elapsed"))
    if uptime is not None:
        out["uptime_s"] = uptime
    out["fans_rpm"] = _fans(data)
    boards: list[BoardReading] = []
    board_max: float | None = None
    chip_max: float | None = None
    get = data.get
    for index, k_acn, k_rate, k_acs, k_pcb, k_temp, k_chip, k_temp2, k_hw, k_freq in _CHAIN_KEYS:
        raw_chips = get(k_acn)
        rate = get(k_rate)
        if raw_chips is None and rate is None:
            continue
        chips = as_int(raw_chips)
        acs = get(k_acs)
        if not chips and (rate in (None, "") or acs in (None, "")):
            continue
        temp_board = _dash_max(get(k_pcb)) or _positive(get(k_temp))
        temp_chip = _dash_max(get(k_chip)) or _positive(get(k_temp2))
        board = BoardReading(
            index=index,
            hashrate_ths=to_ths(rate, "GH") if rate not in (None, "") else None,
            temp_board_c=temp_board,
            temp_chip_c=temp_chip,
            chips=chips,
            hw_errors=as_int(get(k_hw)),
            frequency_mhz=_positive(get(k_freq)),
        )
        boards.append(board)
        if temp_board is not None and (board_max is None or temp_board > board_max):
            board_max = temp_board
        if temp_chip is not None and (chip_max is None or temp_chip > chip_max):
            chip_max = temp_chip
    if boards:
        first_index = boards[0].index
        if first_index > 0:  # S9-era numbering (chains 6..8): report boards from 0
            for board in boards:
                board.index -= first_index
        out["boards"] = boards
    if board_max is not None:
        out["temp_board_max_c"] = board_max
    if chip_max is not None:
        out["temp_chip_max_c"] = chip_max
    power = _positive(data.get("chain_power")) or _positive(data.get("power"))
    if power is not None:
        out["power_w"] = power
    return out


def parse_devs(reply: Any) -> dict[str, Any]:
    """Generic cgminer ``devs``: one board per ASC/PGA with hashrate and temperature."""
    boards: list[BoardReading] = []
    hottest: float | None = None
    for position, dev in enumerate(section(reply, "DEVS")):
        index = as_int(dev.get("ASC", dev.get("PGA", dev.get("ID", position))))
        temperature = _positive(dev.get("Temperature", dev.get("Tenperature")))
        rate = _hashrate(dev, "5s", "1m", "5m", "15m", "av")
        if rate is None and temperature is None:
            continue
        boards.append(BoardReading(index=index if index is not None else position,
                                   hashrate_ths=rate, temp_board_c=temperature,
                                   hw_errors=as_int(dev.get("Hardware Errors"))))
        if temperature is not None and (hottest is None or temperature > hottest):
            hottest = temperature
    out: dict[str, Any] = {}
    if boards:
        out["boards"] = boards
    if hottest is not None:
        out["temp_board_max_c"] = hottest
    return out


def parse_pools(reply: Any) -> list[PoolReading]:
    """``pools`` → one PoolReading per configured pool, 0-based slots in the device's order."""
    pools: list[PoolReading] = []
    items = section(reply, "POOLS")
    one_based = bool(items) and all(as_int(p.get("POOL")) != 0 for p in items) and \
        as_int(items[0].get("POOL")) == 1
    for position, pool in enumerate(items):
        url = pool.get("URL")
        if not isinstance(url, str) or not url:
            continue
        index = as_int(pool.get("POOL"))
        if index is None:
            index = position
        elif one_based:
            index -= 1
        user = pool.get("User")
        state = pool.get("Status")
        pools.append(PoolReading(  # the texts repeat every poll (and URLs over the farm)
            index=index, url=intern(url), user=intern(user) if isinstance(user, str) else "",
            status=intern(state) if isinstance(state, str) else "",
            active=pool.get("Stratum Active") is True,
            accepted=as_int(pool.get("Accepted")), rejected=as_int(pool.get("Rejected")),
        ))
    return pools


def reading_from(parts: dict[str, dict[str, Any]]) -> Reading:
    """Build a Reading from the replies of summary / stats / devs / pools."""
    values: dict[str, Any] = parse_summary(parts.get("summary"))
    if "stats" in parts:
        stats = parse_bmminer_stats(parts["stats"])
        uptime = stats.pop("uptime_s", None)
        values.setdefault("uptime_s", uptime)
        values.update(stats)
    if "devs" in parts and "boards" not in values:
        values.update(parse_devs(parts["devs"]))
    if values.get("uptime_s") is None:
        values.pop("uptime_s", None)
    pools = parse_pools(parts.get("pools")) if "pools" in parts else []
    reading = Reading(time_ns=time.time_ns(), pools=pools, **values)
    if reading.hashrate_ths is not None:
        reading.is_mining = reading.hashrate_ths > 0
    if reading.boards and reading.hashrate_ths is None:
        rates = [b.hashrate_ths for b in reading.boards if b.hashrate_ths is not None]
        if rates:
            reading.hashrate_ths = sum(rates)
    return reading
