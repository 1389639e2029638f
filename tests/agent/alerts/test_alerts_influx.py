"""Alert events land in InfluxDB as the ``alert`` measurement, and the alert counts in
``webbo_internal`` (a real influxd 1.x on loopback)."""

from __future__ import annotations

from alert_receivers import wait_until

from webbo.agent.alerts.engine import AlertEngine
from webbo.agent.core.agent import Agent
from webbo.agent.core.config import load_config


async def test_alert_events_and_counts_reach_influxdb(tmp_path, registry, influx_db):
    server, db = influx_db
    path = tmp_path / "webbo.toml"
    path.write_text(f"""
[agent]
interval = "1s"
flush_interval = "1s"
watch_config = false
[web]
enabled = false
state_dir = "{tmp_path}/state"
[alerts]
[[alerts.rules]]
name = "budget"
condition = "feed_over_budget"
severity = "critical"
[[outputs.influxdb]]
urls = ["{server.url}"]
database = "{db}"
""", encoding="utf-8")
    agent = Agent(registry, load_config(path, registry))
    await agent.start(signals=False, watch=False)
    try:
        engine = agent.service(AlertEngine)
        engine.report("feed_over_budget", "feed-1", True, "Ввод 1: 812 кВт при лимите 800",
                      {"name": "Ввод 1"}, value=812.0)
        await wait_until(lambda: engine.stats.evaluations >= 2, 10)
        engine.report("feed_over_budget", "feed-1", False)

        def landed() -> bool:
            try:
                return len(server.rows("SELECT * FROM alert", db)) == 2
            except Exception:
                return False

        await wait_until(landed, 30, "2 alert points in InfluxDB")
        rows = server.rows("SELECT * FROM alert", db)
        assert [r["state"] for r in rows] == ["firing", "resolved"]
        first = rows[0]
        assert (first["rule"], first["condition"], first["severity"], first["kind"],
                first["key"]) == ("budget", "feed_over_budget", "critical", "reported", "feed-1")
        assert first["value"] == 812.0 and first["summary"].startswith("Ввод 1")
        assert rows[1]["duration_s"] >= 0

        def counted() -> bool:
            try:
                return bool(server.rows("SELECT alerts_fired, alerts_resolved, alerts_firing "
                                        "FROM webbo_internal WHERE input = 'alerts' AND "
                                        "alerts_resolved = 1", db))
            except Exception:
                return False

        await wait_until(counted, 30, "the alert counts in webbo_internal")
    finally:
        await agent.stop(flush_timeout=2)
