"""What every miner driver speaks: identities, normalised readings, control values.

A driver (:mod:`webbo.agent.fleet.driver`) turns one make's protocol into these Structs; the
fleet turns them into metrics (:mod:`webbo.agent.fleet.metrics`) and API answers. Units are
fixed here so no driver can get them wrong downstream: hashrate in TH/s, power in W,
temperatures in °C, fan speeds in RPM, times in seconds. ``None`` means "this device does not
report it" and becomes a missing field, never a 0.
"""

from __future__ import annotations

import enum
import re

import msgspec

__all__ = [
    "BoardReading",
    "ErrorCode",
    "Identity",
    "LedStatus",
    "MiningPool",
    "PoolReading",
    "Reading",
    "WorkMode",
    "normalise_mac",
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
    """Speed of each fan the miner reports, a stopped fan as 0. Empty: no fan reported (see
    ``cooling``: a hydro or immersion model has none)."""
    fan_psu_rpm: int | None = None
    cooling: str | None = None
    """``air`` (fans of its own), ``hydro`` or ``immersion`` (no fans), None when the device
    does not tell."""
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
