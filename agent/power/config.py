"""``[power]`` of webbo.toml: the controller's settings and the feeds it keeps inside budgets.

::

    [power]
    mode = "dry-run"              # off | dry-run | on
    interval = "10s"              # one control cycle per feed
    timezone = "Europe/Moscow"    # the farm's clock, for schedules (empty: the system's)

    [[power.feeds]]
    name = "Ввод 1"
    meters = ["32297700-17"]      # serial numbers; their active power is summed
    groups = ["Зал 1"]            # names or uuids of [network] groups ...
    ranges = []                   # ... and/or ranges the feed powers
    base_load_kw = 12             # cooling, lights (if known)
    budget_kw = 300
    limit_kw = 400                # what the feeder can take: no budget may be higher

      [[power.feeds.schedule]]    # the meter's tariff zones, in the farm's time zone
      start = "08:00"
      end = "11:00"
      budget_kw = 200

Checks against the rest of the config (:func:`check_power`): a meter must be configured (an
input table with that ``serial_number``, e.g. ``[[inputs.mercury]]``), groups and ranges must
exist, two feeds may not share a range or a meter, budgets lie within 0..``limit_kw``.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import msgspec

from webbo.agent.core.config import Config, ConfigError, Duration, NetworkSection, Section
from webbo.agent.fleet.model import normalise_mac

__all__ = ["DAYS", "FeedConfig", "ModelWatts", "PowerSection", "ScheduleWindow",
           "check_power", "feed_ranges", "meter_key", "minutes_of"]

Mode = Literal["off", "dry-run", "on"]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def minutes_of(text: str) -> int | None:
    """``"07:30"`` → 450; None for anything that is not HH:MM (24:00 is written 00:00)."""
    match = _CLOCK.match(text.strip())
    return int(match.group(1)) * 60 + int(match.group(2)) if match else None


def meter_key(serial: str) -> str:
    """A meter's identity for matching: its 8 digits (``"32297700-17"`` → ``"32297700"``)."""
    return str(serial).strip().split("-", 1)[0]


class ScheduleWindow(Section, kw_only=True):
    """A time-of-day window with its own budget (a tariff zone, a contract's peak hours)."""

    start: str
    """"HH:MM" in the farm's time zone."""
    end: str
    """"HH:MM"; before ``start`` for a window across midnight ("23:00" to "07:00")."""
    budget_kw: float
    days: list[str] = msgspec.field(default_factory=list)
    """"mon".."sun" (the day the window starts); empty: every day."""
    name: str = ""
    """What the operator calls it ("пик", "T1")."""

    def check(self) -> Iterator[ConfigError]:
        for key in ("start", "end"):
            if minutes_of(getattr(self, key)) is None:
                yield ConfigError(key, f'expected a time like "07:30", got {getattr(self, key)!r}')
        if self.start == self.end:
            yield ConfigError("end", "the window is empty (end equals start)")
        for i, day in enumerate(self.days):
            if day not in DAYS:
                yield ConfigError(f"days[{i}]", f"expected one of {', '.join(DAYS)}, got {day!r}")
        if self.budget_kw < 0:
            yield ConfigError("budget_kw", "a budget cannot be below zero")


class FeedConfig(Section, kw_only=True):
    """One feed: a part of the farm behind its own meters, with a budget."""

    name: str
    meters: list[str]
    """Serial numbers of the meters that measure the feed (their active power is summed)."""
    budget_kw: float
    """The feed's budget from the config (the highest any other source may leave it at)."""
    groups: list[str] = msgspec.field(default_factory=list)
    """Names or uuids of the ``[network]`` groups the feed powers."""
    ranges: list[str] = msgspec.field(default_factory=list)
    """Names or uuids of ranges the feed powers (in addition to whole groups)."""
    limit_kw: float | None = None
    """The most the feeder can take (its capacity or contract): budgets from the API, the
    schedule and signals above it are refused. Default: ``budget_kw``."""
    base_load_kw: float = 0.0
    """Load on the feed that is not a miner (cooling, lights), if known. The controller learns
    what the meters see beyond it anyway; knowing it makes the first estimates right."""
    mode: Literal["", "off", "dry-run", "on"] = ""
    """Overrides ``[power] mode`` for this feed ("": the same)."""
    strike_price: float | None = None
    """A price signal above this curtails the feed to ``price_floor_kw`` (no price rule when
    unset)."""
    price_floor_kw: float = 0.0
    schedule: list[ScheduleWindow] = msgspec.field(default_factory=list)
    ramp_kw_per_min: float | None = None
    """Overrides ``[power] ramp_kw_per_min``."""
    max_miners_per_step: int | None = None
    """Overrides ``[power] max_miners_per_step``."""
    deadband_pct: float | None = None
    """Overrides ``[power] deadband_pct``."""

    @property
    def limit(self) -> float:
        return self.budget_kw if self.limit_kw is None else self.limit_kw

    def check(self) -> Iterator[ConfigError]:
        if not self.name.strip():
            yield ConfigError("name", "a feed needs a name")
        if not self.meters:
            yield ConfigError("meters", "a feed needs at least one meter that measures it")
        if not self.groups and not self.ranges:
            yield ConfigError("groups", "a feed needs the groups or ranges it powers")
        if self.limit_kw is not None and self.limit_kw <= 0:
            yield ConfigError("limit_kw", "must be above zero")
        limit = self.limit
        for key in ("budget_kw", "price_floor_kw"):
            value = getattr(self, key)
            if value < 0:
                yield ConfigError(key, "a budget cannot be below zero")
            elif value > limit:
                yield ConfigError(key, f"{value:g} kW is above the feed's limit_kw "
                                       f"({limit:g} kW)")
        for i, window in enumerate(self.schedule):
            if window.budget_kw > limit:
                yield ConfigError(f"schedule[{i}].budget_kw",
                                  f"{window.budget_kw:g} kW is above the feed's limit_kw "
                                  f"({limit:g} kW)")
        if self.base_load_kw < 0:
            yield ConfigError("base_load_kw", "cannot be below zero")
        yield from _check_tuning(self)


class ModelWatts(Section, kw_only=True):
    """An entry of the model table: what a model draws in each mode, for miners that do not
    report their power (stock Antminers). Overrides the built-in table."""

    model: str
    """As the inventory names it ("Antminer S19j Pro")."""
    normal_w: float
    low_power_w: float | None = None
    """None: the model has no low-power mode."""
    sleep_w: float = 30.0

    def check(self) -> Iterator[ConfigError]:
        if self.normal_w <= 0:
            yield ConfigError("normal_w", "must be above zero")
        if self.low_power_w is not None and not 0 < self.low_power_w <= self.normal_w:
            yield ConfigError("low_power_w", "must be above zero and at most normal_w")
        if not 0 <= self.sleep_w < self.normal_w:
            yield ConfigError("sleep_w", "must be at least zero and below normal_w")


class PowerSection(Section, kw_only=True):
    """``[power]``: power control (design §13)."""

    mode: Mode = "dry-run"
    """off: measure and show only; dry-run: also plan every step and show it, act on nothing;
    on: act."""
    interval: Duration = Duration(10.0)
    """One control cycle per feed this often."""
    timezone: str = ""
    """The farm's time zone (IANA name, e.g. "Europe/Moscow") for schedules; empty: the
    system's."""
    stale_after: Duration = Duration(30.0)
    """A meter with no reading this recent freezes its feed's controller (and alerts)."""
    deadband_pct: float = 2.0
    """Nothing changes while a feed draws between budget − deadband and budget (in % of the
    budget). Over the budget it sheds to the band's middle; under it, it restores up to a
    quarter of the band below the budget by its own estimate."""
    deadband_min_kw: float = 0.0
    """The deadband is never narrower than this (a feed of big miners with sleep only)."""
    ramp_kw_per_min: float = 100.0
    """The most the controller changes a feed's draw per minute, either way."""
    max_miners_per_step: int = 20
    """The most miners one cycle changes on a feed."""
    min_dwell: Duration = Duration(300.0)
    """A miner the controller changed is left alone this long (no flapping)."""
    min_power_pct: int = 50
    """The lowest power percent it sets (firmware with power targets); below: sleep."""
    settle_min: Duration = Duration(30.0)
    """A change on a miner that reports no power counts as done no sooner than this (its work
    mode shows at once, its draw follows over seconds to a minute)."""
    settle_timeout: Duration = Duration(180.0)
    """Longest a change is waited for (its reading, the meter) before it counts as done."""
    exclude: list[str] = msgspec.field(default_factory=list)
    """MACs the controller never touches (a manual override)."""
    critical: list[str] = msgspec.field(default_factory=list)
    """Miners tagged critical, never curtailed: MACs, or names/uuids of groups and ranges."""
    models: list[ModelWatts] = msgspec.field(default_factory=list)
    """Additions to the built-in model table."""
    feeds: list[FeedConfig] = msgspec.field(default_factory=list)

    def check(self) -> Iterator[ConfigError]:
        if not 0.5 <= self.interval <= 3600:
            yield ConfigError("interval", "must be 500ms..1h")
        for key in ("stale_after", "min_dwell", "settle_min", "settle_timeout"):
            if not 0 < getattr(self, key) <= 86400:
                yield ConfigError(key, "must be longer than 0s and at most a day")
        if self.timezone:
            try:
                zoneinfo.ZoneInfo(self.timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                yield ConfigError("timezone", f"unknown time zone {self.timezone!r} "
                                              "(an IANA name like \"Europe/Moscow\")")
        if not 1 <= self.min_power_pct <= 99:
            yield ConfigError("min_power_pct", "must be 1..99")
        yield from _check_tuning(self)
        for i, mac in enumerate(self.exclude):
            if normalise_mac(mac) is None:
                yield ConfigError(f"exclude[{i}]", f"not a MAC address: {mac!r}")

    def feed(self, name: str) -> FeedConfig | None:
        for feed in self.feeds:
            if feed.name == name:
                return feed
        return None


def _check_tuning(section: Any) -> Iterator[ConfigError]:
    """The controller's tuning, in [power] and in a feed's overrides."""
    ramp = section.ramp_kw_per_min
    if ramp is not None and ramp <= 0:
        yield ConfigError("ramp_kw_per_min", "must be above zero")
    most = section.max_miners_per_step
    if most is not None and most < 1:
        yield ConfigError("max_miners_per_step", "must be at least 1")
    band = section.deadband_pct
    if band is not None and not 0 < band < 50:
        yield ConfigError("deadband_pct", "must be above 0 and below 50 (% of the budget)")


# -- checks against the rest of the config ------------------------------------------------------


def _place_ids(network: NetworkSection) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(group name/uuid → its range uuids, range name/uuid → range uuid)."""
    groups: dict[str, list[str]] = {}
    ranges: dict[str, str] = {}
    for group in network.ip_range_groups:
        ids = [r.uuid for r in group.ip_ranges]
        for key in (group.name, group.uuid):
            if key:
                groups.setdefault(key, []).extend(ids)
        for range_ in group.ip_ranges:
            for key in (range_.name, range_.uuid):
                if key:
                    ranges.setdefault(key, range_.uuid)
    return groups, ranges


def feed_ranges(feed: FeedConfig, network: NetworkSection) -> set[str]:
    """The uuids of every range the feed powers (its groups' ranges and its own)."""
    groups, ranges = _place_ids(network)
    found: set[str] = set()
    for name in feed.groups:
        found.update(groups.get(name, ()))
    for name in feed.ranges:
        if name in ranges:
            found.add(ranges[name])
    return found


def configured_meters(config: Config) -> dict[str, str]:
    """meter key → serial number of every input table that names a meter (``serial_number``)."""
    found: dict[str, str] = {}
    for inst in config.inputs:
        serial = getattr(inst.config, "serial_number", None)
        if isinstance(serial, str) and serial:
            found.setdefault(meter_key(serial), serial)
    return found


def check_power(section: PowerSection, config: Config) -> Iterable[ConfigError]:
    """Feeds against the rest of the config (paths relative to ``power``)."""
    meters = configured_meters(config)
    groups, ranges = _place_ids(config.network)
    names: dict[str, int] = {}
    range_owner: dict[str, str] = {}
    meter_owner: dict[str, str] = {}
    for i, feed in enumerate(section.feeds):
        path = f"feeds[{i}]"
        if feed.name in names:
            yield ConfigError(f"{path}.name",
                              f"feed {feed.name!r} is already feeds[{names[feed.name]}]")
        names.setdefault(feed.name, i)
        for j, serial in enumerate(feed.meters):
            key = meter_key(serial)
            if key not in meters:
                known = ", ".join(sorted(meters.values())) or "none"
                yield ConfigError(f"{path}.meters[{j}]", f"no meter {serial!r} is configured "
                                                          f"(configured meters: {known})")
            elif key in meter_owner and meter_owner[key] != feed.name:
                yield ConfigError(f"{path}.meters[{j}]", f"meter {serial} already measures "
                                                          f"feed {meter_owner[key]!r}")
            meter_owner.setdefault(key, feed.name)
        for key, table in (("groups", groups), ("ranges", ranges)):
            for j, name in enumerate(getattr(feed, key)):
                if name not in table:
                    yield ConfigError(f"{path}.{key}[{j}]",
                                      f"no {key[:-1]} {name!r} in [network] (by name or uuid)")
        for range_id in sorted(feed_ranges(feed, config.network)):
            owner = range_owner.setdefault(range_id, feed.name)
            if owner != feed.name:
                yield ConfigError(path, f"feeds {owner!r} and {feed.name!r} overlap: both "
                                        f"power range {_range_label(config.network, range_id)}")
    for i, entry in enumerate(section.critical):
        if normalise_mac(entry) is None and entry not in groups and entry not in ranges:
            yield ConfigError(f"critical[{i}]", f"{entry!r} is neither a MAC nor a group or "
                                                 "range of [network]")


def _range_label(network: NetworkSection, range_id: str) -> str:
    for group in network.ip_range_groups:
        for range_ in group.ip_ranges:
            if range_.uuid == range_id:
                name = f'"{range_.name}" ' if range_.name else ""
                return f"{name}{range_.first}-{range_.last}"
    return range_id
