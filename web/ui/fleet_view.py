"""The Miners table's query: search, filters, sort and pages over the inventory, server-side.

It works on the inventory's :class:`~webbo.agent.fleet.inventory.Device` objects directly (no
copies): filtering and sorting 10,000 miners is a few passes of cheap key functions, and only
the page being shown is turned into row dicts for the template. The same query drives the rack
map and "select every miner that matches" in the actions, so what the operator sees is what is
acted on.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from webbo.agent.fleet.addresses import ALL_STATES
from webbo.agent.fleet.inventory import FAILING, Device
from webbo.agent.fleet.net import ip_to_int

__all__ = ["PAGE_SIZES", "SORTS", "MinerQuery", "Page", "hottest", "ratio", "run_query"]

PAGE_SIZES = (25, 50, 100, 250, 500)
DEFAULT_PAGE_SIZE = 50
STATE_ORDER = {"error": 0, "timeout": 1, "unreachable": 2, "stale": 3, "new": 4, "ok": 5}
ADDRESS_ONLY = frozenset({"unrecognised", "silent", "pending"})
"""States only an address without a known miner shows (the table lists addresses, not miners)."""


@functools.lru_cache(maxsize=1 << 17)
def _ip_value(ip: str) -> int:
    """The address as a number (cached: sorting 10,000 miners asks for each one many times)."""
    try:
        return int.from_bytes(socket.inet_aton(ip), "big")
    except OSError:
        return ip_to_int(ip)


def _ip(d: Device) -> int:
    return _ip_value(d.ip) if d.ip else 1 << 33


def ratio(d: Device) -> float | None:
    """Hashrate as a share of the expected one (None when either is unknown)."""
    r = d.reading
    if r is None or r.hashrate_ths is None or not r.expected_hashrate_ths:
        return None
    return r.hashrate_ths / r.expected_hashrate_ths


def hottest(d: Device) -> float | None:
    """The hottest temperature the miner reports (chip, else board)."""
    r = d.reading
    if r is None:
        return None
    return r.temp_chip_max_c if r.temp_chip_max_c is not None else r.temp_board_max_c


def _reading(attr: str) -> Callable[[Device], Any]:
    def key(d: Device) -> Any:
        return None if d.reading is None else getattr(d.reading, attr)

    return key


def _min_fan(d: Device) -> int | None:
    fans = d.reading.fans_rpm if d.reading is not None else None
    return min(fans) if fans else None


def _pool(d: Device) -> str | None:
    return d.reading.active_pool if d.reading is not None else None


def _errors(d: Device) -> int | None:
    return len(d.reading.errors) if d.reading is not None else None


SORTS: dict[str, Callable[[Device], Any]] = {
    "state": lambda d: STATE_ORDER.get(d.state, 9),
    "site": lambda d: (d.site.lower(), _ip(d)) if d.site else None,
    "ip": _ip,
    "mac": lambda d: d.mac,
    "model": lambda d: (d.make + " " + d.model).lower(),
    "firmware": lambda d: d.firmware.lower() or None,
    "place": lambda d: (d.group.lower(), d.range.lower(), _ip(d)) if d.group else None,
    "hashrate": _reading("hashrate_ths"),
    "ratio": ratio,
    "power": _reading("power_w"),
    "efficiency": _reading("efficiency_jth"),
    "temp": hottest,
    "fans": _min_fan,
    "mode": lambda d: d.reading.work_mode.value if d.reading and d.reading.work_mode else None,
    "led": lambda d: int(d.reading.led) if d.reading and d.reading.led is not None else None,
    "pool": _pool,
    "uptime": _reading("uptime_s"),
    "errors": _errors,
}


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


@dataclass(frozen=True)
class MinerQuery:
    """What the operator asked for; built from the page's query string, always valid."""

    q: str = ""
    site: str = ""
    group: str = ""
    range: str = ""
    state: str = ""
    sort: str = "ip"
    desc: bool = False
    page: int = 1
    size: int = DEFAULT_PAGE_SIZE
    alerting: frozenset[str] = frozenset()
    """MACs with a firing alert (for ``state=alerting``; filled by the page, not the URL)."""

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> MinerQuery:
        """Unknown sort keys, states or sizes fall back to the defaults instead of failing:
        a stale bookmark still opens."""
        sort = params.get("sort", "ip")
        size = _int(params.get("size"), DEFAULT_PAGE_SIZE)
        state = params.get("state", "")
        return cls(
            q=params.get("q", "").strip()[:200],
            site=params.get("site", ""),
            group=params.get("group", ""),
            range=params.get("range", ""),
            state=state if state in (*ALL_STATES, "offline", "alerting") else "",
            sort=sort if sort in SORTS else "ip",
            desc=params.get("dir") == "desc",
            page=max(1, _int(params.get("page"), 1)),
            size=size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE,
        )

    def params(self, **change: Any) -> dict[str, str]:
        """The query string of this query (with ``change`` applied), defaults left out."""
        values = {"q": self.q, "site": self.site, "group": self.group, "range": self.range,
                  "state": self.state, "sort": self.sort, "dir": "desc" if self.desc else "",
                  "page": str(self.page), "size": str(self.size)}
        values.update({k: str(v) for k, v in change.items()})
        defaults = {"sort": "ip", "page": "1", "size": str(DEFAULT_PAGE_SIZE)}
        return {k: v for k, v in values.items() if v and defaults.get(k) != v}

    def filters(self) -> dict[str, str]:
        return {k: v for k, v in (("q", self.q), ("site", self.site), ("group", self.group),
                                  ("range", self.range), ("state", self.state)) if v}

    def matches(self) -> Callable[[Device], bool]:
        terms = self.q.lower().split()
        site, group, range_, state = self.site, self.group, self.range, self.state
        states = (FAILING if state == "offline" else {state}) if state else None
        alerting = self.alerting if state == "alerting" else None
        if alerting is not None:
            states = None

        def match(d: Device) -> bool:
            if site and d.site != site:
                return False
            if group and group not in (d.group_id, d.group):
                return False
            if range_ and range_ not in (d.range_id, d.range):
                return False
            if states is not None and d.state not in states:
                return False
            if alerting is not None and d.mac not in alerting:
                return False
            if terms:
                pool = _pool(d) or ""
                text = " ".join((d.ip, d.mac, d.make, d.model, d.firmware, d.hostname, d.group,
                                 d.range, d.serial, d.error, pool, d.state, d.site)).lower()
                return all(t in text for t in terms)
            return True

        return match


@dataclass
class Page:
    query: MinerQuery
    devices: list[Device]
    """The devices on the page, in order."""
    total: int
    """How many match the filters (all pages)."""
    pages: int
    counts: dict[str, int] = field(default_factory=dict)
    """Matching devices per state."""
    hashrate_ths: float = 0.0
    expected_ths: float = 0.0
    power_w: float = 0.0
    power_known: int = 0
    """Miners in the sum that report their power (many Antminer firmwares do not)."""
    inventory: int = 0


def select(devices: Iterable[Device], query: MinerQuery, ip_ordered: bool = False
           ) -> list[Device]:
    """Every device matching the filters, sorted (devices lacking the sort value last; ties in
    address order, reversed with the sort). ``ip_ordered``: ``devices`` come in address order
    already (:meth:`Inventory.devices_by_ip`), so the address sort, the default, is free and
    any other is one stable sort of the key alone (50,000 miners: tens of milliseconds less).
    """
    return _ordered(_matching(devices, query, ip_ordered), query)


def _matching(devices: Iterable[Device], query: MinerQuery, ip_ordered: bool) -> list[Device]:
    """The devices matching the filters, in address order."""
    match = query.matches()
    chosen = [d for d in devices if match(d)]
    if not ip_ordered:
        chosen.sort(key=_ip)
    return chosen


def _ordered(chosen: list[Device], query: MinerQuery) -> list[Device]:
    """``chosen`` (in address order) sorted as ``query`` asks."""
    if query.sort == "ip":
        return chosen[::-1] if query.desc else chosen
    keys = list(map(SORTS[query.sort], chosen))
    have = [(k, d) for k, d in zip(keys, chosen, strict=True) if k is not None]
    lacking = [d for k, d in zip(keys, chosen, strict=True) if k is None]
    if query.desc:
        have.reverse()  # ties in reversed address order, as the sort is
    have.sort(key=_first, reverse=query.desc)
    return [d for _, d in have] + lacking


def _first(pair: tuple[Any, Device]) -> Any:
    return pair[0]


def run_query(devices: list[Device], query: MinerQuery, ip_ordered: bool = False) -> Page:
    """Filter, sort, count and cut one page out (``ip_ordered``: see :func:`select`)."""
    matched = _matching(devices, query, ip_ordered)
    total = len(matched)
    pages = max(1, -(-total // query.size))
    page = min(query.page, pages)
    if page != query.page:
        query = MinerQuery(**{**query.__dict__, "page": page})
    counts = dict.fromkeys(STATE_ORDER, 0)
    hashrate = expected = power = 0.0
    power_known = 0
    for d in matched:  # in address order: the devices' memory order, quickest to walk
        counts[d.state] = counts.get(d.state, 0) + 1
        r = d.reading
        if r is not None and d.state == "ok":
            hashrate += r.hashrate_ths or 0.0
            expected += r.expected_hashrate_ths or 0.0
            if r.power_w is not None:
                power += r.power_w
                power_known += 1
    start = (page - 1) * query.size
    chosen = _ordered(matched, query)
    return Page(query, chosen[start:start + query.size], total, pages, counts, hashrate,
                expected, power, power_known, len(devices))
