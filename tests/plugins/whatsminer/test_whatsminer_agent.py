"""The real agent sweeps simulated Whatsminers and what it read lands in a real InfluxDB;
then control actions reach each miner with the password of its group."""

from __future__ import annotations

import pytest
from whatsminer_support import running

from webbo.agent.core.agent import Agent
from webbo.agent.core.config import load_config
from webbo.agent.fleet.control import Controller
from webbo.agent.fleet.driver import Action


def _range(name: str, ips: list[str], extra: int) -> str:
    first = ips[0]
    last = ips[0].rsplit(".", 1)[0] + f".{len(ips) + extra}"
    return f"""
[[network.ip_range_groups]]
name = "{name}"
[[network.ip_range_groups.ip_ranges]]
name = "rack {name}"
first = "{first}"
last = "{last}"
"""


@pytest.mark.slow
async def test_sweep_writes_normalised_metrics_and_controls_per_group(tmp_path, registry,
                                                                      influx_db, monkeypatch):
    server, db = influx_db
    monkeypatch.setenv("WM_A", "alpha-pw")
    monkeypatch.setenv("WM_B", "beta-pw")
    async with running(5, password="alpha-pw", faults_by_ip=[None] * 4 + ["garbage"]) as a, \
            running(2, password="beta-pw", profiles=["m50", "m60"],
                    v3_password="beta-pw") as b:
        a.device(a.devices[2]["ip"]).errors = {"218": "2024-06-15 10:30:00"}
        path = tmp_path / "webbo.toml"
        path.write_text(f"""
[agent]
internal_metrics = false
timeout = "3s"
[web]
state_dir = "state"
[network]
{_range("A", [d["ip"] for d in a.devices], 2)}
{_range("B", [d["ip"] for d in b.devices], 1)}
[[inputs.whatsminer]]
password = "${{WM_A}}"
groups = ["A"]
confirm_timeout = "3s"
[[inputs.whatsminer]]
password = "${{WM_B}}"
v3_password = "${{WM_B}}"
groups = ["B"]
confirm_timeout = "3s"
[[outputs.influxdb]]
urls = ["{server.url}"]
database = "{db}"
""")
        agent = Agent(registry, load_config(path, registry))
        ok, unsent = await agent.once()
        assert ok and unsent == 0

        rows = {r["mac"]: r for r in server.rows('SELECT * FROM "miner" GROUP BY *', db)}
        healthy = a.devices[:4] + b.devices
        for described in healthy:
            row = rows[described["mac"].lower()]
            state = (a.by_ip.get(described["ip"]) or b.by_ip[described["ip"]])
            profile = state.profile
            assert row["online"] is True and row["state"] == "ok"
            assert row["make"] == "Whatsminer" and row["model"] == profile.model
            assert row["ip"] == described["ip"]
            assert row["hashrate_ths"] == pytest.approx(profile.factory_ghs / 1000, rel=0.03)
            assert row["expected_hashrate_ths"] == profile.factory_ghs / 1000
            assert row["power_w"] == pytest.approx(profile.power_w, rel=0.03)
            assert row["power_limit_w"] == profile.power_limit_w
            assert row["temp_env_c"] == state.env_temp
            assert row["work_mode"] == "normal" and row["led"] == 0 and row["is_mining"] is True
            assert row["firmware"] == profile.fw_ver
            if profile.fans:
                assert row["fan_count"] == 2 and row["fan_rpm_min"] > 4000
                assert row["cooling"] == "air"
            else:  # M56S: an immersion model, no fans of its own
                assert row["fan_count"] == 0 and row["cooling"] == "immersion"
                assert row.get("fan_rpm_min") is None
            assert row["error_count"] == len(state.errors)
        assert rows[a.devices[2]["mac"].lower()]["errors"] == "218 (since 2024-06-15 10:30:00)"
        assert rows[b.devices[0]["mac"].lower()]["group"] == "B"
        # garbage at identification: not claimed, recorded as unknown, the sweep goes on
        fleet = agent.services["miners"]
        assert a.devices[4]["mac"].lower() not in rows
        assert a.devices[4]["ip"] in fleet.inventory.unknown

        boards = server.rows('SELECT count("hashrate_ths") FROM "miner_board" GROUP BY "mac"',
                             db)
        counts = {r["mac"]: r["count"] for r in boards}
        for described in healthy:
            state = a.by_ip.get(described["ip"]) or b.by_ip[described["ip"]]
            assert counts[described["mac"].lower()] == state.profile.boards
        pools = server.rows('SELECT * FROM "miner_pool" GROUP BY *', db)
        assert len(pools) == 3 * len(healthy)

        assert fleet.last_sweep.identified == len(healthy)
        controller = agent.service(Controller)
        for device in fleet.inventory.devices():
            assert await controller.call(device, Action.SET_LED, {"status": 1}) is None
        for sim in (a, b):
            for described in sim.devices[:4]:
                if described["fault"] is None:
                    assert sim.device(described["ip"]).ledstat == "manual"
        await fleet.close()
