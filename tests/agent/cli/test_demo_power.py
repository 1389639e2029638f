"""`webbo demo` closes the power loop: its simulator (a real `webbo simulate` process) binds a
meter to each group's miners, its config has a feed per group over those meters with budgets
that fit, and lowering a budget brings the meter's reading under it."""

from __future__ import annotations

import asyncio
import time

import pytest
from minerfarm import make_agent

from webbo.agent.cli.demo import demo_config, meter_tables, start_simulator
from webbo.agent.cli.simulate import stop
from webbo.agent.power.config import PowerSection

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


async def test_the_demo_farm_is_measured_and_steered_by_feed(registry, tmp_path):
    proc, farm = start_simulator(20, 3)
    try:
        meters = farm["meters"]
        assert [bool(m.get("measures")) for m in meters] == [True, True, False]
        farm["meter_config"] = meter_tables(meters[:-1])
        text = demo_config(tmp_path, farm, registry, "127.0.0.1:8000", power=True)
        agent = make_agent(registry, text.replace('"10s"', '"2s"'), tmp_path / "webbo.toml")
        section = agent.config.section(PowerSection)
        assert section.mode == "on" and [f.name for f in section.feeds] == ["Ввод 1", "Ввод 2"]
        assert [f.groups for f in section.feeds] == [["Зал 1"], ["Зал 2"]]
        mercury = agent.config.instances("inputs", "mercury")
        assert [m.current_ratio for m in mercury] == [20, 20]
        await agent.start(watch=False, signals=False)
        try:
            power = agent.services["power"]
            deadline = time.monotonic() + 90
            while True:
                feeds = [power.feed_status(f.name) for f in section.feeds]
                if all(f["measured_kw"] and f["miners"].get("total", 0) >= 8 and
                       f["state"] == "ok" for f in feeds):
                    break
                assert time.monotonic() < deadline, feeds
                await asyncio.sleep(0.5)
            for feed in feeds:  # the meter measures the group's miners and its base load
                assert feed["measured_kw"] < feed["budget_kw"] < feed["limit_kw"]
                assert feed["measured_kw"] == pytest.approx(feed["estimated_kw"], rel=0.15)
            target = round(feeds[0]["measured_kw"] * 0.75, 1)
            power.set_budget("Ввод 1", target, None, "test")
            deadline = time.monotonic() + 150
            while True:
                status = power.feed_status("Ввод 1")
                if status["measured_kw"] is not None and status["measured_kw"] <= target \
                        and status["budget_source"] == "api":
                    break
                assert time.monotonic() < deadline, status
                await asyncio.sleep(0.5)
        finally:
            await agent.stop(flush_timeout=1)
    finally:
        stop(proc, 30)
