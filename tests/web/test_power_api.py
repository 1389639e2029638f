"""/api/power/*: every method against a running agent over a small simulated farm (two feeds,
each measured by its simulated meter), and every bad input refused in the envelope with the
field named while the running control stays as it was."""

from __future__ import annotations

import asyncio
import time

import pytest
from powerfarm import power_farm, settled

pytestmark = [pytest.mark.timeout(300)]


async def wait_source(pf, feed: str, source: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = await pf.status(feed)
        if status["budget_source"] == source:
            return status
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.1)


async def test_power_api(tmp_path, registry):
    async with power_farm(tmp_path, registry, miners=12, feeds=2, speed=6.0, mode="dry-run",
                          families=["whatsminer", "mercury"]) as pf:
        await settled(pf, 12)
        s = pf.stack
        feeds = await s.ok("/api/power/get-status", {})
        assert [f["name"] for f in feeds] == ["Ввод 1", "Ввод 2"]
        first = feeds[0]
        assert first["mode"] == "dry-run" and first["budget_source"] == "config"
        assert first["measured_kw"] > 10 and first["miners"]["total"] == 6
        assert {x["source"] for x in first["sources"]} == {
            "config", "api", "schedule", "demand_response", "price"}
        detail = await s.ok("/api/power/get-feed", {"feed": "Ввод 1"})
        assert len(detail["miner_list"]) == 6 and detail["history"]
        assert {"mac", "ip", "model", "level", "kw", "estimated", "jth", "status"} <= set(
            detail["miner_list"][0])
        config = await s.ok("/api/power/get-config", {})
        assert config["mode"] == "dry-run" and len(config["feeds"]) == 2

        # -- budgets ----------------------------------------------------------------------
        until = time.time() + 3600
        status = await s.ok("/api/power/set-budget", {"feed": "Ввод 1", "budget_kw": 10.5,
                                                      "until": until})
        assert status["name"] == "Ввод 1"
        status = await wait_source(pf, "Ввод 1", "api")
        assert status["budget_kw"] == 10.5 and status["budget_until"] == pytest.approx(until)
        await s.ok("/api/power/clear-budget", {"feed": "Ввод 1"})
        await wait_source(pf, "Ввод 1", "config")
        # an ISO time without an offset is in the farm's time zone (the system's here)
        later = int(time.time()) + 600
        local = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(later))
        await s.ok("/api/power/set-budget", {"feed": "Ввод 2", "budget_kw": 5, "until": local})
        status = await wait_source(pf, "Ввод 2", "api")
        assert status["budget_until"] == later
        applied = await s.ok("/api/power/signal", {"kind": "demand_response",
                                                   "budget_kw": 4.0, "until": until})
        assert applied == ["Ввод 1", "Ввод 2"]
        await wait_source(pf, "Ввод 1", "demand_response")
        assert await s.ok("/api/power/clear-signal", {}) == 2
        await wait_source(pf, "Ввод 2", "api")

        # -- bad input: a clear message in the envelope, nothing changes ------------------------
        bad = [
            ("/api/power/set-budget", {"feed": "Ввод 9", "budget_kw": 1},
             "feed: no feed 'Ввод 9' (feeds: Ввод 1, Ввод 2)"),
            ("/api/power/set-budget", {"feed": "Ввод 1", "budget_kw": -1},
             "budget_kw: a budget cannot be below zero"),
            ("/api/power/set-budget", {"feed": "Ввод 1", "budget_kw": 601},
             "budget_kw: 601 kW is above the limit of feed 'Ввод 1' (600 kW)"),
            ("/api/power/set-budget", {"feed": "Ввод 1", "budget_kw": 1, "until": 1000},
             "until: the end time is in the past"),
            ("/api/power/set-budget", {"feed": "Ввод 1", "budget_kw": 1, "until": "soon"},
             "until: not an ISO 8601 time: 'soon'"),
            ("/api/power/set-budget", {"feed": "Ввод 1", "budget_kw": "1"},
             "budget_kw: expected float, got str"),
            ("/api/power/signal", {"kind": "demand_response", "budget_kw": 1},
             "until: required field is missing"),
            ("/api/power/signal", {"kind": "demand_response", "until": until},
             "budget_kw: a demand-response signal needs budget_kw"),
            ("/api/power/signal", {"kind": "price", "price": 9, "until": until},
             "price: no feed has a strike_price"),
            ("/api/power/signal", {"kind": "brownout", "until": until}, "kind: invalid value"),
            ("/api/power/set-mode", {"mode": "auto"}, "mode: invalid value"),
            ("/api/power/exclude", {"macs": ["nope"]}, "macs[0]: expected a lower-case MAC"),
        ]
        for path, body, message in bad:
            code, answer = await s.call(path, body)
            assert code == 422 and answer["success"] is False, (path, answer)
            assert message in answer["payload"], (path, answer["payload"])
        assert (await pf.status("Ввод 1"))["budget_source"] == "config"

        path = s.config_path
        text_before = path.read_text()
        wrong = dict(config)
        wrong["feeds"] = [dict(config["feeds"][0], meters=["11111111-20"])]
        code, answer = await s.call("/api/power/set-config", wrong)
        assert code == 422 and "power.feeds[0].meters[0]: no meter '11111111-20'" in \
            answer["payload"]
        overlapping = dict(config)
        overlapping["feeds"] = [config["feeds"][0], dict(config["feeds"][1],
                                                           groups=["Зал 1"])]
        code, answer = await s.call("/api/power/set-config", overlapping)
        assert code == 422 and "overlap" in answer["payload"], answer
        above = dict(config)
        above["feeds"] = [dict(config["feeds"][0], budget_kw=700.0)]
        code, answer = await s.call("/api/power/set-config", above)
        assert code == 422 and "power.feeds[0].budget_kw: 700 kW is above the feed's " \
            "limit_kw (600 kW)" in answer["payload"]
        code, answer = await s.call("/api/power/set-config", {"modes": "on"})
        assert code == 422 and "power.modes: unknown key" in answer["payload"]
        assert path.read_text() == text_before  # the file and the running control stay
        assert (await s.ok("/api/power/get-config", {}))["feeds"] == config["feeds"]

        # -- config edits that are fine ----------------------------------------------------
        mac = detail["miner_list"][0]["mac"]
        section = await s.ok("/api/power/exclude", {"macs": [mac]})
        assert section["exclude"] == [mac]
        for _ in range(100):
            listing = (await s.ok("/api/power/get-feed", {"feed": "Ввод 1"}))["miner_list"]
            if {m["mac"]: m["status"] for m in listing}[mac] == "excluded":
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the miner never showed as excluded")
        section = await s.ok("/api/power/set-mode", {"mode": "off"})
        assert section["mode"] == "off"
        assert 'mode = "off"' in path.read_text() and "# test config" in path.read_text()
        changed = dict(section)
        changed["feeds"][1]["budget_kw"] = 300.0
        section = await s.ok("/api/power/set-config", changed)
        assert section["feeds"][1]["budget_kw"] == 300.0 and section["mode"] == "off"
        methods = {e.get("method") for e in pf.agent.tasks.audit.read(limit=1000)}
        assert {"power/set-budget", "power/clear-budget", "power/signal demand_response",
                "power/set-config", "power/set-mode", "power/exclude"} <= methods
