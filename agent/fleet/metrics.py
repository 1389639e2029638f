"""Readings → metrics: ``miner``, ``miner_board``, ``miner_pool`` (docs/metrics.md is the
contract). This runs for every miner every cycle, so it is written for speed."""

from __future__ import annotations

from webbo.agent.core.metric import FieldValue, Metric
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.model import ErrorCode, Reading

__all__ = ["failure_metric", "reading_metrics"]


def _error_text(error: ErrorCode) -> str:
    """``code: message (since time)`` — the parts the firmware gave."""
    text = f"{error.code}: {error.message}" if error.message else error.code
    return f"{text} (since {error.time})" if error.time else text


_MINER_FLOATS = (
    ("hashrate_ths", "hashrate_ths", 3), ("hashrate_avg_ths", "hashrate_avg_ths", 3),
    ("expected_hashrate_ths", "expected_hashrate_ths", 3), ("power_w", "power_w", 1),
    ("power_limit_w", "power_limit_w", 1),
)


_MINER_TEMPS = (("temp_env_c", "temp_env_c"), ("temp_board_max_c", "temp_board_max_c"),
                ("temp_chip_max_c", "temp_chip_max_c"))


_MINER_COUNTERS = ("is_mining", "accepted", "rejected", "hw_errors")


_BOARD_FIELDS = (
    ("hashrate_ths", 3), ("expected_hashrate_ths", 3), ("temp_board_c", 1), ("temp_chip_c", 1),
    ("chips", None), ("expected_chips", None), ("hw_errors", None), ("frequency_mhz", 1),
)


_MINER_TAGS = ("mac", "group", "range", "make", "model")


_BOARD_TAGS = ("mac", "group", "range", "board")


_POOL_TAGS = ("mac", "group", "range", "index")


def reading_metrics(device: Device, reading: Reading) -> list[Metric]:
    """``miner``, ``miner_board`` and ``miner_pool`` metrics of one successful poll.

    This runs for every miner every cycle, so the field tables above are walked with plain
    attribute reads, and the metrics are packed (values against shared key tuples) rather than
    holding two dicts each.
    """
    ts = reading.time_ns
    mac, group, range_ = device.mac, device.group, device.range
    keys = ["ip", "online", "state"]
    values: list[FieldValue] = [device.ip, True, "ok"]
    key, value = keys.append, values.append
    text = reading.hostname or device.hostname
    if text:
        key("hostname")
        value(text)
    text = reading.firmware or device.firmware
    if text:
        key("firmware")
        value(text)
    for name, attr, digits in _MINER_FLOATS:
        number = getattr(reading, attr)
        if number is not None:
            key(name)
            value(round(float(number), digits))
    efficiency = reading.efficiency_jth
    if efficiency is not None:
        key("efficiency_jth")
        value(round(float(efficiency), 2))
    for name, attr in _MINER_TEMPS:
        number = getattr(reading, attr)
        if number is not None:
            key(name)
            value(round(float(number), 1))
    fans = [f for f in reading.fans_rpm if f is not None]
    if fans:
        keys += ("fan_rpm_min", "fan_rpm_max", "fan_count")
        values += (min(fans), max(fans), len(fans))
    if reading.fan_psu_rpm is not None:
        key("fan_psu_rpm")
        value(reading.fan_psu_rpm)
    if reading.uptime_s is not None:
        key("uptime_s")
        value(reading.uptime_s)
    if reading.work_mode:
        key("work_mode")
        value(reading.work_mode.value)
    if reading.led is not None:
        key("led")
        value(int(reading.led))
    for name in _MINER_COUNTERS:
        counter = getattr(reading, name)
        if counter is not None:
            key(name)
            value(counter)
    pool_url = reading.active_pool
    if pool_url is not None:
        key("active_pool")
        value(pool_url)
    key("error_count")
    value(len(reading.errors))
    if reading.errors:
        key("errors")
        value("; ".join(_error_text(e) for e in reading.errors))
    pack = Metric.packed
    metrics = [pack("miner", _MINER_TAGS, (mac, group, range_, device.make, device.model),
                    keys, values, ts)]
    for board in reading.boards:
        bkeys: list[str] = []
        bvalues: list[FieldValue] = []
        for name, digits in _BOARD_FIELDS:
            number = getattr(board, name)
            if number is not None:
                bkeys.append(name)
                bvalues.append(number if digits is None else round(float(number), digits))
        if bkeys:
            metrics.append(pack("miner_board", _BOARD_TAGS,
                                (mac, group, range_, str(board.index)), bkeys, bvalues, ts))
    for pool in reading.pools:
        pkeys = ["url", "user", "active"]
        pvalues: list[FieldValue] = [pool.url, pool.user, pool.active]
        if pool.status:
            pkeys.append("status")
            pvalues.append(pool.status)
        if pool.accepted is not None:
            pkeys.append("accepted")
            pvalues.append(pool.accepted)
        if pool.rejected is not None:
            pkeys.append("rejected")
            pvalues.append(pool.rejected)
        metrics.append(pack("miner_pool", _POOL_TAGS, (mac, group, range_, str(pool.index)),
                            pkeys, pvalues, ts))
    return metrics


def failure_metric(device: Device, time_ns: int) -> Metric:
    """The ``miner`` point written when a known device could not be polled (online=false)."""
    tags = {"mac": device.mac, "group": device.group, "range": device.range,
            "make": device.make, "model": device.model}
    fields: dict[str, FieldValue] = {
        "ip": device.ip,
        "online": False,
        "state": device.state,
        "failures": device.failures,
    }
    if device.error:
        fields["error"] = device.error
    return Metric("miner", tags, fields, time_ns)
