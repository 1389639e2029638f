"""What every miner driver speaks: identities, normalised readings, control values, metrics.

A driver (a ``kind="miner"`` input, see :mod:`webbo.agent.core.hookspecs`) turns one make's protocol
into these Structs; the core turns them into metrics and API answers. Units are fixed here so
no driver can get them wrong downstream: hashrate in TH/s, power in W, temperatures in °C, fan
speeds in RPM, times in seconds. ``None`` means "this device does not report it" and becomes a
missing field, never a 0.
"""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import msgspec

from webbo.agent.core.metric import FieldValue, Metric

if TYPE_CHECKING:
    from webbo.agent.fleet.inventory import Device
    from webbo.agent.fleet.net import Probe

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


class ErrorCode(msgspec.Struct, kw_only=True, gc=False):
    code: str
    message: str = ""
    time: str = ""


class BoardReading(msgspec.Struct, kw_only=True, gc=False):
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


class PoolReading(msgspec.Struct, kw_only=True, gc=False):
    index: int
    """0-based slot."""
    url: str
    user: str = ""
    status: str = ""
    active: bool = False
    accepted: int | None = None
    rejected: int | None = None


class Reading(msgspec.Struct, kw_only=True, gc=False):
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
    uses the shared, memoised :class:`~webbo.agent.fleet.net.Probe` so cheap probes (``GET /``, RPC
    ``version``) are made once per address however many drivers look at them. Return None when
    the device is not yours. ``poll`` reads one known device and raises
    :class:`~webbo.agent.core.errors.DeviceError` (``DeviceUnreachable`` when nothing answered).

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
