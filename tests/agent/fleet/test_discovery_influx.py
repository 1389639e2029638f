"""Readings of a simulated farm land in a real InfluxDB 1.x through the agent: the ``miner``,
``miner_board`` and ``miner_pool`` schema of docs/metrics.md, tags from [network]."""

from __future__ import annotations

import pytest
from minerfarm import block, config_text, family, make_agent

from webbo.agent.fleet.model import normalise_mac

pytestmark = pytest.mark.timeout(240)


async def test_farm_metrics_land_in_influxdb(registry, influx_db, tmp_path):
    server, db = influx_db
    net = block()
    ips = [f"{net}{i}" for i in range(1, 9)]
    async with family(registry, "antminer", ips[:6], fault_by_ip={ips[5]: "garbage"}) as ants, \
            family(registry, "cgminer", ips[6:]) as cgs:
        output = f'[[outputs.influxdb]]\nurls = ["{server.url}"]\ndatabase = "{db}"\n'
        text = config_text(ips[0], ips[3], tmp_path, second_range=(ips[4], ips[-1]),
                           bitmain="web_port = 8080\nsettings_every = 1") + output
        agent = make_agent(registry, text)
        _, unsent = await agent.once()
        fleet = agent.services["miners"]
        await fleet.close()
        assert unsent == 0
        # a second cycle: a known device that breaks writes an online=false point
        ants.by_ip[ips[1]].fault = "silent"
        agent = make_agent(registry, text.replace('timeout = "3s"', 'timeout = "1s"'))
        await agent.once()
        await agent.services["miners"].close()
    rows = server.rows('SELECT * FROM "miner" GROUP BY "mac"', db)
    by_mac = {}
    for row in rows:
        by_mac.setdefault(row["mac"], []).append(row)
    expected = {normalise_mac(d["mac"]) for d in ants.devices[:5] + cgs.devices}
    assert set(by_mac) == expected
    healthy = by_mac[normalise_mac(ants.devices[0]["mac"])][0]
    assert healthy["online"] is True and healthy["state"] == "ok"
    assert healthy["make"] == "Antminer" and healthy["model"] == ants.devices[0]["model"]
    assert (healthy["group"], healthy["range"]) == ("room A", "rack 1")
    assert healthy["ip"] == ips[0] and healthy["hashrate_ths"] > 50
    assert healthy["work_mode"] == "normal" and healthy["led"] == 0
    assert isinstance(healthy["fan_rpm_min"], int) and healthy["temp_chip_max_c"] > 40
    assert healthy["expected_hashrate_ths"] > 50 and healthy["uptime_s"] >= 0
    broken = by_mac[normalise_mac(ants.devices[1]["mac"])]
    assert [r["online"] for r in sorted(broken, key=lambda r: r["time"])] == [True, False]
    assert "timed out" in sorted(broken, key=lambda r: r["time"])[-1]["error"]
    generic = by_mac[normalise_mac(cgs.devices[0]["mac"])][0]
    assert (generic["group"], generic["range"]) == ("room B", "rack 2")
    boards = server.rows('SELECT * FROM "miner_board" GROUP BY "mac", "board"', db)
    first = [b for b in boards if b["mac"] == normalise_mac(ants.devices[0]["mac"])]
    assert sorted({b["board"] for b in first}) == ["0", "1", "2"]
    assert all(b["chips"] > 50 and b["temp_board_c"] > 20 for b in first)
    pools = server.rows('SELECT * FROM "miner_pool" GROUP BY "mac", "index"', db)
    mine = [p for p in pools if p["mac"] == normalise_mac(ants.devices[0]["mac"])]
    assert {p["index"] for p in mine} == {"0", "1"}
    assert any(p["active"] for p in mine)
