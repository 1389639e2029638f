"""What sites and hubs send each other: msgspec Structs, JSON on the wire.

JSON, not a binary format of our own, so an operator can watch a site with any NATS tool
(``nats sub 'webbo.msk-1.>'``). The per-miner state that every sweep publishes is the one bulky
message: :class:`MinerState` is encoded as an array (no field names) and a sweep's states go in
parts of :data:`STATE_PART` miners, each well under NATS's default 1 MiB message limit.
"""

from __future__ import annotations

from typing import Any

import msgspec

from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.model import (
    ErrorCode,
    LedStatus,
    PoolReading,
    Reading,
    WorkMode,
)

__all__ = [
    "STATE_PART",
    "AlertMsg",
    "ControlReply",
    "ControlRequest",
    "DeviceInfo",
    "Heartbeat",
    "InventoryMsg",
    "MetersMsg",
    "MinerState",
    "NetworkReply",
    "NetworkRequest",
    "SnapshotRequest",
    "StateMsg",
    "TaskEvent",
    "device_info",
    "reading_of",
    "state_of",
]

STATE_PART = 2000
"""Miners per state message (about 150 bytes each: 300 KB)."""


class DeviceInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A miner's identity and place, as the inventory holds it (no reading)."""

    mac: str
    ip: str
    driver: str
    make: str
    model: str
    firmware: str = ""
    hostname: str = ""
    serial: str = ""
    mac_source: str = "device"
    group: str = ""
    group_id: str = ""
    range: str = ""
    range_id: str = ""
    first_seen: float = 0.0

    def key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self.__struct_fields__)


def device_info(device: Device) -> DeviceInfo:
    return DeviceInfo(mac=device.mac, ip=device.ip, driver=device.driver, make=device.make,
                      model=device.model, firmware=device.firmware, hostname=device.hostname,
                      serial=device.serial, mac_source=device.mac_source, group=device.group,
                      group_id=device.group_id, range=device.range, range_id=device.range_id,
                      first_seen=device.first_seen)


def info_key(device: Device) -> tuple[Any, ...]:
    """What :class:`DeviceInfo` carries, cheaply (a site compares these every sweep)."""
    return (device.ip, device.driver, device.make, device.model, device.firmware,
            device.hostname, device.serial, device.mac_source, device.group, device.group_id,
            device.range, device.range_id)


class InventoryMsg(msgspec.Struct, kw_only=True):
    """Inventory changes (``snapshot`` empty) or one part of a full snapshot."""

    instance: str
    rev: int
    """The site's inventory revision after this message."""
    base: int = 0
    """The revision these changes apply to (a hub that holds another asks for a snapshot)."""
    devices: list[DeviceInfo] = msgspec.field(default_factory=list)
    removed: list[str] = msgspec.field(default_factory=list)
    snapshot: str = ""
    part: int = 0
    parts: int = 1


class MinerState(msgspec.Struct, array_like=True, gc=False):
    """One miner after one sweep: its state and the reading's headline figures."""

    mac: str
    state: str
    error: str
    failures: int
    last_seen: float
    time_ns: int = 0
    hashrate: float | None = None
    hashrate_avg: float | None = None
    expected: float | None = None
    power: float | None = None
    power_limit: float | None = None
    temp_env: float | None = None
    temp_board: float | None = None
    temp_chip: float | None = None
    fans: list[int] = msgspec.field(default_factory=list)
    uptime: int | None = None
    mode: str | None = None
    led: int | None = None
    mining: bool | None = None
    accepted: int | None = None
    rejected: int | None = None
    hw_errors: int | None = None
    pool: str | None = None
    errors: list[tuple[str, str]] = msgspec.field(default_factory=list)


def state_of(device: Device) -> MinerState:
    r = device.reading
    if r is None:
        return MinerState(device.mac, device.state, device.error, device.failures,
                          device.last_seen)
    return MinerState(
        device.mac, device.state, device.error, device.failures, device.last_seen, r.time_ns,
        r.hashrate_ths, r.hashrate_avg_ths, r.expected_hashrate_ths, r.power_w, r.power_limit_w,
        r.temp_env_c, r.temp_board_max_c, r.temp_chip_max_c, r.fans_rpm, r.uptime_s,
        r.work_mode.value if r.work_mode is not None else None,
        int(r.led) if r.led is not None else None, r.is_mining, r.accepted, r.rejected,
        r.hw_errors, r.active_pool, [(e.code, e.message) for e in r.errors])


def reading_of(s: MinerState) -> Reading | None:
    """The hub's Reading of a miner: the figures the tables, the map and the charts show
    (boards and the pools' details stay at the site)."""
    if not s.time_ns:
        return None
    mode = WorkMode(s.mode) if s.mode in WorkMode._value2member_map_ else None
    return Reading(
        time_ns=s.time_ns, hashrate_ths=s.hashrate, hashrate_avg_ths=s.hashrate_avg,
        expected_hashrate_ths=s.expected, power_w=s.power, power_limit_w=s.power_limit,
        temp_env_c=s.temp_env, temp_board_max_c=s.temp_board, temp_chip_max_c=s.temp_chip,
        fans_rpm=s.fans, uptime_s=s.uptime, work_mode=mode,
        led=LedStatus(s.led) if s.led in (0, 1) else None, is_mining=s.mining,
        accepted=s.accepted, rejected=s.rejected, hw_errors=s.hw_errors,
        pools=[PoolReading(index=0, url=s.pool, active=True)] if s.pool else [],
        errors=[ErrorCode(code=c, message=m) for c, m in s.errors])


class StateMsg(msgspec.Struct, kw_only=True):
    """One part of one sweep's per-miner state."""

    instance: str
    seq: int
    """Per agent instance, +1 for every state and alert message (the hub skips one it has)."""
    sweep: int
    time: float
    part: int
    parts: int
    miners: list[MinerState]


class AlertMsg(msgspec.Struct, kw_only=True):
    instance: str
    seq: int
    time: float
    alert: dict[str, Any]
    """What the site's alert engine handed over, as it was."""


class TaskProgress(msgspec.Struct, kw_only=True):
    id: str
    devices: int
    done: int


class Heartbeat(msgspec.Struct, kw_only=True):
    site: str
    instance: str
    """A new one at every start of the agent: two live instances of one site name conflict."""
    host: str
    version: str
    started_at: float
    time: float
    interval: float
    inventory_rev: int
    network_rev: str
    miners: int
    by_state: dict[str, int]
    stream: str = ""
    """The site's JetStream stream (empty: state and alerts are plain messages)."""
    domain: str = ""
    """The JetStream domain through which the hub reads the stream."""
    conflict: str = ""
    """Set when this agent found another one using its site name."""
    leaving: bool = False
    """The agent is stopping (its miners go stale at once, not after ``stale_after``)."""


class MetersMsg(msgspec.Struct, kw_only=True):
    instance: str
    time: float
    meters: list[dict[str, Any]]
    """The meters' devices with their live state and values, as the Meters page shows them."""


class ControlRequest(msgspec.Struct, kw_only=True):
    id: str
    """The request's id (the hub's task id): a site runs one id at most once."""
    hub: str
    method: str
    who: str
    action: str
    macs: list[str]
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    pools: list[dict[str, str] | None] | None = None
    progress_every: float = 2.0


class TaskEvent(msgspec.Struct, kw_only=True):
    id: str
    hub: str
    event: str
    """``accepted``, ``progress`` or ``done``."""
    devices: int = 0
    done: int = 0
    status: str = ""
    summary: dict[str, int] = msgspec.field(default_factory=dict)


class ControlReply(msgspec.Struct, kw_only=True):
    id: str
    status: str
    """The site task's status (``success``, ``failure``, ``canceled``) or ``refused``."""
    result: dict[str, Any] | None = None
    error: str = ""


class NetworkRequest(msgspec.Struct, kw_only=True):
    op: str
    """``get``, ``check`` (a dry run) or ``apply``."""
    hub: str = ""
    who: str = ""
    groups: list[dict[str, Any]] = msgspec.field(default_factory=list)


class NetworkReply(msgspec.Struct, kw_only=True):
    ok: bool
    network: dict[str, Any] = msgspec.field(default_factory=dict)
    errors: list[tuple[str, str]] = msgspec.field(default_factory=list)
    """(key path, reason) of what the site refused."""
    error: str = ""


class SnapshotRequest(msgspec.Struct, kw_only=True):
    hub: str
    reason: str = ""


class PingReply(msgspec.Struct, kw_only=True):
    instance: str
    host: str
    started_at: float


encoder = msgspec.json.Encoder()
