"""The hub's picture of every site, made only of what the sites publish.

:class:`HubFleet` is what the web asks for on a hub instead of the local miner fleet: an
:class:`~webbo.agent.fleet.inventory.Inventory` of :class:`~webbo.agent.fleet.inventory.Device`
objects (the union of the sites' inventories, each device naming its ``site``) and a
:class:`~webbo.agent.fleet.history.MinerHistory`, the two things the Miners table, the miner
page and the rack map read. Each site's own part is a :class:`SiteView`: its heartbeat, its
network, its devices, and what the hub holds of its inventory revision and its stream.

A site whose heartbeats stop for ``stale_after`` (or that says it is leaving) is *stale*: its
miners show the state ``stale`` with the reason, and get their own state back with the next
heartbeat.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog

from webbo.agent.cluster.wire import DeviceInfo, Heartbeat, InventoryMsg, StateMsg, reading_of
from webbo.agent.core.config import NetworkSection
from webbo.agent.fleet.addresses import ALL_STATES, AddressSummary
from webbo.agent.fleet.history import MinerHistory
from webbo.agent.fleet.inventory import Device, Inventory

log = structlog.get_logger("webbo.cluster.hub")

__all__ = ["HubFleet", "SiteView"]

MAX_INSTANCES = 8


@dataclass
class Instance:
    """One run of a site's agent, as its heartbeats show it."""

    id: str
    host: str
    first: float
    last: float


@dataclass
class SiteView:
    name: str
    heartbeat: Heartbeat | None = None
    last_heartbeat: float = 0.0
    """When the last heartbeat arrived (time.time())."""
    rev: int = -1
    """The inventory revision the hub holds (-1: none yet: a snapshot is needed)."""
    instance: str = ""
    """The agent instance whose inventory the hub holds."""
    wanted: str = ""
    """The instance whose snapshot the hub asked for (a twin's is not taken)."""
    network: NetworkSection = field(default_factory=NetworkSection)
    network_rev: str = ""
    devices: dict[str, Device] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict)
    conflict: str = ""
    stale: bool = True
    stale_reason: str = "no heartbeat yet"
    saved: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Each miner's own state and error while the site is stale."""
    meters: list[dict[str, Any]] = field(default_factory=list)
    snapshot: str = ""
    snapshot_parts: dict[int, list[DeviceInfo]] = field(default_factory=dict)
    snapshot_asked: float = 0.0
    network_asked: float = 0.0
    stream_seq: int = 0
    """The last stream sequence applied (a redelivered message is skipped)."""
    state_messages: int = 0
    alerts: int = 0
    recent: deque[int] = field(default_factory=lambda: deque(maxlen=256))
    """The site's sequence numbers of the last state and alert messages applied, in the order
    applied (what arrived after an outage shows here in the site's order)."""
    unknown_macs: int = 0
    last_state: float = 0.0

    @property
    def state(self) -> str:
        if self.conflict:
            return "conflict"
        if self.heartbeat is None:
            return "offline"
        return "stale" if self.stale else "online"

    def describe(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        hb = self.heartbeat
        by_state: dict[str, int] = {}
        for device in self.devices.values():
            by_state[device.state] = by_state.get(device.state, 0) + 1
        return {
            "site": self.name, "state": self.state,
            "stale_reason": self.stale_reason if self.stale else "",
            "conflict": self.conflict,
            "last_heartbeat": self.last_heartbeat or None,
            "heartbeat_age_s": round(now - self.last_heartbeat, 3) if self.last_heartbeat
            else None,
            "host": hb.host if hb else "", "version": hb.version if hb else "",
            "instance": hb.instance if hb else "", "started_at": hb.started_at if hb else None,
            "miners": len(self.devices), "by_state": by_state,
            "groups": len(self.network.ip_range_groups),
            "ranges": sum(len(g.ip_ranges) for g in self.network.ip_range_groups),
            "meters": len(self.meters),
            "jetstream": {"stream": hb.stream, "domain": hb.domain, "applied_seq": self.stream_seq}
            if hb and hb.stream else None,
            "state_messages": self.state_messages, "alerts": self.alerts,
            "last_state": self.last_state or None,
        }


class HubFleet:
    """The union of the sites' inventories (what the web reads on a hub)."""

    def __init__(self) -> None:
        self.inventory = Inventory(None)
        self.history = MinerHistory()
        self.sites: dict[str, SiteView] = {}

    def site(self, name: str) -> SiteView:
        view = self.sites.get(name)
        if view is None:
            view = self.sites[name] = SiteView(name)
        return view

    # -- heartbeats ----------------------------------------------------------------------------

    def wants_snapshot(self, view: SiteView, beat: Heartbeat, now: float) -> bool:
        """Whether the hub should (re)load the site's inventory from this heartbeat's instance:
        it holds another revision of it, or nothing, or another instance that has gone silent
        (a restart). While the instance held is still alive, a new one is a twin (two agents
        under one name): the hub keeps what it has."""
        if beat.leaving:
            return False
        if beat.instance == view.instance:
            return beat.inventory_rev != view.rev
        holder = view.instances.get(view.instance)
        return holder is None or now - holder.last > 1.5 * beat.interval

    def heartbeat(self, view: SiteView, beat: Heartbeat, now: float) -> None:
        """Record a heartbeat: the site is alive (unless it says it is leaving); two live
        instances of one site name are a conflict."""
        view.heartbeat = beat
        view.last_heartbeat = now
        seen = view.instances.get(beat.instance)
        if seen is None:
            seen = view.instances[beat.instance] = Instance(beat.instance, beat.host, now, now)
            if len(view.instances) > MAX_INSTANCES:
                oldest = min(view.instances.values(), key=lambda i: i.last)
                view.instances.pop(oldest.id)
        seen.last = now
        view.conflict = self._conflict(view, seen, now, 3 * beat.interval) or beat.conflict
        if beat.leaving:
            self.mark_stale(view, "its agent stopped")
        elif view.stale:
            self.fresh(view)

    @staticmethod
    def _conflict(view: SiteView, current: Instance, now: float, window: float) -> str:
        for other in view.instances.values():
            if other is current or now - other.last > window:
                continue
            if other.last >= current.first and current.last >= other.first:
                return (f"two agents use the site name {view.name!r} (hosts {other.host} and "
                        f"{current.host}); give each site its own [cluster] site")
        return ""

    def mark_stale(self, view: SiteView, reason: str) -> None:
        if view.stale:
            view.stale_reason = reason
            return
        view.stale, view.stale_reason = True, reason
        error = f"site {view.name}: {reason}"
        for mac, device in view.devices.items():
            view.saved[mac] = (device.state, device.error)
            device.state, device.error = "stale", error
        log.warning("site stale", site=view.name, reason=reason, miners=len(view.devices))

    def fresh(self, view: SiteView) -> None:
        view.stale, view.stale_reason = False, ""
        for mac, device in view.devices.items():
            device.state, device.error = view.saved.get(mac, (device.state, device.error))
            if device.state == "stale":
                device.state, device.error = "new", ""
        view.saved.clear()
        log.info("site online", site=view.name, miners=len(view.devices))

    def check_stale(self, stale_after: float, now: float) -> None:
        for view in self.sites.values():
            if not view.stale and now - view.last_heartbeat > stale_after:
                since = time.strftime("%H:%M:%S", time.localtime(view.last_heartbeat))
                self.mark_stale(view, f"no heartbeat since {since}")

    # -- inventory -----------------------------------------------------------------------------

    def _add(self, view: SiteView, info: DeviceInfo) -> None:
        device = view.devices.get(info.mac)
        if device is None:
            device = Device(**msgspec.structs.asdict(info), site=view.name)
            if view.stale:
                view.saved[info.mac] = (device.state, device.error)
                device.state, device.error = "stale", f"site {view.name}: {view.stale_reason}"
            view.devices[info.mac] = device
        else:
            for name in info.__struct_fields__:
                setattr(device, name, getattr(info, name))
        held = self.inventory.by_mac.get(info.mac)
        if held is not None and held is not device:
            log.warning("one MAC at two sites; the hub shows the latest", mac=info.mac,
                        sites=[held.site, view.name])
        self.inventory.by_mac[info.mac] = device

    def _remove(self, view: SiteView, mac: str) -> None:
        device = view.devices.pop(mac, None)
        view.saved.pop(mac, None)
        if device is None or self.inventory.by_mac.get(mac) is not device:
            return
        del self.inventory.by_mac[mac]
        for other in self.sites.values():
            if mac in other.devices:
                self.inventory.by_mac[mac] = other.devices[mac]
                return
        self.history.forget(mac)

    def apply_inventory(self, view: SiteView, msg: InventoryMsg) -> bool:
        """Apply changes or a snapshot part; False when the hub needs a snapshot (it holds
        another revision or another instance than the changes apply to)."""
        if msg.snapshot:
            if msg.instance != view.wanted:
                return True  # not the instance asked (two agents under one name)
            return self._snapshot_part(view, msg)
        if msg.instance != view.instance:
            return True  # another instance: its heartbeat decides whether the hub switches
        if msg.base != view.rev:
            return False
        for info in msg.devices:
            self._add(view, info)
        for mac in msg.removed:
            self._remove(view, mac)
        view.rev = msg.rev
        return True

    def _snapshot_part(self, view: SiteView, msg: InventoryMsg) -> bool:
        if msg.snapshot != view.snapshot:
            view.snapshot, view.snapshot_parts = msg.snapshot, {}
        view.snapshot_parts[msg.part] = msg.devices
        if len(view.snapshot_parts) < msg.parts:
            return True
        infos = [info for part in sorted(view.snapshot_parts) for info in view.snapshot_parts[part]]
        view.snapshot, view.snapshot_parts = "", {}
        keep = {info.mac for info in infos}
        for mac in [m for m in view.devices if m not in keep]:
            self._remove(view, mac)
        for info in infos:
            self._add(view, info)
        view.rev, view.instance = msg.rev, msg.instance
        log.info("site inventory loaded", site=view.name, miners=len(view.devices), rev=msg.rev)
        return True

    def adopt_network(self, site: str, payload: Mapping[str, Any]) -> None:
        """Take a site's network as it answered it."""
        view = self.site(site)
        try:
            view.network = msgspec.convert(payload, NetworkSection)
        except msgspec.ValidationError as exc:
            log.warning("site network unreadable", site=site, error=str(exc))
            return
        if view.heartbeat is not None:
            view.network_rev = view.heartbeat.network_rev

    def site_of_id(self, uuid: str) -> SiteView | None:
        """The site that has a group or range with this uuid."""
        for view in self.sites.values():
            for group in view.network.ip_range_groups:
                if group.uuid == uuid or any(r.uuid == uuid for r in group.ip_ranges):
                    return view
        return None

    def forget(self, view: SiteView) -> None:
        for mac in list(view.devices):
            self._remove(view, mac)

    # -- state ---------------------------------------------------------------------------------

    def apply_state(self, view: SiteView, msg: StateMsg) -> None:
        if view.instance and msg.instance != view.instance:
            return  # an older run's (replayed), or a twin's
        view.state_messages += 1
        view.last_state = msg.time
        view.recent.append(msg.seq)
        devices, history, stale = view.devices, self.history, view.stale
        for s in msg.miners:
            device = devices.get(s.mac)
            if device is None:
                view.unknown_macs += 1
                continue
            if stale:
                view.saved[s.mac] = (s.state, s.error)
            else:
                device.state, device.error = s.state, s.error
            device.failures, device.last_seen = s.failures, s.last_seen
            reading = reading_of(s)
            if reading is not None:
                previous = device.reading
                device.reading = reading
                if previous is None or previous.time_ns != reading.time_ns:
                    history.record(s.mac, s.hashrate, s.temp_board, s.temp_chip,
                                   reading.time_ns / 1e9)

    problem = ""
    """What a single agent's fleet says when nothing is swept; a hub sweeps nothing itself."""

    def addresses(self, group: str | None = None, range_: str | None = None
                  ) -> AddressSummary:
        """The states of the sites' miners (of one group or range, by name or uuid). The hub
        knows the miners the sites found, not the addresses where they found none: those
        (unrecognised, silent, pending) are on each site's own Miners page."""
        summary = AddressSummary([], 0, dict.fromkeys(ALL_STATES, 0))
        for device in self.inventory.by_mac.values():
            if group and group not in (device.group, device.group_id):
                continue
            if range_ and range_ not in (device.range, device.range_id):
                continue
            summary.size += 1
            summary.counts[device.state] = summary.counts.get(device.state, 0) + 1
            per = summary.by_range.setdefault(device.range_id, dict.fromkeys(ALL_STATES, 0))
            per[device.state] = per.get(device.state, 0) + 1
        return summary

    def status(self) -> dict[str, Any]:
        return {**self.inventory.status(), "sites": len(self.sites)}
