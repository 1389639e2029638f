"""The alerts methods of the API, on a running stack: simulated Antminers, the agent, the web
server, a real webhook receiver for the channel test."""

from __future__ import annotations

import time

import pytest
from alert_receivers import WebhookReceiver, wait_until
from api_helpers import config_text, stack
from minerfarm import block, family

from webbo.agent.alerts.engine import AlertEngine

HTTP_PORT = 18081


@pytest.mark.slow
async def test_alerts_api(tmp_path, registry):
    hook = await WebhookReceiver().start()
    net = block()
    ips = [f"{net}1", f"{net}2"]
    alerts = f"""
[alerts]
group_wait = "0.2s"
[[alerts.rules]]
name = "hot"
condition = "temp_chip_high"
threshold = 100
severity = "critical"
[[alerts.channels]]
name = "hook"
url = "{hook.url}"
"""
    inputs = f"[[inputs.bitmain_http]]\nweb_port = {HTTP_PORT}\n{alerts}"
    text = config_text(tmp_path / "state", [("Зал 1", "Стойка 5", ips[0], ips[1])],
                       inputs=inputs)
    try:
        async with family(registry, "antminer", ips, http_port=HTTP_PORT,
                          models=["Antminer S19j Pro"]) as sim, \
                stack(tmp_path, registry, text) as s:
            await s.wait_inventory(2)
            engine = s.agent.service(AlertEngine)
            assert await s.ok("/api/alerts/get", {}) == []
            sim.by_ip[ips[0]].steer(heat_c=40)
            await wait_until(lambda: engine.alerts("firing"), 30, "an alert")
            mac = sim.by_ip[ips[0]].mac.lower()
            [alert] = await s.ok("/api/alerts/get", {"status": "firing"})
            assert (alert["rule"], alert["key"], alert["severity"]) == ("hot", mac, "critical")
            assert alert["labels"]["ip"] == ips[0] and alert["labels"]["range"] == "Стойка 5"
            assert alert["value"] > 100 and alert["silenced_by"] is None
            history = await s.ok("/api/alerts/history", {"limit": 5})
            assert history[0]["event"] == "firing" and history[0]["key"] == mac

            silence = await s.ok("/api/alerts/silences/create", {
                "ranges": ["Стойка 5"], "duration": "2h", "comment": "замена вентиляторов"})
            assert silence["active"] and silence["ends_at"] > time.time() + 7000
            assert silence["created_by"].startswith("key:")
            [alert] = await s.ok("/api/alerts/get", {})
            assert alert["silenced_by"] == silence["id"]
            assert [x["id"] for x in await s.ok("/api/alerts/silences/get", {})] == [
                silence["id"]]
            assert await s.ok("/api/alerts/silences/delete", {"id": silence["id"]}) is True
            assert await s.ok("/api/alerts/silences/delete", {"id": silence["id"]}) is True
            assert await s.ok("/api/alerts/silences/get", {}) == []
            expired = await s.ok("/api/alerts/silences/get", {"include_expired": True})
            assert [x["active"] for x in expired] == [False]

            for body, message in [
                ({"ranges": ["x"]}, "give either until"),
                ({"duration": "2h"}, "name what to silence"),
                ({"macs": ["nope"], "duration": "1h"}, "macs[0]: not a MAC"),
                ({"rules": ["hot"], "duration": "soon"}, "duration:"),
            ]:
                code, answer = await s.call("/api/alerts/silences/create", body)
                assert code == 422 and message in answer["payload"], (body, answer)

            info = await s.task("/api/alerts/test-channel", {"channel": "hook"})
            assert info == {"status": "success", "result": True}
            assert any("Проверка канала" in m.title for m in hook.messages)
            code, answer = await s.call("/api/alerts/test-channel", {"channel": "tg"})
            assert code == 422 and "no channel named 'tg'" in answer["payload"]

            rules = await s.ok("/api/alerts/rules/get", {})
            assert [r["name"] for r in rules] == ["hot"] and rules[0]["for"] == 0.0
            new = [*rules, {"name": "fans", "condition": "fan_low", "for": "30s",
                            "ranges": ["Стойка 5"]}]
            assert (await s.task("/api/alerts/rules/set", {"rules": new}))["result"] is True
            assert sorted(engine.rules) == ["fans", "hot"]
            assert "# test config: comments must survive API edits" in (
                s.config_path.read_text())
            code, answer = await s.call("/api/alerts/rules/set", {"rules": [
                {"name": "bad", "condition": "fan_low", "ranges": ["Стойка 99"]}]})
            assert code == 422, answer
            assert answer["payload"] == ("alerts.rules[0].ranges[0]: no range named "
                                         "'Стойка 99' in [network]")
            assert sorted(engine.rules) == ["fans", "hot"]

            status = await s.ok("/api/agent/get-status", {})
            assert status["alerts"]["firing"] == 1 and status["alerts"]["rules"] == 2
            assert status["alerts"]["channels"][0]["name"] == "hook"
    finally:
        await hook.stop()
