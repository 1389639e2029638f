"""A feed's budget and where it comes from: four sources, the lowest active one wins.

* ``config``: ``budget_kw`` of the feed (always active);
* ``api``: ``/api/power/set-budget``, until an optional end time;
* ``schedule``: the windows of ``[[power.feeds.schedule]]`` active now, in the farm's time zone;
* ``demand_response``: a signal "reduce to X kW until T";
* ``price``: a price signal above the feed's ``strike_price`` curtails it to
  ``price_floor_kw`` until its end.

Every source is shown with its value and whether it is active, so an operator sees why a feed
is where it is.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Any

from webbo.agent.power.config import DAYS, FeedConfig, ScheduleWindow, minutes_of

__all__ = ["SOURCES", "Override", "Source", "farm_zone", "resolve", "sources", "window_active"]

SOURCES = ("config", "api", "schedule", "demand_response", "price")


@dataclass
class Override:
    """A budget set from outside the config (the API or a signal), kept in the state file."""

    kind: str
    """"api", "demand_response" or "price"."""
    budget_kw: float
    until: float | None
    """Unix time it ends (None: until cleared; only the API may leave it open)."""
    who: str = ""
    at: float = 0.0
    price: float | None = None
    """The price of a price signal."""

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "budget_kw": self.budget_kw, "until": self.until,
                "who": self.who, "at": self.at, "price": self.price}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Override:
        return cls(kind=str(data["kind"]), budget_kw=float(data["budget_kw"]),
                   until=None if data.get("until") is None else float(data["until"]),
                   who=str(data.get("who", "")), at=float(data.get("at", 0.0)),
                   price=None if data.get("price") is None else float(data["price"]))


@dataclass
class Source:
    """One source of a feed's budget, as shown to the operator."""

    source: str
    budget_kw: float | None
    active: bool
    until: float | None = None
    detail: str = ""
    note: tuple[str, dict[str, Any]] = ("", {})
    """The detail as a text key and its values (the web UI says it in the page's language)."""

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "budget_kw": self.budget_kw, "active": self.active,
                "until": self.until, "detail": self.detail, "note": self.note[0],
                "note_args": self.note[1]}


def farm_zone(name: str) -> dt.tzinfo:
    """The farm's time zone ([power] timezone), or the system's."""
    if name:
        return zoneinfo.ZoneInfo(name)
    local = dt.datetime.now().astimezone().tzinfo
    return local if local is not None else dt.UTC


def window_active(window: ScheduleWindow, local: dt.datetime) -> bool:
    """Is ``window`` on at the farm's local time ``local``? A window across midnight belongs
    to the day it starts."""
    start, end = minutes_of(window.start), minutes_of(window.end)
    if start is None or end is None:
        return False
    now = local.hour * 60 + local.minute
    today = DAYS[local.weekday()]
    yesterday = DAYS[(local.weekday() - 1) % 7]
    if start < end:
        return start <= now < end and (not window.days or today in window.days)
    if now >= start:  # the evening part, started today
        return not window.days or today in window.days
    if now < end:  # the morning part, started yesterday
        return not window.days or yesterday in window.days
    return False


def sources(feed: FeedConfig, overrides: dict[str, Override], now: float,
            zone: dt.tzinfo) -> list[Source]:
    """Every source of ``feed``'s budget at ``now`` (unix time)."""
    found = [Source("config", feed.budget_kw, True, detail="budget_kw",
                    note=("config", {}))]
    api = overrides.get("api")
    if api is not None:
        found.append(Source("api", api.budget_kw, _live(api, now), api.until,
                            f"set by {api.who}" if api.who else "",
                            ("set_by", {"who": api.who}) if api.who else ("", {})))
    else:
        found.append(Source("api", None, False))
    local = dt.datetime.fromtimestamp(now, zone)
    windows = [w for w in feed.schedule if window_active(w, local)]
    if windows:
        best = min(windows, key=lambda w: w.budget_kw)
        label = best.name or f"{best.start}–{best.end}"
        found.append(Source("schedule", best.budget_kw, True, _window_end(best, local),
                            label, ("window", {"name": label})))
    else:
        n = len(feed.schedule)
        found.append(Source("schedule", None, False,
                            detail=f"{n} windows, none now" if n else "no windows",
                            note=("windows_idle", {"n": n}) if n else ("no_windows", {})))
    demand = overrides.get("demand_response")
    found.append(Source("demand_response", demand.budget_kw if demand else None,
                        demand is not None and _live(demand, now),
                        demand.until if demand else None,
                        f"from {demand.who}" if demand and demand.who else "",
                        ("from", {"who": demand.who}) if demand and demand.who else ("", {})))
    price = overrides.get("price")
    if price is not None and price.price is not None and feed.strike_price is not None:
        above = price.price > feed.strike_price
        found.append(Source("price", feed.price_floor_kw if above else None,
                            above and _live(price, now), price.until,
                            f"price {price.price:g} vs strike {feed.strike_price:g}",
                            ("price", {"price": price.price, "strike": feed.strike_price})))
    else:
        none = feed.strike_price is None
        found.append(Source("price", None, False, detail="no strike_price" if none else "",
                            note=("no_strike", {}) if none else ("", {})))
    return found


def resolve(found: list[Source]) -> Source:
    """The lowest active source (config first on a tie: it is always there)."""
    active = [s for s in found if s.active and s.budget_kw is not None]
    return min(active, key=lambda s: (s.budget_kw, SOURCES.index(s.source)))


def _live(override: Override, now: float) -> bool:
    return override.until is None or now < override.until


def _window_end(window: ScheduleWindow, local: dt.datetime) -> float | None:
    end = minutes_of(window.end)
    if end is None:
        return None
    moment = local.replace(hour=end // 60, minute=end % 60, second=0, microsecond=0)
    if moment <= local:
        moment += dt.timedelta(days=1)
    return moment.timestamp()
