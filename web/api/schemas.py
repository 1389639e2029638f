"""The API's request and answer objects, as the manual defines them (msgspec Structs).

Requests are decoded strictly: unknown fields, wrong JSON types (``"1"`` for ``1``, ``true``
for ``1``) and values outside the manual's sets are refused with the field's path. The same
Structs generate the OpenAPI document, so the schema and the checks cannot drift apart.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from webbo.agent.fleet.model import Reading
from webbo.agent.fleet.pools import PoolSpec
from webbo.agent.fleet.selectors import Selector

MAC_PATTERN = r"^[0-9a-f]{2}(?:\:[0-9a-f]{2}){5}$"
IPV4_PATTERN = (r"^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}"
                r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$")
UUID4_PATTERN = (r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-"
                 r"[0-9a-fA-F]{12}$")

MACAddr = Annotated[str, Meta(pattern=MAC_PATTERN,
                              description="lower-case MAC address, e.g. ce:86:7e:e5:1b:33")]
IPv4 = Annotated[str, Meta(pattern=IPV4_PATTERN, description="IPv4 address, e.g. 10.30.0.16")]
UUID4 = Annotated[str, Meta(pattern=UUID4_PATTERN, description="UUID version 4")]

PATTERN_NAMES = {
    MAC_PATTERN: 'a lower-case MAC address like "ce:86:7e:e5:1b:33"',
    IPV4_PATTERN: 'an IPv4 address like "10.30.0.16"',
    UUID4_PATTERN: "a UUID4 like \"2a67feee-08f0-4ce1-89cd-7f8282bd1369\"",
}
"""Validation messages name what was expected instead of quoting a regular expression."""

SELECTORS = ("macs", "ip_range", "ip_range_id", "ip_range_group_id")


class Params(Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every request body: unknown fields are refused."""


class NoParams(Params, kw_only=True):
    """Methods without parameters take an empty object ``{}``."""


# -- network -----------------------------------------------------------------------------------


class IPRange(Params, kw_only=True):
    """The manual's IPRange: ``first`` and ``last`` inclusive; ``uuid`` made when absent."""

    name: str = ""
    uuid: UUID4 | None = None
    first: IPv4
    last: IPv4

    def __post_init__(self) -> None:
        if ipaddress.IPv4Address(self.first) > ipaddress.IPv4Address(self.last):
            raise ValueError(f"last ({self.last}) is before first ({self.first})")


class IPRangeGroup(Params, kw_only=True):
    name: str = ""
    uuid: UUID4 | None = None
    ip_ranges: list[IPRange] = msgspec.field(default_factory=list)
    site: str | UnsetType = UNSET
    """Our addition, on a hub: the site whose agent polls this group (may be left out when the
    hub has one site)."""


class Network(Params, kw_only=True):
    """The manual's Network object (§3.4.1)."""

    ip_range_groups: list[IPRangeGroup] = msgspec.field(default_factory=list)


class IPRangeOut(Struct):
    name: str
    uuid: str
    first: str
    last: str


class IPRangeGroupOut(Struct):
    name: str
    uuid: str
    ip_ranges: list[IPRangeOut]
    site: str | UnsetType = UNSET
    """On a hub: the site whose agent polls this group."""


class NetworkOut(Struct):
    ip_range_groups: list[IPRangeGroupOut]


# -- tasks -------------------------------------------------------------------------------------


class TaskIdParams(Params, kw_only=True):
    task_id: str
    """Any string: one that is not a UUID4 answers status ``invalid`` (manual §3.3)."""


class TaskCreated(Struct):
    task_id: Annotated[str, Meta(description="UUID4 of the new task; poll /api/task-info")]


TaskStatusName = Literal["invalid", "unknown", "success", "failure", "pending", "canceled"]


class TaskInfo(Struct):
    status: TaskStatusName
    result: Any = None


# -- miners ------------------------------------------------------------------------------------


class MinersParams(Params, kw_only=True):
    """The manual's MinersAPIBaseParams (§3.5.1): exactly one selector."""

    macs: Literal["*"] | list[MACAddr] | None = None
    ip_range: IPRange | None = None
    ip_range_id: UUID4 | None = None
    ip_range_group_id: UUID4 | None = None

    def __post_init__(self) -> None:
        given = [name for name in SELECTORS if getattr(self, name) is not None]
        if len(given) != 1:
            got = "none" if not given else f"{len(given)}: {', '.join(given)}"
            raise ValueError("exactly one of macs, ip_range, ip_range_id, ip_range_group_id "
                             f"must be given (got {got})")

    def selector(self) -> Selector:
        macs = self.macs
        return Selector(
            macs=macs if macs is None or macs == "*" else tuple(macs),
            ip_range=(self.ip_range.first, self.ip_range.last) if self.ip_range else None,
            ip_range_id=self.ip_range_id.lower() if self.ip_range_id else None,
            ip_range_group_id=self.ip_range_group_id.lower() if self.ip_range_group_id else None,
        )


class SetLedParams(MinersParams, kw_only=True):
    status: Literal[0, 1]
    """1 = blink (locate), 0 = steady."""


class SetWorkModeParams(MinersParams, kw_only=True):
    mode: Literal["normal", "sleep", "low_power"]


class CommandParams(MinersParams, kw_only=True):
    """A command of the miners' own API, sent as it is (our addition)."""

    command: Annotated[str, Meta(min_length=1, max_length=100)]
    """The command: ``summary``, ``get_psu``, ``power_off`` (Whatsminer API v2),
    ``get.device.info``, ``set.miner.service`` (API v3), ``stats``, ``ascset`` (cgminer RPC)."""
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    """Its parameters: Whatsminer v2 writes take the library's ``additional_params`` (e.g.
    ``{"respbefore": "true"}``), v3 ``{"param": ...}``, cgminer RPC ``{"parameter": "..."}``."""
    write: bool = False
    """True for a command that changes the miner (allowed only where the driver's
    ``raw_writes`` is on; never retried when its outcome is unknown)."""


class MiningPoolIn(Params, kw_only=True):
    """The manual's MiningPool with ``suffix_type`` (used only when setting pools)."""

    address: str
    worker: str
    passwd: str
    suffix_type: Literal["ip", "no_change", "empty"] = "no_change"

    def spec(self) -> PoolSpec:
        return PoolSpec(self.address, self.worker, self.passwd, self.suffix_type)


class SetPoolsParams(MinersParams, kw_only=True):
    pools: tuple[MiningPoolIn | None, MiningPoolIn | None, MiningPoolIn | None]
    """Exactly three slots; null keeps the device's pool in that slot."""


class MiningPoolOut(Struct):
    address: str
    worker: str
    passwd: str


class DeviceOutcome(Struct):
    success: bool
    payload: Any = None


DeviceResults = dict[str, DeviceOutcome]


MinerState = Literal["new", "ok", "unreachable", "timeout", "error", "stale"]
AddressState = Literal["new", "ok", "unreachable", "timeout", "error", "stale",
                       "unrecognised", "silent", "pending"]


class MinersQuery(Params, kw_only=True):
    """Filters of /api/mining/miners/get (all optional, combined with AND)."""

    macs: list[MACAddr] | None = None
    group: str | None = None
    """A group's name or uuid."""
    range: str | None = None
    """A range's name or uuid."""
    site: str | None = None
    """On a hub: only this site's miners."""
    state: AddressState | list[AddressState] | None = None
    """Known miners' states (``new``, ``ok``, ``unreachable``, ``timeout``, ``error``; on a hub
    ``stale``) and the states of addresses with no known miner (``unrecognised``,
    ``timeout``, ``silent``, ``pending``)."""
    offset: Annotated[int, Meta(ge=0)] = 0
    limit: Annotated[int, Meta(ge=1, le=100_000)] | None = None


class MinerOut(Struct):
    mac: str
    ip: str
    make: str
    model: str
    firmware: str
    hostname: str
    serial: str
    driver: str
    group: str
    group_id: str
    range: str
    range_id: str
    state: MinerState
    error: str
    failures: int
    failing_since: float | None
    """When its current failures began (null while it answers)."""
    first_seen: float
    last_seen: float
    reading: Reading | None
    site: str | UnsetType = UNSET
    """On a hub: the site whose agent polls this miner."""


class AddressOut(Struct):
    """An address of the ranges that holds no known miner."""

    ip: str
    state: Literal["unrecognised", "timeout", "silent", "pending"]
    group: str
    group_id: str
    range: str
    range_id: str
    since: float | None
    """Since when it shows this state (unrecognised, timeout)."""
    until: float | None
    """When a silent address is tried again."""
    ports: list[int]
    """Ports that accepted a connection (unrecognised, timeout)."""
    said: list[str]
    """What it answered (short snippets)."""


class MinersList(Struct):
    total: int
    """Devices matching the filters (before offset/limit)."""
    miners: list[MinerOut]
    counts: dict[str, int]
    """Every address of the ranges (narrowed by ``group``/``range``) by state; they add up to
    the number of addresses."""
    addresses: list[AddressOut]
    """Addresses with no known miner matching ``state`` (without ``state``: the unrecognised
    and timed-out ones), after offset/limit."""
    addresses_total: int


# -- serial ------------------------------------------------------------------------------------


class GetPortsParams(Params, kw_only=True):
    include_all: bool = False
    """Our addition: list every serial port, not only USB ones (the manual's default)."""


class PortSettings(Params, kw_only=True):
    """``serial.Serial`` arguments (manual §3.5.9), defaults as the manual gives them."""

    baudrate: Annotated[int, Meta(gt=0)] = 9600
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: float = 1
    timeout: Annotated[float, Meta(ge=0)] | None = None
    xonxoff: bool = False
    rtscts: bool = False
    write_timeout: Annotated[float, Meta(ge=0)] | None = None
    dsrdtr: bool = False
    inter_byte_timeout: Annotated[float, Meta(ge=0)] | None = None

    def __post_init__(self) -> None:
        if self.stopbits not in (1, 1.5, 2):
            raise ValueError(f"stopbits must be 1, 1.5 or 2, got {self.stopbits}")


Password = Annotated[str, Meta(min_length=6, max_length=6)]


class MeterDevice(Params, kw_only=True):
    port: Annotated[str, Meta(min_length=1)]
    serial_number: Annotated[str, Meta(min_length=1)]
    device_model: Annotated[str, Meta(min_length=1)]
    """One of the models the meter plugin supports (its serial backend's ``models``)."""
    port_settings: PortSettings = msgspec.field(default_factory=PortSettings)
    address: Annotated[int, Meta(ge=0, le=240)] | UnsetType = UNSET
    """The meter's bus address (devices/get shows it; the meter plugin's default when absent):
    needed to add a meter that is not at address 1."""
    access_level: Literal[1, 2] = 1
    password_1: Password = "111111"
    password_2: Password = "222222"
    password_encoding: Literal["digits", "ascii"] | UnsetType = UNSET
    """The meter plugin's addition: how the password goes on the wire (tried when absent)."""


class AddDeviceParams(Params, kw_only=True):
    device: MeterDevice


class DeleteDeviceParams(Params, kw_only=True):
    serial_number: Annotated[str, Meta(min_length=1)]


# -- audit -------------------------------------------------------------------------------------


class SitesQuery(Params, kw_only=True):
    site: str | None = None
    """Only this site."""


class AlertsQuery(Params, kw_only=True):
    site: str | None = None
    limit: Annotated[int, Meta(ge=1, le=5000)] = 100


class AuditQuery(Params, kw_only=True):
    limit: Annotated[int, Meta(ge=1, le=10_000)] = 100
    task_id: str | None = None
    who: str | None = None
    """``key:<id> (<name>)`` or ``user:<name>``, as the entries show it."""
    since: float | None = None
    """Unix time: only entries at or after it."""


HINTS = {
    "macs": '"*" or a list of lower-case MAC addresses',
    "mode": "normal, sleep or low_power",
    "status": "0 or 1",
    "suffix_type": "ip, no_change or empty",
    "state": "new, ok, unreachable or error (or a list of them)",
    "access_level": "1 or 2",
    "parity": "N, E, O, M or S",
    "bytesize": "5, 6, 7 or 8",
}
"""What an enum-like field accepts, for the error message of a value outside the set."""
