"""The manual's selectors (§3.5.1): which known miners a control method acts on.

Exactly one of ``macs`` (a list, or ``"*"`` for all), ``ip_range``, ``ip_range_id``,
``ip_range_group_id``. A MAC the inventory does not hold is kept as *missing*, so the result
says so for it instead of leaving it out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from webbo.agent.core.config import NetworkSection
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.net import ip_to_int

__all__ = ["Selection", "SelectionError", "Selector", "by_ip", "select"]


class SelectionError(ValueError):
    """A selector that cannot be resolved (unknown id, inverted range): the request fails and
    nothing is done."""


@dataclass(frozen=True)
class Selector:
    """The manual's selector (§3.5.1), already checked for shape: exactly one field is set."""

    macs: Literal["*"] | tuple[str, ...] | None = None
    ip_range: tuple[str, str] | None = None
    ip_range_id: str | None = None
    ip_range_group_id: str | None = None

    def describe(self) -> dict[str, Any]:
        """The selector as the request gave it (for the audit log)."""
        if self.macs is not None:
            return {"macs": self.macs if self.macs == "*" else list(self.macs)}
        if self.ip_range is not None:
            return {"ip_range": {"first": self.ip_range[0], "last": self.ip_range[1]}}
        if self.ip_range_id is not None:
            return {"ip_range_id": self.ip_range_id}
        return {"ip_range_group_id": self.ip_range_group_id}


@dataclass
class Selection:
    devices: list[Device]
    missing: list[str] = field(default_factory=list)
    """MACs asked for by name that the inventory does not hold."""


def _spans_of(network: NetworkSection, selector: Selector) -> list[tuple[int, int]]:
    if selector.ip_range is not None:
        first, last = (ip_to_int(a) for a in selector.ip_range)
        if first > last:
            raise SelectionError(f"ip_range: last ({selector.ip_range[1]}) is before first "
                                 f"({selector.ip_range[0]})")
        return [(first, last)]
    if selector.ip_range_id is not None:
        wanted = selector.ip_range_id.lower()
        for group in network.ip_range_groups:
            for range_ in group.ip_ranges:
                if range_.uuid == wanted:
                    return [(ip_to_int(range_.first), ip_to_int(range_.last))]
        raise SelectionError(f"ip_range_id: no range with id {selector.ip_range_id} "
                             "(see /api/mining/get-network)")
    wanted = (selector.ip_range_group_id or "").lower()
    for group in network.ip_range_groups:
        if group.uuid == wanted:
            return [(ip_to_int(r.first), ip_to_int(r.last)) for r in group.ip_ranges]
    raise SelectionError(f"ip_range_group_id: no group with id {selector.ip_range_group_id} "
                         "(see /api/mining/get-network)")


def select(devices: Iterable[Device], network: NetworkSection, selector: Selector) -> Selection:
    """The devices a selector names, ordered by IP (MACs not known come last, as missing)."""
    if selector.macs == "*":
        return Selection(by_ip(devices))
    if selector.macs is not None:
        by_mac = {d.mac: d for d in devices}
        wanted = list(dict.fromkeys(selector.macs))
        found = [by_mac[m] for m in wanted if m in by_mac]
        return Selection(by_ip(found), [m for m in wanted if m not in by_mac])
    spans = _spans_of(network, selector)
    chosen = []
    for device in devices:
        if not device.ip:
            continue
        ip = ip_to_int(device.ip)
        if any(first <= ip <= last for first, last in spans):
            chosen.append(device)
    return Selection(by_ip(chosen))


def by_ip(devices: Iterable[Device]) -> list[Device]:
    return sorted(devices, key=lambda d: (ip_to_int(d.ip) if d.ip else 1 << 33, d.mac))
