"""Readings → metrics: ``miner``, ``miner_board``, ``miner_pool`` (docs/metrics.md is the
contract). This runs for every miner every cycle, so it is written for speed.

Each metric is built with its line-protocol line at once: the keys are this module's own
(nothing to escape), the value types are known, and a device's tags are the same for all of
its points, so writing ``key=value`` while the fields are collected costs a third of building
the line later from the packed fields (which sorts and escapes every tag of every point). The
line is exactly what :meth:`Metric.line` would build; tests/agent/fleet/test_hot_paths.py holds
the two to it.
"""

from __future__ import annotations

from webbo.agent.core.metric import FieldValue, Metric, tag_text
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.model import ErrorCode, Reading

__all__ = ["failure_metric", "reading_metrics"]

FANLESS = frozenset({"hydro", "immersion"})
"""Cooling of the models that have no fans of their own: they report ``fan_count = 0``."""


def _error_text(error: ErrorCode) -> str:
    """``code: message (since time)`` — the parts the firmware gave."""
    text = f"{error.code}: {error.message}" if error.message else error.code
    return f"{text} (since {error.time})" if error.time else text


_MINER_FLOATS = (
    ("hashrate_ths", 3), ("hashrate_avg_ths", 3), ("expected_hashrate_ths", 3),
    ("power_w", 1), ("power_limit_w", 1),
)
_MINER_TEMPS = ("temp_env_c", "temp_board_max_c", "temp_chip_max_c")
_MINER_REALS = (*_MINER_FLOATS, ("efficiency_jth", 2), *((t, 1) for t in _MINER_TEMPS))
"""The miner point's float fields in order, with their rounding."""
_MINER_COUNTERS = ("is_mining", "accepted", "rejected", "hw_errors")
_BOARD_FIELDS = (
    ("hashrate_ths", 3), ("expected_hashrate_ths", 3), ("temp_board_c", 1), ("temp_chip_c", 1),
    ("chips", None), ("expected_chips", None), ("hw_errors", None), ("frequency_mhz", 1),
)
_INT_MIN, _INT_MAX = -0x8000_0000_0000_0000, 0x7FFF_FFFF_FFFF_FFFF
_MINER_TAGS = ("mac", "group", "range", "make", "model")
_BOARD_TAGS = ("mac", "group", "range", "board")
_POOL_TAGS = ("mac", "group", "range", "index")

_FRAGMENTS: dict[tuple[str, str], str] = {}
_FRAGMENT_LIMIT = 4096


def _tag(key: str, value: str) -> str:
    """``,key=value`` as a line writes it, '' when the tag drops out (an empty value). Group,
    range, make and model repeat over a farm: their fragments are remembered (bounded)."""
    fragment = _FRAGMENTS.get((key, value))
    if fragment is None:
        text = tag_text(value) if value else ""
        fragment = f",{key}={text}" if text else ""
        if len(_FRAGMENTS) < _FRAGMENT_LIMIT:
            _FRAGMENTS[(key, value)] = fragment
    return fragment


def _utf8(line: str) -> bytes:
    return line.encode("utf-8", "replace")  # as Metric encodes the lines it builds


def _quoted(text: str) -> str:
    if "\\" in text or '"' in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


class _Point:
    """The fields of one point, with their ``key=value`` line parts, collected together."""

    __slots__ = ("exotic", "keys", "parts", "values")

    def __init__(self, keys: list[str], values: list[FieldValue], parts: list[str]) -> None:
        self.keys = keys
        self.values = values
        self.parts = parts
        self.exotic = False
        """A value of another type (an unsigned int, an enum): the line is left to Metric."""

    def number(self, key: str, value: float | int | bool) -> None:
        """A float, int or bool field (rounded by the caller), written as the line would."""
        self.keys.append(key)
        self.values.append(value)
        kind = type(value)
        if kind is float:
            if value - value == 0.0:  # NaN and ±inf are not written
                self.parts.append(f"{key}={value!r}")
        elif kind is int and _INT_MIN <= value <= _INT_MAX:
            self.parts.append(f"{key}={value}i")
        elif kind is bool:
            self.parts.append(f"{key}=true" if value else f"{key}=false")
        else:
            self.exotic = True

    def text(self, key: str, value: str) -> None:
        self.keys.append(key)
        self.values.append(value)
        self.parts.append(f"{key}={_quoted(value)}")

    def metric(self, name: str, tag_keys: tuple[str, ...], tag_values: tuple[str, ...],
               head: str, ts: int) -> Metric:
        if self.exotic:
            line = None
        else:
            line = _utf8(f"{head} {','.join(self.parts)} {ts}") if self.parts else b""
        return Metric.packed(name, tag_keys, tag_values, self.keys, self.values, ts, line)


def _miner_point(device: Device, reading: Reading) -> _Point:
    point = _Point(["ip", "online", "state"], [device.ip, True, "ok"],
                   [f"ip={_quoted(device.ip)}", "online=true", 'state="ok"'])
    number, text = point.number, point.text
    keys, values, parts = point.keys, point.values, point.parts
    value = reading.hostname or device.hostname
    if value:
        text("hostname", value)
    value = reading.firmware or device.firmware
    if value:
        text("firmware", value)
    for name, digits in _MINER_REALS:  # floats: the common case, written inline
        figure = getattr(reading, name)
        if figure is not None:
            figure = round(float(figure), digits)
            keys.append(name)
            values.append(figure)
            if figure - figure == 0.0:  # NaN and ±inf are not written
                parts.append(f"{name}={figure!r}")
    fans = [f for f in reading.fans_rpm if f is not None]
    if fans:
        number("fan_rpm_min", min(fans))
        number("fan_rpm_max", max(fans))
        number("fan_count", len(fans))
    elif reading.cooling in FANLESS:
        number("fan_count", 0)
    if reading.cooling:
        text("cooling", reading.cooling)
    for name in ("fan_psu_rpm", "uptime_s"):
        figure = getattr(reading, name)
        if figure is not None:
            number(name, figure)
    if reading.work_mode:
        text("work_mode", reading.work_mode.value)
    if reading.led is not None:
        number("led", int(reading.led))
    for name in _MINER_COUNTERS:
        figure = getattr(reading, name)
        if figure is not None:
            number(name, figure)
    pool_url = reading.active_pool
    if pool_url is not None:
        text("active_pool", pool_url)
    number("error_count", len(reading.errors))
    if reading.errors:
        text("errors", "; ".join(_error_text(e) for e in reading.errors))
    return point


def reading_metrics(device: Device, reading: Reading) -> list[Metric]:
    """``miner``, ``miner_board`` and ``miner_pool`` metrics of one successful poll, each
    packed (values against shared key tuples) and with its line already built."""
    ts = reading.time_ns
    mac, group, range_ = device.mac, device.group, device.range
    g, r = _tag("group", group), _tag("range", range_)
    mac_text = tag_text(mac) if mac else ""  # unique per device: not worth remembering
    m = f",mac={mac_text}" if mac_text else ""
    head = f"miner{g}{m}{_tag('make', device.make)}{_tag('model', device.model)}{r}"
    metrics = [_miner_point(device, reading).metric(
        "miner", _MINER_TAGS, (mac, group, range_, device.make, device.model), head, ts)]
    for board in reading.boards:
        keys: list[str] = []
        values: list[FieldValue] = []
        parts: list[str] = []
        exotic = False
        for name, digits in _BOARD_FIELDS:
            figure = getattr(board, name)
            if figure is None:
                continue
            keys.append(name)
            if digits is not None:
                figure = round(float(figure), digits)
                values.append(figure)
                if figure - figure == 0.0:
                    parts.append(f"{name}={figure!r}")
            else:
                values.append(figure)
                if type(figure) is int and _INT_MIN <= figure <= _INT_MAX:
                    parts.append(f"{name}={figure}i")
                else:
                    exotic = True
        if keys:
            index = str(board.index)
            line = None if exotic else (
                _utf8(f"miner_board,board={tag_text(index)}{g}{m}{r} {','.join(parts)} {ts}")
                if parts else b"")
            metrics.append(Metric.packed("miner_board", _BOARD_TAGS, (mac, group, range_, index),
                                         keys, values, ts, line))
    for pool in reading.pools:
        keys = ["url", "user", "active"]
        values: list[FieldValue] = [pool.url, pool.user, pool.active]
        parts = [f"url={_quoted(pool.url)}", f"user={_quoted(pool.user)}",
                 "active=true" if pool.active is True else "active=false"]
        exotic = type(pool.active) is not bool
        if pool.status:
            keys.append("status")
            values.append(pool.status)
            parts.append(f"status={_quoted(pool.status)}")
        for name in ("accepted", "rejected"):
            count = getattr(pool, name)
            if count is not None:
                keys.append(name)
                values.append(count)
                if type(count) is int and _INT_MIN <= count <= _INT_MAX:
                    parts.append(f"{name}={count}i")
                else:
                    exotic = True
        index = str(pool.index)
        line = None if exotic else _utf8(
            f"miner_pool{g},index={tag_text(index)}{m}{r} {','.join(parts)} {ts}")
        metrics.append(Metric.packed("miner_pool", _POOL_TAGS, (mac, group, range_, index),
                                     keys, values, ts, line))
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
