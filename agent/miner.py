"""What every miner driver speaks: identities, normalised readings, control values, metrics.

A driver (a ``kind="miner"`` input, see :mod:`webbo.agent.hookspecs`) turns one make's protocol
into these Structs; the core turns them into metrics and API answers. Units are fixed here so
no driver can get them wrong downstream: hashrate in TH/s, power in W, temperatures in °C, fan
speeds in RPM, times in seconds. ``None`` means "this device does not report it" and becomes a
missing field, never a 0.
"""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec

from webbo.agent.metric import FieldValue, Metric

if TYPE_CHECKING:
    from webbo.agent.inventory import Device
    from webbo.agent.net import Probe

__all__ = [
    "BoardReading",
    "ErrorCode",
    "Identity",
    "LedStatus",
    "MinerDriver",
    "MiningPool",
    "PoolReading",
    "Reading",
    "WorkMode",
    "normalise_mac",
    "reading_metrics",
]


class WorkMode(enum.StrEnum):
    """The manual's MinerWorkMode (§3.5.6)."""

    NORMAL = "normal"
    SLEEP = "sleep"
    LOW_POWER = "low_power"
    UNKNOWN = "unknown"


class LedStatus(enum.IntEnum):
    """The manual's MinerLedStatus (§3.5.3): 0 = LEDs steady, 1 = blinking (locate)."""

    NORMAL = 0
    BLINK = 1


class MiningPool(msgspec.Struct, forbid_unknown_fields=True):
    """The manual's MiningPool as the device holds it (``suffix_type`` is an API-only input)."""

    address: str
    worker: str
    passwd: str


_SEPARATORS = re.compile(r"[:\-.\s]")
_HEX12 = re.compile(r"^[0-9a-f]{12}$")


def normalise_mac(value: str | None) -> str | None:
    """``AA-BB-CC-DD-EE-FF``, ``aabb.ccdd.eeff`` or ``AA:BB:...`` → ``aa:bb:cc:dd:ee:ff``.

    None for anything that is not a usable MAC (wrong length, all zeros, broadcast).
    """
    digits = _SEPARATORS.sub("", value or "").lower()
    if not _HEX12.match(digits) or digits in ("000000000000", "ffffffffffff"):
        return None
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


class Identity(msgspec.Struct, kw_only=True):
    """What a driver learnt when it claimed an address. Cached in the inventory, so a poll does
    not have to ask again (identity and MAC are read once, at identification)."""

    driver: str
    """Name of the driver (input plugin) that claimed the device; it polls and controls it."""
    mac: str
    """Lower-case ``aa:bb:cc:dd:ee:ff``: the device's identity across IP changes."""
    make: str
    model: str
    firmware: str = ""
    hostname: str = ""
    serial: str = ""
    mac_source: str = "device"
    """Where the MAC came from: "device" (its API), "arp" (this host's neighbour table) or
    "derived" (made from the IP because nothing else was available)."""
    extra: dict[str, str] = msgspec.field(default_factory=dict)
    """Driver-private facts worth caching (API generation, web port, rate unit, ...)."""


class ErrorCode(msgspec.Struct, kw_only=True):
    code: str
    message: str = ""
    time: str = ""


class BoardReading(msgspec.Struct, kw_only=True):
    index: int
    hashrate_ths: float | None = None
    expected_hashrate_ths: float | None = None
    temp_board_c: float | None = None
    temp_chip_c: float | None = None
    chips: int | None = None
    expected_chips: int | None = None
    hw_errors: int | None = None
    frequency_mhz: float | None = None
    serial: str | None = None


class PoolReading(msgspec.Struct, kw_only=True):
    index: int
    """0-based slot."""
    url: str
    user: str = ""
    status: str = ""
    active: bool = False
    accepted: int | None = None
    rejected: int | None = None


class Reading(msgspec.Struct, kw_only=True):
    """One poll of one miner, normalised."""

    time_ns: int
    hashrate_ths: float | None = None
    """Current hashrate (the shortest average the firmware offers: 5 s / 1 min)."""
    hashrate_avg_ths: float | None = None
    expected_hashrate_ths: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    temp_env_c: float | None = None
    temp_board_max_c: float | None = None
    temp_chip_max_c: float | None = None
    fans_rpm: list[int] = msgspec.field(default_factory=list)
    fan_psu_rpm: int | None = None
    uptime_s: int | None = None
    work_mode: WorkMode | None = None
    led: LedStatus | None = None
    is_mining: bool | None = None
    accepted: int | None = None
    rejected: int | None = None
    hw_errors: int | None = None
    firmware: str | None = None
    hostname: str | None = None
    boards: list[BoardReading] = msgspec.field(default_factory=list)
    pools: list[PoolReading] = msgspec.field(default_factory=list)
    errors: list[ErrorCode] = msgspec.field(default_factory=list)

    @property
    def efficiency_jth(self) -> float | None:
        if self.power_w and self.hashrate_ths:
            return self.power_w / self.hashrate_ths
        return None

    @property
    def active_pool(self) -> str | None:
        for pool in self.pools:
            if pool.active:
                return pool.url
        return None


@runtime_checkable
class MinerDriver(Protocol):
    """A make's protocol, used by the sweep of the ``[network]`` ranges.

    ``identify`` is asked for every new address, drivers in ascending ``priority`` order; it
    uses the shared, memoised :class:`~webbo.agent.net.Probe` so cheap probes (``GET /``, RPC
    ``version``) are made once per address however many drivers look at them. Return None when
    the device is not yours. ``poll`` reads one known device and raises
    :class:`~webbo.agent.errors.DeviceError` (``DeviceUnreachable`` when nothing answered).

    Control actions are not methods here: the plugin answers the ``webbo_control`` hook for the
    devices whose ``driver`` is its name.
    """

    name: str
    priority: int

    async def identify(self, probe: Probe) -> Identity | None: ...

    async def poll(self, device: Device) -> Reading: ...


# --------------------------------------------------------------------------------------------
# Readings → metrics (docs/metrics.md is the contract)
# --------------------------------------------------------------------------------------------


def _put(fields: dict[str, FieldValue], key: str, value: Any) -> None:
    if value is not None:
        fields[key] = value


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def _error_text(error: ErrorCode) -> str:
    """``code: message (since time)`` — the parts the firmware gave."""
    text = f"{error.code}: {error.message}" if error.message else error.code
    return f"{text} (since {error.time})" if error.time else text


def reading_metrics(device: Device, reading: Reading) -> list[Metric]:
    """``miner``, ``miner_board`` and ``miner_pool`` metrics of one successful poll."""
    ts = reading.time_ns
    base = {"mac": device.mac, "group": device.group, "range": device.range}
    tags = {**base, "make": device.make, "model": device.model}
    fields: dict[str, FieldValue] = {"ip": device.ip, "online": True, "state": "ok"}
    _put(fields, "hostname", reading.hostname or device.hostname or None)
    _put(fields, "firmware", reading.firmware or device.firmware or None)
    _put(fields, "hashrate_ths", _r(reading.hashrate_ths))
    _put(fields, "hashrate_avg_ths", _r(reading.hashrate_avg_ths))
    _put(fields, "expected_hashrate_ths", _r(reading.expected_hashrate_ths))
    _put(fields, "power_w", _r(reading.power_w, 1))
    _put(fields, "power_limit_w", _r(reading.power_limit_w, 1))
    _put(fields, "efficiency_jth", _r(reading.efficiency_jth, 2))
    _put(fields, "temp_env_c", _r(reading.temp_env_c, 1))
    _put(fields, "temp_board_max_c", _r(reading.temp_board_max_c, 1))
    _put(fields, "temp_chip_max_c", _r(reading.temp_chip_max_c, 1))
    fans = [f for f in reading.fans_rpm if f is not None]
    if fans:
        fields["fan_rpm_min"] = min(fans)
        fields["fan_rpm_max"] = max(fans)
        fields["fan_count"] = len(fans)
    _put(fields, "fan_psu_rpm", reading.fan_psu_rpm)
    _put(fields, "uptime_s", reading.uptime_s)
    _put(fields, "work_mode", reading.work_mode.value if reading.work_mode else None)
    _put(fields, "led", int(reading.led) if reading.led is not None else None)
    _put(fields, "is_mining", reading.is_mining)
    _put(fields, "accepted", reading.accepted)
    _put(fields, "rejected", reading.rejected)
    _put(fields, "hw_errors", reading.hw_errors)
    _put(fields, "active_pool", reading.active_pool)
    fields["error_count"] = len(reading.errors)
    if reading.errors:
        fields["errors"] = "; ".join(_error_text(e) for e in reading.errors)
    metrics = [Metric("miner", tags, fields, ts)]
    for board in reading.boards:
        bfields: dict[str, FieldValue] = {}
        _put(bfields, "hashrate_ths", _r(board.hashrate_ths))
        _put(bfields, "expected_hashrate_ths", _r(board.expected_hashrate_ths))
        _put(bfields, "temp_board_c", _r(board.temp_board_c, 1))
        _put(bfields, "temp_chip_c", _r(board.temp_chip_c, 1))
        _put(bfields, "chips", board.chips)
        _put(bfields, "expected_chips", board.expected_chips)
        _put(bfields, "hw_errors", board.hw_errors)
        _put(bfields, "frequency_mhz", _r(board.frequency_mhz, 1))
        if bfields:
            metrics.append(Metric("miner_board", {**base, "board": str(board.index)}, bfields, ts))
    for pool in reading.pools:
        pfields: dict[str, FieldValue] = {"url": pool.url, "user": pool.user,
                                          "active": pool.active}
        _put(pfields, "status", pool.status or None)
        _put(pfields, "accepted", pool.accepted)
        _put(pfields, "rejected", pool.rejected)
        metrics.append(Metric("miner_pool", {**base, "index": str(pool.index)}, pfields, ts))
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
