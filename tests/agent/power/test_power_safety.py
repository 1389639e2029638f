"""Signals, safety and dry-run against a small simulated farm (the loop as in
test_power_loop, one feed): a demand-response request and a price above the strike each
curtail and release at their end; a meter that stops answering holds the controller (nothing
is switched, the feed says why); dry-run changes no miner and shows the plan the real run then
executes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from powerfarm import PowerFarm, power_farm, settled

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SPEED = 6.0


async def wait_feed(pf: PowerFarm, predicate: Any, timeout_sim: float,
                    what: str) -> dict[str, Any]:
    name = pf.feeds[0]["name"]
    started = time.monotonic()
    while True:
        status = await pf.status(name)
        if predicate(status):
            return status
        assert (time.monotonic() - started) * pf.speed < timeout_sim, (what, status)
        await asyncio.sleep(0.25)


def device_states(pf: PowerFarm) -> dict[str, tuple[Any, ...]]:
    """What control can change on each simulated miner."""
    states = {}
    for ip, device in pf.devices().items():
        if hasattr(device, "power_pct"):  # Whatsminer
            states[ip] = (device.mining, device.power_mode, device.power_pct)
        elif hasattr(device, "work_mode"):  # Antminer
            states[ip] = (device.work_mode,)
    return states


def until_in(seconds_sim: float, pf: PowerFarm) -> float:
    return time.time() + seconds_sim / pf.speed


async def test_demand_response_and_price_curtail_and_release(tmp_path, registry):
    async with power_farm(tmp_path, registry, miners=40, feeds=1, speed=SPEED,
                          feed_extra="strike_price = 120.0\nprice_floor_kw = 1.0\n") as pf:
        await settled(pf, 39)
        name = pf.feeds[0]["name"]
        full = (await pf.status(name))["measured_kw"]
        config_budget = (await pf.status(name))["budget_kw"]

        # demand response: "reduce to 70 % until T"
        target = round(full * 0.7, 1)
        applied = await pf.stack.ok("/api/power/signal", {
            "kind": "demand_response", "budget_kw": target, "until": until_in(150, pf)})
        assert applied == [name]
        status = await wait_feed(pf, lambda s: s["budget_source"] == "demand_response" and
                                 s["measured_kw"] <= target, 120, "curtailed for DR")
        assert status["budget_kw"] == target
        sources = {s["source"]: s for s in status["sources"]}
        assert sources["demand_response"]["active"] and sources["config"]["active"]
        # ... and released at its end: the config's budget again, the miners back
        await wait_feed(pf, lambda s: s["budget_source"] == "config" and
                        s["measured_kw"] > full * 0.95, 400, "released after DR")

        # a price above the strike curtails to the floor; one below does nothing
        floor = round(full * 0.6, 1)
        section = await pf.stack.ok("/api/power/get-config")
        section["feeds"][0]["price_floor_kw"] = floor
        await pf.stack.ok("/api/power/set-config", section)
        assert await pf.stack.ok("/api/power/signal", {
            "kind": "price", "price": 80.0, "until": until_in(60, pf)}) == [name]
        await asyncio.sleep(3 * 9 / SPEED)
        status = await pf.status(name)
        assert status["budget_source"] == "config" and status["budget_kw"] == config_budget
        assert await pf.stack.ok("/api/power/signal", {
            "kind": "price", "price": 200.0, "until": until_in(150, pf)}) == [name]
        status = await wait_feed(pf, lambda s: s["budget_source"] == "price" and
                                 s["measured_kw"] <= floor, 150, "curtailed for the price")
        assert status["budget_kw"] == floor
        await wait_feed(pf, lambda s: s["budget_source"] == "config" and
                        s["measured_kw"] > full * 0.95, 400, "released after the price")
        kinds = [e["method"] for e in pf.agent.tasks.audit.read(limit=10_000)
                 if e.get("event") == "budget"]
        assert "power/signal demand_response" in kinds and "power/signal price" in kinds


async def test_meter_that_stops_answering_holds_the_controller(tmp_path, registry):
    async with power_farm(tmp_path, registry, miners=20, feeds=1, speed=SPEED) as pf:
        await settled(pf, 19)
        name = pf.feeds[0]["name"]
        controller = pf.agent.services["power"]
        fired: list[tuple[str, bool]] = []
        controller.alert_hooks.append(lambda cond, feed, on, summary, labels:
                                      fired.append((cond, on)))
        meter = pf.meter(pf.feeds[0]["serial"])
        meter.fault = "silent"
        status = await wait_feed(pf, lambda s: s["state"] == "hold", 60, "hold")
        assert "no reading" in status["problem"] and status["alerts"]["meter_stale"]
        assert ("meter_stale", True) in fired
        before = device_states(pf)
        steps_before = len(pf.power_steps())
        full = status["measured_kw"]  # None: nothing fresh to show
        assert full is None
        await pf.stack.ok("/api/power/set-budget", {"feed": name, "budget_kw": 1.0})
        await asyncio.sleep(4 * 9 / SPEED)  # four cycles
        status = await pf.status(name)
        assert status["state"] == "hold" and status["budget_kw"] == 1.0
        assert len(pf.power_steps()) == steps_before  # nothing was switched
        assert device_states(pf) == before
        holds = [e for e in pf.agent.tasks.audit.read(limit=1000)
                 if e.get("method") == "power/hold"]
        assert holds and holds[0]["feed"] == name
        # the meter answers again: the alert resolves and the controller acts
        meter.fault = None
        await wait_feed(pf, lambda s: s["state"] in ("shedding", "settling"), 60, "resumed")
        assert ("meter_stale", False) in fired


async def test_dry_run_changes_nothing_and_shows_the_plan_the_real_run_executes(
        tmp_path, registry):
    async with power_farm(tmp_path, registry, miners=40, feeds=1, speed=SPEED,
                          mode="dry-run") as pf:
        await settled(pf, 39)
        name = pf.feeds[0]["name"]
        full = (await pf.status(name))["measured_kw"]
        before = device_states(pf)
        await pf.stack.ok("/api/power/set-budget", {"feed": name, "budget_kw": round(
            full * 0.7, 1)})
        status = await wait_feed(pf, lambda s: s["plan"]["cycles"], 60, "a plan")
        assert status["mode"] == "dry-run" and status["plan"]["direction"] == "shed"
        await asyncio.sleep(3 * 9 / SPEED)
        assert device_states(pf) == before  # nothing touched
        assert not pf.power_steps()
        planned = [e for e in pf.agent.tasks.audit.read(limit=1000)
                   if e.get("method") == "power/plan"]
        assert planned and planned[0]["mode"] == "dry-run"
        status = await pf.status(name)
        shown = status["plan"]["cycles"][0]["steps"]
        # the whole plan reaches the budget
        total = sum(c["delta_kw"] for c in status["plan"]["cycles"])
        assert status["predicted_kw"] + total <= status["budget_kw"]

        await pf.stack.ok("/api/power/set-mode", {"mode": "on"})
        await wait_feed(pf, lambda s: s["mode"] == "on", 30, "mode on")
        for _ in range(200):
            steps = [e for e in pf.power_steps(name) if e["event"] == "start"]
            if steps:
                break
            await asyncio.sleep(0.1)
        executed = steps[0]["miners"]
        assert [(m["mac"], m["to"]) for m in executed] == [(m["mac"], m["to"]) for m in shown]
        for done, planned_step in zip(executed, shown, strict=True):
            assert abs(done["pct"] - planned_step["pct"]) <= 2
        for _ in range(300):  # the step's writes finish: now the miners did change
            if any(e["event"] == "end" for e in pf.power_steps(name)):
                break
            await asyncio.sleep(0.1)
        assert device_states(pf) != before


async def test_the_model_table_is_refined_from_the_meters_response(tmp_path, registry):
    """Stock Antminers report no power: their draw comes from the model table. Here the table
    is told a wrong figure (2,500 W for an S19j Pro that draws ~3,070 W); when some of them go
    to sleep on their own, the meter's response teaches the controller the real figure."""
    async with power_farm(tmp_path, registry, miners=20, feeds=1, speed=SPEED,
                          families=["antminer", "mercury"],
                          sim_extra={"models": ["Antminer S19j Pro"]},
                          power_extra='[[power.models]]\nmodel = "Antminer S19j Pro"\n'
                                      "normal_w = 2500\nlow_power_w = 1800\n") as pf:
        await settled(pf, 20)
        name = pf.feeds[0]["name"]
        controller = pf.agent.services["power"]
        await asyncio.sleep(2 * 9 / SPEED)
        full = (await pf.status(name))["measured_kw"]
        await pf.stack.ok("/api/power/set-budget", {"feed": name, "budget_kw": round(
            full - 9.0, 1)})  # a single step of a few miners
        started = time.monotonic()
        while "antminer s19j pro" not in controller.refinements.factors:
            assert (time.monotonic() - started) * SPEED < 240, controller.refinements.factors
            await asyncio.sleep(0.25)
        factor = controller.refinements.factors["antminer s19j pro"]
        assert factor > 1.05  # the table said 2,500 W; the meter saw more
        assert controller.refinements.factor("Antminer S19j Pro") == factor


STALE_RULE = """
[alerts]
[[alerts.rules]]
name = "feed meter stale"
condition = "meter_stale"
severity = "critical"
[[alerts.rules]]
name = "feed over budget"
condition = "feed_over_budget"
"""


async def test_a_stale_meter_fires_the_alert_and_an_answer_resolves_it(tmp_path, registry):
    """With the alerts room loaded, power control reports a stale meter (and a feed over its
    budget) to the alert engine: the rule fires, and resolves when the meter answers again."""
    engine_module = pytest.importorskip("webbo.agent.alerts.engine")
    async with power_farm(tmp_path, registry, miners=8, feeds=1, speed=SPEED, mode="dry-run",
                          families=["whatsminer", "mercury"], tail=STALE_RULE) as pf:
        await settled(pf, 8)
        engine = pf.agent.service(engine_module.AlertEngine)
        assert engine is not None
        name = pf.feeds[0]["name"]
        # the start, before the meter's first reading, is not an incident
        assert not [e for e in engine.recent(limit=100) if e["rule"] == "feed meter stale"]

        def firing(rule: str) -> list:
            return [a for a in engine.alerts() if a.rule == rule and a.status == "firing"]

        meter = pf.meter(pf.feeds[0]["serial"])
        meter.fault = "silent"
        await wait_feed(pf, lambda s: s["state"] == "hold", 60, "hold")
        started = time.monotonic()
        while not firing("feed meter stale"):
            assert time.monotonic() - started < 30, engine.alerts()
            await asyncio.sleep(0.1)
        alert = firing("feed meter stale")[0]
        assert alert.key == name and alert.severity == "critical"
        assert "no reading" in alert.summary
        meter.fault = None
        while firing("feed meter stale"):
            assert time.monotonic() - started < 90, engine.alerts()
            await asyncio.sleep(0.1)
        # over budget (dry-run: nothing sheds): the other reported condition
        await pf.stack.ok("/api/power/set-budget", {"feed": name, "budget_kw": 1.0})
        while not firing("feed over budget"):
            assert time.monotonic() - started < 120, engine.alerts()
            await asyncio.sleep(0.1)
        assert firing("feed over budget")[0].key == name
