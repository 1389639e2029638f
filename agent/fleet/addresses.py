"""Every address of the ranges, with its state: what the Miners page, the API and ``webbo
status`` show, so a sick farm never looks healthy.

An address holds a known miner (its state: ``ok``, ``new``, or failing — ``unreachable``,
``timeout``, ``error`` — since when, and the last error), or it holds none and then shows what the
sweep saw there: ``unrecognised`` (something answers that no driver knows: which ports, what it
said), ``timeout`` (something accepts and then hangs or is too slow to identify), ``silent``
(nothing answers; left alone until a time, the manual's minute), or ``pending`` (not visited yet).
The counts of all states add up to the number of addresses in the ranges looked at.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from webbo.agent.fleet.inventory import ADDRESS_STATES, STATES, Inventory, Place, RangeMap
from webbo.agent.fleet.net import int_to_ip, ip_to_int

__all__ = ["ALL_STATES", "AddressRow", "AddressSummary", "summarise"]

ALL_STATES = tuple(dict.fromkeys((*STATES, *ADDRESS_STATES)))
"""Every state an address can show, known miners' first."""


@dataclass(frozen=True)
class AddressRow:
    """An address of the ranges that holds no known miner."""

    ip: str
    state: str
    """``unrecognised``, ``timeout``, ``silent`` or ``pending``."""
    group: str
    group_id: str
    range: str
    range_id: str
    since: float | None = None
    """When it was first seen in this state (unrecognised, timeout)."""
    last_seen: float | None = None
    until: float | None = None
    """When a silent address is tried again (Unix time)."""
    ports: tuple[int, ...] = ()
    said: tuple[str, ...] = ()


@dataclass
class AddressSummary:
    """The states of the addresses of some ranges (all, one group, or one range)."""

    places: list[Place]
    size: int
    counts: dict[str, int] = field(default_factory=dict)
    rows: list[AddressRow] = field(default_factory=list)
    """Unrecognised and timed-out addresses, ordered by IP."""
    by_range: dict[str, dict[str, int]] = field(default_factory=dict)
    """The counts of each range (by uuid), adding up to its size."""
    _silent: list[tuple[int, float, Place]] = field(default_factory=list)
    _taken: set[int] = field(default_factory=set)

    def select(self, states: set[str] | None) -> list[AddressRow]:
        """The rows in ``states``, ordered by IP (None: the unrecognised and timed-out ones,
        which an operator must see; the silent and pending ones only when asked for)."""
        wanted = states if states is not None else {"unrecognised", "timeout"}
        rows = [r for r in self.rows if r.state in wanted]
        if "silent" in wanted:
            rows.extend(_row(ip, "silent", place, until=until)
                        for ip, until, place in self._silent)
        if "pending" in wanted:
            rows.extend(self.pending())
        rows.sort(key=lambda r: ip_to_int(r.ip))
        return rows

    def pending(self) -> Iterator[AddressRow]:
        """The addresses not visited yet (walked lazily: a /16 has 65,536)."""
        if not self.counts.get("pending"):
            return
        for place in self.places:
            for ip in range(place.first, place.last + 1):
                if ip not in self._taken:
                    yield _row(ip, "pending", place)


def _row(ip: int, state: str, place: Place, **values: object) -> AddressRow:
    return AddressRow(ip=int_to_ip(ip), state=state, group=place.group,
                      group_id=place.group_id, range=place.range, range_id=place.range_id,
                      **values)  # type: ignore[arg-type]


def _chosen(ranges: RangeMap, group: str | None, range_: str | None) -> list[Place]:
    return [p for p in ranges.places
            if (not group or group in (p.group, p.group_id))
            and (not range_ or range_ in (p.range, p.range_id))]


def summarise(inventory: Inventory, ranges: RangeMap, group: str | None = None,
              range_: str | None = None) -> AddressSummary:
    """The state of every address of the ranges (narrowed to a group or a range by name or
    uuid). Cost: one pass over the known miners, the unknown answerers and the silent
    addresses — no walk of the ranges themselves."""
    places = _chosen(ranges, group, range_)
    range_ids = {p.range_id for p in places}
    summary = AddressSummary(places, sum(p.last - p.first + 1 for p in places),
                             dict.fromkeys(ALL_STATES, 0))
    counts, taken, rows = summary.counts, summary._taken, summary.rows
    per = summary.by_range = {p.range_id: dict.fromkeys(ALL_STATES, 0) for p in places}
    for device in inventory.by_mac.values():
        if device.ip and device.range_id in range_ids:
            counts[device.state] = counts.get(device.state, 0) + 1
            per[device.range_id][device.state] += 1
            taken.add(ip_to_int(device.ip))
    for unknown in inventory.unknown.values():
        ip = ip_to_int(unknown.ip)
        place = ranges.locate(ip)
        if place is None or place.range_id not in range_ids or ip in taken:
            continue
        taken.add(ip)
        counts[unknown.kind] = counts.get(unknown.kind, 0) + 1
        per[place.range_id][unknown.kind] += 1
        rows.append(_row(ip, unknown.kind, place, since=unknown.first_seen or unknown.last_seen,
                         last_seen=unknown.last_seen, ports=tuple(unknown.ports),
                         said=tuple(unknown.said)))
    for ip, until in inventory.silent().items():
        if ip in taken:
            continue
        place = ranges.locate(ip)
        if place is None or place.range_id not in range_ids:
            continue
        taken.add(ip)
        summary._silent.append((ip, until, place))
        per[place.range_id]["silent"] += 1
    counts["silent"] = len(summary._silent)
    for place in places:
        mine = per[place.range_id]
        mine["pending"] = max(0, place.last - place.first + 1 - sum(mine.values()))
    counts["pending"] = max(0, summary.size - sum(counts.values()))
    rows.sort(key=lambda r: ip_to_int(r.ip))
    return summary
