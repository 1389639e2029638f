"""Every query of the Grafana dashboard returns data from a real InfluxDB 1.x that the agent
filled from a simulated farm (Antminers, Whatsminers, generic cgminer devices, Mercury meters)."""

from __future__ import annotations

import itertools
import json
import os

import pytest
from minerfarm import family, make_agent
from project import ROOT
from waiting import wait_for

from webbo.agent.core.contract import SimOptions

DASHBOARD = ROOT / "contrib" / "grafana" / "webbo-farm.json"

pytestmark = pytest.mark.timeout(300)

_blocks = itertools.count((os.getpid() * 11) % 200 + 1)


def queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    found = []
    for panel in board["panels"]:
        for target in panel["targets"]:
            found.append((panel["title"], target["query"]))
    for variable in board["templating"]["list"]:
        found.append((f"variable {variable['name']}", variable["query"]))
    return found


def as_grafana_would(query: str) -> str:
    """Expand the dashboard's variables the way Grafana does with "All" selected."""
    return (query.replace("$timeFilter", "time > now() - 1h")
            .replace("$__interval", "1s")
            .replace("$group", ".*").replace("$range", ".*").replace("$meter", ".*")
            .replace("$feed", ".*"))


def test_the_dashboard_is_valid_json_with_influxql_targets():
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "webbo-farm"
    assert len(queries()) >= 25
    for title, query in queries():
        assert query.startswith(("SELECT", "SHOW")), title


async def test_every_dashboard_query_returns_data(registry, influx_db, tmp_path):
    server, db = influx_db
    net = f"127.9.{next(_blocks) % 250 + 1}."
    ips = [f"{net}{i}" for i in range(1, 9)]
    meters = [{"serial_number": s, "device_model": "230", "address": a}
              for s, a in (("32297700-17", 1), ("43099131-20", 2), ("47457598-22", 3))]
    mercury = await registry.simulators["mercury"].start(3, SimOptions(extra={"meters": meters}))
    try:
        async with family(registry, "antminer", ips[:4]) as ants, \
                family(registry, "whatsminer", ips[4:6]), \
                family(registry, "cgminer", ips[6:]):
            meter_tables = "".join(
                f'[[inputs.mercury]]\nport = "{m["port"]}"\n'
                f'serial_number = "{m["serial_number"]}"\n'
                f'device_model = "{m["device_model"]}"\naddress = {m["address"]}\n'
                for m in mercury.devices)
            text = f"""
[agent]
interval = "1s"
flush_interval = "1s"
timeout = "2s"
connect_timeout = "1s"
watch_config = false
[web]
enabled = false
state_dir = "{tmp_path}"
[[network.ip_range_groups]]
name = "room A"
[[network.ip_range_groups.ip_ranges]]
name = "rack 1"
first = "{ips[0]}"
last = "{ips[3]}"
[[network.ip_range_groups]]
name = "room B"
[[network.ip_range_groups.ip_ranges]]
name = "rack 2"
first = "{ips[4]}"
last = "{ips[7]}"
[[inputs.bitmain_http]]
web_port = 8080
settings_every = 1
[[inputs.whatsminer]]
[[inputs.cgminer]]
{meter_tables}
[power]
interval = "1s"
[[power.feeds]]
name = "feed A"
meters = ["32297700-17"]
groups = ["room A"]
budget_kw = 100
[[outputs.influxdb]]
urls = ["{server.url}"]
database = "{db}"
"""
            agent = make_agent(registry, text, tmp_path / "webbo.toml")
            await agent.start(watch=False, signals=False)
            try:
                fleet = agent.services["miners"]
                assert await wait_for(lambda: fleet.sweeps >= 3 and len(fleet.inventory) == 8, 60)
                assert await wait_for(lambda: server.count("meter", "voltage_l1_v", db) >= 6)
                assert await wait_for(lambda: server.count("power", "measured_kw", db) >= 2)
                # One miner goes silent: the "offline" panels need one.
                ants.by_ip[ips[1]].fault = "silent"
                sweeps = fleet.sweeps
                assert await wait_for(lambda: fleet.sweeps >= sweeps + 3, 60)
                assert await wait_for(
                    lambda: server.count("webbo_internal", "sweep_time_s", db) >= 2)
            finally:
                await agent.stop()
    finally:
        await mercury.close()

    empty = []
    for title, query in queries():
        series = server.query(as_grafana_would(query), db)
        rows = sum(len(s.get("values") or []) for s in series)
        if rows == 0:
            empty.append((title, query))
    assert not empty, "queries without data:\n" + "\n".join(f"{t}: {q}" for t, q in empty)
