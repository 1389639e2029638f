"""Known devices: MAC ↔ IP, which driver owns each, its place, state and latest reading.

The MAC is the identity (lower-case ``aa:bb:cc:dd:ee:ff``, as the manual's API shows it). When a
device turns up at a new address (DHCP), it *moves*; it is never duplicated. Each device's place
(group and range) follows from its current IP through :class:`RangeMap`.

The inventory is kept in ``<state_dir>/inventory.json`` (identities and addresses, not
readings), so control by MAC works right after a restart, before the first sweep.
"""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from sys import intern
from typing import Any

import msgspec
import structlog

from webbo.agent.core.config import NetworkSection
from webbo.agent.core.files import write_atomically
from webbo.agent.fleet.model import Identity, Reading
from webbo.agent.fleet.net import ip_to_int

log = structlog.get_logger("webbo.inventory")

STATES = ("new", "ok", "unreachable", "timeout", "error", "stale")
"""A known miner's state: ``new`` (identified, not polled yet), ``ok``, or failing:
``unreachable`` (nothing answers), ``timeout`` (it accepts, then hangs or is too slow),
``error`` (it answers garbage, or something no driver recognises); and on a hub only
``stale``: a miner of a site the hub has not heard from for a while."""
FAILING = frozenset({"unreachable", "timeout", "error"})
ADDRESS_STATES = ("unrecognised", "timeout", "silent", "pending")
"""What an address of the ranges that holds no known miner shows: something answers but no
driver recognises it; something accepts and then hangs or is too slow (``timeout``); nothing
answers and the address is left alone until a time (``silent``); not visited yet (``pending``)."""


class Device(msgspec.Struct, kw_only=True):
    """One known miner."""

    mac: str
    ip: str
    driver: str
    make: str
    model: str
    firmware: str = ""
    hostname: str = ""
    serial: str = ""
    mac_source: str = "device"
    extra: dict[str, str] = msgspec.field(default_factory=dict)
    group: str = ""
    group_id: str = ""
    range: str = ""
    range_id: str = ""
    site: str = ""
    """The site whose agent polls it (a hub's view; empty on a single agent)."""
    first_seen: float = 0.0
    last_seen: float = 0.0
    """Last time the device answered (identification or a successful poll)."""
    failures: int = 0
    """Consecutive failed polls."""
    failing_since: float = 0.0
    """When the current run of failures began (0 while the device answers)."""
    polls: int = 0
    """Successful polls since the last identification."""
    state: str = "new"
    """ok | unreachable | error (see ``error``) | new (identified, not polled yet)."""
    error: str = ""
    work_mode_set: str = ""
    """The work mode last set through the agent (normal, sleep, low_power), "" if never: what
    the device should be in (the alerts compare it with what the device reports)."""
    reading: Reading | None = None
    """The latest successful reading (memory only; not persisted)."""

    def apply_identity(self, identity: Identity) -> bool:
        """Take what a (re-)identification learnt. True if anything persistent changed."""
        changed = False
        for key in ("driver", "make", "model", "firmware", "hostname", "serial", "mac_source"):
            value = getattr(identity, key)
            if value and getattr(self, key) != value:
                setattr(self, key, value if key == "serial" else intern(value))
                changed = True
        if identity.extra != self.extra:
            self.extra = {intern(k): intern(v) for k, v in identity.extra.items()}
            changed = True
        return changed


class UnknownDevice(msgspec.Struct, kw_only=True):
    """Something answered at this address but no driver claimed it."""

    ip: str
    ports: list[int]
    said: list[str]
    last_seen: float
    kind: str = "unrecognised"
    """``unrecognised`` (it answered what no driver knows) or ``timeout`` (it accepted, then
    hung or answered too slowly to be identified)."""
    first_seen: float = 0.0


class _Persisted(msgspec.Struct):
    version: int
    devices: list[Device]


@dataclass(frozen=True)
class Place:
    group: str
    group_id: str
    range: str
    range_id: str
    first: int
    last: int


class RangeMap:
    """The ``[network]`` ranges as sorted integer spans: address → place, in O(log n)."""

    def __init__(self, network: NetworkSection) -> None:
        places: list[Place] = []
        for group in network.ip_range_groups:
            for range_ in group.ip_ranges:
                places.append(Place(group.name, group.uuid, range_.name, range_.uuid,
                                    ip_to_int(range_.first), ip_to_int(range_.last)))
        places.sort(key=lambda p: p.first)
        self.places = places
        self._firsts = [p.first for p in places]
        self.size = sum(p.last - p.first + 1 for p in places)

    def locate(self, ip: int) -> Place | None:
        index = bisect.bisect_right(self._firsts, ip) - 1
        if index >= 0:
            place = self.places[index]
            if place.first <= ip <= place.last:
                return place
        return None

    def addresses(self) -> Iterator[tuple[int, Place]]:
        for place in self.places:
            for ip in range(place.first, place.last + 1):
                yield ip, place


class Inventory:
    """Devices by MAC and by IP, unknown answerers, and the dead-address back-off."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.by_mac: dict[str, Device] = {}
        self.by_ip: dict[str, Device] = {}
        self.unknown: dict[str, UnknownDevice] = {}
        self._dead_until: dict[int, float] = {}
        self.dirty = False
        self.version = 0
        """Counts changes of who is where (found, moved, removed): views keyed on it (the
        devices in address order) are made again only when it moves."""
        self._by_ip_order: tuple[int, list[Device]] = (-1, [])
        self.loaded_from_disk = 0

    # -- queries --------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.by_mac)

    def get(self, mac: str) -> Device | None:
        return self.by_mac.get(mac)

    def at(self, ip: str) -> Device | None:
        return self.by_ip.get(ip)

    def _changed(self) -> None:
        self.dirty = True
        self.version += 1

    def devices(self) -> list[Device]:
        return list(self.by_mac.values())

    def devices_by_ip(self) -> list[Device]:
        """Every device in address order (those without an address last, by MAC: the order of
        task results, :func:`~webbo.agent.fleet.selectors.by_ip`), kept between
        changes: the UI's table and the API page through it on every refresh, and sorting
        50,000 addresses each time was most of their answer time. A new list each call (the
        caller may keep or change it)."""
        version, ordered = self._by_ip_order
        if version != self.version or len(ordered) != len(self.by_mac):
            ordered = sorted(self.by_mac.values(),
                             key=lambda d: (ip_to_int(d.ip) if d.ip else 1 << 33, d.mac))
            self._by_ip_order = (self.version, ordered)
        return list(ordered)

    def in_ip_span(self, first: int, last: int) -> list[Device]:
        """Devices whose current IP lies in [first, last]."""
        found = []
        for device in self.by_mac.values():
            if device.ip and first <= ip_to_int(device.ip) <= last:
                found.append(device)
        return found

    def where(self, predicate: Callable[[Device], bool]) -> list[Device]:
        return [d for d in self.by_mac.values() if predicate(d)]

    def status(self) -> dict[str, Any]:
        counts = dict.fromkeys(STATES, 0)
        for device in self.by_mac.values():
            counts[device.state] = counts.get(device.state, 0) + 1
        return {"devices": len(self.by_mac), "by_state": counts, "unknown": len(self.unknown)}

    # -- dead-address back-off ------------------------------------------------------------

    def is_backing_off(self, ip: int, now: float) -> bool:
        until = self._dead_until.get(ip)
        if until is None:
            return False
        if until <= now:
            del self._dead_until[ip]
            return False
        return True

    def back_off(self, ip: int, seconds: float, now: float) -> None:
        self._dead_until[ip] = now + seconds

    def silent(self) -> dict[int, float]:
        """Addresses being left alone, with the wall-clock time their back-off ends."""
        offset = time.time() - time.monotonic()
        return {ip: until + offset for ip, until in self._dead_until.items()}

    # -- changes --------------------------------------------------------------------------

    def learn(self, identity: Identity, ip: str, place: Place | None) -> Device:
        """Record that ``identity`` answers at ``ip`` now: add it, or move it there."""
        now = time.time()
        device = self.by_mac.get(identity.mac)
        if device is None:
            # What repeats over a farm (driver, make, model, firmware, host name) is held
            # once: at 50,000 miners each copy is megabytes.
            device = Device(
                mac=identity.mac, ip=ip, driver=intern(identity.driver),
                make=intern(identity.make), model=intern(identity.model),
                firmware=intern(identity.firmware), hostname=intern(identity.hostname),
                serial=identity.serial, mac_source=intern(identity.mac_source),
                extra={intern(k): intern(v) for k, v in identity.extra.items()}, first_seen=now,
            )
            self.by_mac[device.mac] = device
            self._changed()
            log.info("device found", mac=device.mac, ip=ip, make=device.make, model=device.model)
        else:
            if device.apply_identity(identity):
                self._changed()
            if device.ip != ip:
                log.info("device moved", mac=device.mac, old_ip=device.ip, new_ip=ip)
                if self.by_ip.get(device.ip) is device:
                    del self.by_ip[device.ip]
                device.ip = ip
                self._changed()
        previous = self.by_ip.get(ip)
        if previous is not None and previous is not device:
            # Another device held this address: it moved away; it will be found again.
            log.info("address taken over", ip=ip, old_mac=previous.mac, new_mac=device.mac)
            previous.ip = ""
            previous.state = "unreachable"
            previous.error = f"{ip} now answers as {device.mac}"
            self._changed()
        self.by_ip[ip] = device
        self.unknown.pop(ip, None)
        self._dead_until.pop(ip_to_int(ip), None)
        device.last_seen = now
        device.polls = 0
        if place is not None:
            self.place(device, place)
        return device

    def place(self, device: Device, place: Place | None) -> None:
        if place is None:
            device.group = device.group_id = device.range = device.range_id = ""
        else:
            device.group, device.group_id = place.group, place.group_id
            device.range, device.range_id = place.range, place.range_id

    def record_unknown(self, ip: str, ports: Iterable[int], said: list[str],
                       kind: str = "unrecognised") -> None:
        now = time.time()
        previous = self.unknown.get(ip)
        first = previous.first_seen if previous is not None and previous.kind == kind else now
        self.unknown[ip] = UnknownDevice(ip=ip, ports=sorted(ports), said=said, last_seen=now,
                                         kind=kind, first_seen=first)

    def prune(self, ranges: RangeMap) -> int:
        """Forget devices (and unknown answerers) outside every range; re-place the others."""
        removed = 0
        for device in list(self.by_mac.values()):
            place = ranges.locate(ip_to_int(device.ip)) if device.ip else None
            if device.ip and place is None:
                del self.by_mac[device.mac]
                if self.by_ip.get(device.ip) is device:
                    del self.by_ip[device.ip]
                removed += 1
            elif place is not None:
                self.place(device, place)
        for ip in list(self.unknown):
            if ranges.locate(ip_to_int(ip)) is None:
                del self.unknown[ip]
        if removed:
            self._changed()
            log.info("devices outside every range forgotten", count=removed)
        return removed

    # -- persistence ----------------------------------------------------------------------

    def load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            data = msgspec.json.decode(self.path.read_bytes(), type=_Persisted)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("inventory file unreadable; starting empty", path=str(self.path),
                      error=str(exc))
            return
        for device in data.devices:
            device.reading = None
            device.state = device.state if device.state in STATES else "new"
            self.by_mac[device.mac] = device
            if device.ip:
                self.by_ip[device.ip] = device
        self.loaded_from_disk = len(data.devices)
        self.version += 1
        log.info("inventory loaded", devices=len(data.devices), path=str(self.path))

    def snapshot(self) -> bytes:
        devices = [msgspec.structs.replace(d, reading=None) for d in self.by_mac.values()]
        return msgspec.json.encode(_Persisted(version=1, devices=devices))

    def save(self) -> None:
        """Write the inventory file (atomically, 0600) if anything persistent changed."""
        if self.path is None or not self.dirty:
            return
        self.dirty = False
        data = self.snapshot()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            self.path.touch(mode=0o600)
        write_atomically(self.path, data.decode())
        os.chmod(self.path, 0o600)
