"""Budgets from their four sources (the lowest active wins, each shown with its source) and
``[power]`` in webbo.toml: every bad feed is refused with the key path."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from webbo.agent.core.config import ConfigError, parse_config
from webbo.agent.power.budget import Override, resolve, sources, window_active
from webbo.agent.power.config import FeedConfig, PowerSection, ScheduleWindow
from webbo.agent.power.models import ModelTable, Refinements, model_key

MSK = zoneinfo.ZoneInfo("Europe/Moscow")


def at(hour: int, minute: int = 0, day: int = 1) -> float:
    """A moment in the farm's zone: 2025-12-<day> (the 1st is a Monday)."""
    return dt.datetime(2025, 12, day, hour, minute, tzinfo=MSK).timestamp()


def feed(**kw) -> FeedConfig:
    base = {"name": "A", "meters": ["32297700-17"], "groups": ["g"], "budget_kw": 300.0,
            "limit_kw": 400.0}
    base.update(kw)
    return FeedConfig(**base)


def test_lowest_active_source_wins_and_every_source_is_shown():
    f = feed(schedule=[ScheduleWindow(start="08:00", end="11:00", budget_kw=200.0,
                                      name="пик")], strike_price=100.0, price_floor_kw=50.0)
    overrides = {"api": Override("api", 250.0, None, "key:1 (ops)", 0.0)}
    found = sources(f, overrides, at(9), MSK)
    assert [s.source for s in found] == ["config", "api", "schedule", "demand_response",
                                         "price"]
    best = resolve(found)
    assert (best.source, best.budget_kw) == ("schedule", 200.0)
    assert found[2].detail == "пик" and found[2].until == at(11)
    assert resolve(sources(f, overrides, at(12), MSK)).source == "api"
    # a demand response below everything wins until its end, then it is gone
    overrides["demand_response"] = Override("demand_response", 120.0, at(13), "grid")
    assert resolve(sources(f, overrides, at(12), MSK)).budget_kw == 120.0
    assert resolve(sources(f, overrides, at(13, 1), MSK)).source == "api"
    # a price above the strike: the floor; below it: nothing
    overrides["price"] = Override("price", 50.0, at(20), "market", price=130.0)
    assert resolve(sources(f, overrides, at(14), MSK)).source == "price"
    overrides["price"] = Override("price", 50.0, at(20), "market", price=90.0)
    assert resolve(sources(f, overrides, at(14), MSK)).source == "api"


def test_schedule_windows_in_the_farm_zone_across_midnight_and_by_day():
    night = ScheduleWindow(start="23:00", end="07:00", budget_kw=1.0, days=["mon"])
    assert window_active(night, dt.datetime(2025, 12, 1, 23, 30, tzinfo=MSK))  # Monday
    assert window_active(night, dt.datetime(2025, 12, 2, 6, 59, tzinfo=MSK))  # its morning
    assert not window_active(night, dt.datetime(2025, 12, 2, 7, 0, tzinfo=MSK))
    assert not window_active(night, dt.datetime(2025, 12, 2, 23, 30, tzinfo=MSK))  # Tuesday
    day = ScheduleWindow(start="08:00", end="11:00", budget_kw=1.0)
    utc_nine = dt.datetime(2025, 12, 1, 9, 0, tzinfo=dt.UTC).astimezone(MSK)  # 12:00 MSK
    assert not window_active(day, utc_nine)


def test_the_model_table():
    table = ModelTable()
    assert table.get("Antminer S19j Pro").low_power is not None
    assert table.get("Antminer S19").low_power is None
    assert model_key("M30S++_VH70") == "m30s++" and model_key("M56S_VH30") == "m56s"
    assert table.get("M60_VK40").normal == 3422
    guessed = table.watts("Mystery X1", 100.0)
    assert guessed.normal == 3000.0  # 30 J/TH
    refine = Refinements()
    for _ in range(20):
        refine.learn("Antminer S19", 1.05)
    assert 1.04 < refine.factor("Antminer S19") <= 1.3


BASE = """
[web]
state_dir = "{state}"
[network]
[[network.ip_range_groups]]
name = "Зал 1"
[[network.ip_range_groups.ip_ranges]]
name = "Стойка 1"
first = "127.14.250.1"
last = "127.14.250.50"
[[network.ip_range_groups]]
name = "Зал 2"
[[network.ip_range_groups.ip_ranges]]
name = "Стойка 2"
first = "127.14.250.51"
last = "127.14.250.99"
[[inputs.mercury]]
port = "/dev/ttyUSB0"
serial_number = "32297700-17"
device_model = "230"
address = 1
[[inputs.mercury]]
port = "/dev/ttyUSB0"
serial_number = "43099131-20"
device_model = "230"
address = 2
"""
GOOD_FEED = """
[[power.feeds]]
name = "Ввод 1"
meters = ["32297700"]
groups = ["Зал 1"]
budget_kw = 300
limit_kw = 400
"""


def parse(registry, tmp_path, power: str):
    return parse_config(BASE.format(state=tmp_path) + power, registry)


def test_a_good_power_section(registry, tmp_path):
    config = parse(registry, tmp_path, '[power]\nmode = "on"\ntimezone = "Europe/Moscow"\n'
                   + GOOD_FEED + '[[power.feeds.schedule]]\nstart = "08:00"\nend = "11:00"\n'
                   'budget_kw = 200\n')
    section = config.section(PowerSection)
    assert section.mode == "on" and section.feeds[0].schedule[0].budget_kw == 200
    assert section.feeds[0].limit == 400


@pytest.mark.parametrize(("power", "error"), [
    (GOOD_FEED.replace('"32297700"', '"11111111-20"'),
     "power.feeds[0].meters[0]: no meter '11111111-20' is configured"),
    (GOOD_FEED.replace('"Зал 1"', '"Зал 9"'),
     "power.feeds[0].groups[0]: no group 'Зал 9' in [network]"),
    (GOOD_FEED.replace('groups = ["Зал 1"]', 'ranges = ["nope"]'),
     "power.feeds[0].ranges[0]: no range 'nope' in [network]"),
    (GOOD_FEED.replace("budget_kw = 300", "budget_kw = -5"),
     "power.feeds[0].budget_kw: a budget cannot be below zero"),
    (GOOD_FEED.replace("budget_kw = 300", "budget_kw = 450"),
     "power.feeds[0].budget_kw: 450 kW is above the feed's limit_kw (400 kW)"),
    (GOOD_FEED + GOOD_FEED.replace("Ввод 1", "Ввод 2").replace('"32297700"', '"43099131"')
     .replace('groups = ["Зал 1"]', 'ranges = ["Стойка 1"]'),
     "power.feeds[1]: feeds 'Ввод 1' and 'Ввод 2' overlap: both power range \"Стойка 1\""),
    (GOOD_FEED + GOOD_FEED.replace("Ввод 1", "Ввод 2").replace('"Зал 1"', '"Зал 2"'),
     "power.feeds[1].meters[0]: meter 32297700 already measures feed 'Ввод 1'"),
    (GOOD_FEED + '[[power.feeds.schedule]]\nstart = "8:00"\nend = "11:00"\nbudget_kw = 1\n',
     "power.feeds[0].schedule[0].start: expected a time like \"07:30\""),
    (GOOD_FEED + '[[power.feeds.schedule]]\nstart = "08:00"\nend = "11:00"\n'
     "budget_kw = 999\n", "power.feeds[0].schedule[0].budget_kw: 999 kW is above"),
    ('[power]\ntimezone = "Mars/Olympus"\n', "power.timezone: unknown time zone"),
    ('[power]\nmode = "maybe"\n', "power.mode"),
    ('[power]\nexclude = ["not-a-mac"]\n', "power.exclude[0]: not a MAC address"),
    ('[power]\ncritical = ["Зал 7"]\n', "power.critical[0]: 'Зал 7' is neither a MAC"),
    ('[power]\nbogus = 1\n', "power.bogus: unknown key"),
])
def test_bad_feeds_are_refused_with_the_key_path(registry, tmp_path, power, error):
    with pytest.raises(ConfigError) as info:
        parse(registry, tmp_path, power)
    assert error in str(info.value), str(info.value)
