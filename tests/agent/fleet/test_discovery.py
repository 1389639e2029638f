"""The sweep of the [network] ranges against simulated Antminers and cgminer devices:
identification, polling, inventory (DHCP moves, restart persistence, unknown devices, the
dead-address back-off) and the socket bound."""

from __future__ import annotations

import asyncio
import json

import pytest
from minerfarm import block, config_text, family, make_agent, sweep

from webbo.agent.core.config import ConfigError, parse_config
from webbo.agent.fleet.discovery import MinerFleet
from webbo.agent.fleet.inventory import Inventory
from webbo.agent.fleet.model import normalise_mac

pytestmark = pytest.mark.timeout(180)


async def test_sweep_identifies_and_polls_every_kind(registry, tmp_path):
    net = block()
    antminers = [f"{net}{i}" for i in range(1, 6)]
    generic = [f"{net}{i}" for i in range(6, 9)]
    async with family(registry, "antminer", antminers) as ants, \
            family(registry, "cgminer", generic) as cgs:
        agent = make_agent(registry, config_text(f"{net}1", f"{net}20", tmp_path,
                                                 bitmain="web_port = 8080\nsettings_every = 1"))
        metrics: list = []
        fleet = await sweep(agent, metrics)
        try:
            found = {d.ip: d for d in fleet.inventory.devices()}
            assert set(found) == set(antminers + generic)
            for sim in ants.devices:
                device = found[sim["ip"]]
                assert device.mac == normalise_mac(sim["mac"])
                assert (device.driver, device.make, device.model) == (
                    "bitmain_http", "Antminer", sim["model"])
                assert device.serial == sim["serial"] and device.firmware == sim["firmware"]
                assert (device.group, device.range) == ("room A", "rack 1")
                assert device.state == "ok" and device.reading.hashrate_ths > 50
                assert device.reading.work_mode == "normal" and device.reading.led == 0
                assert len(device.reading.boards) == 3 and len(device.reading.fans_rpm) == 4
            for sim in cgs.devices:
                device = found[sim["ip"]]
                assert device.driver == "cgminer" and device.model == sim["model"]
                assert device.mac == normalise_mac(sim["mac"])
                assert device.mac_source == sim.get("mac_source", "device")
                assert device.reading.hashrate_ths > 1
            # the addresses without a device back off; nothing unknown answered
            assert fleet.last_sweep.no_answer == 12 and not fleet.inventory.unknown
            names = {m.name for m in metrics}
            assert {"miner", "miner_board", "miner_pool"} <= names
            miner = [m for m in metrics if m.name == "miner"]
            assert len(miner) == 8 and all(m.fields["online"] for m in miner)
            assert {m.tags["group"] for m in miner} == {"room A"}
            # a second sweep polls the known devices and skips the dead addresses
            second = await sweep(agent)
            assert second.last_sweep.polled_ok == 8
            assert second.last_sweep.backing_off == 12 and second.last_sweep.identified == 0
        finally:
            await fleet.close()


async def test_dhcp_move_keeps_one_device_and_restart_keeps_inventory(registry, tmp_path):
    net = block()
    async with family(registry, "antminer", [f"{net}10"], seed=5) as sim:
        mac = normalise_mac(sim.devices[0]["mac"])
        agent = make_agent(registry, config_text(f"{net}1", f"{net}40", tmp_path,
                                                 second_range=(f"{net}41", f"{net}60")))
        fleet = await sweep(agent)
        assert fleet.inventory.get(mac).ip == f"{net}10"
        await fleet.close()
    # the same miner (same seed and address → same MAC) comes back at another address:
    # a simulator at .50 with the identity of .10
    from webbo.plugins.inputs.bitmain_http.sim import antminer as simulator

    async with family(registry, "antminer", [f"{net}50"], seed=5) as moved:
        moved.sims[0].mac = sim.devices[0]["mac"]
        fleet.inventory._dead_until.clear()
        fleet = await sweep(agent)
        try:
            assert len(fleet.inventory) == 1
            device = fleet.inventory.get(mac)
            assert device.ip == f"{net}50" and fleet.inventory.at(f"{net}10") is None
            assert (device.group, device.range) == ("room B", "rack 2")
        finally:
            await fleet.close()
    assert simulator.MODELS  # the module stays importable as a product feature
    # restart: a new agent on the same state folder knows the device by MAC at once
    saved = json.loads((tmp_path / "inventory.json").read_text())
    assert [d["mac"] for d in saved["devices"]] == [mac]
    assert (tmp_path / "inventory.json").stat().st_mode & 0o777 == 0o600
    agent2 = make_agent(registry, config_text(f"{net}1", f"{net}40", tmp_path,
                                              second_range=(f"{net}41", f"{net}60")))
    fleet2 = agent2.service(MinerFleet)
    fleet2.configure(agent2.config)  # reads the saved inventory
    assert fleet2.inventory.get(mac).ip == f"{net}50"
    assert fleet2.inventory.get(mac).model == device.model
    await fleet2.close()


async def test_unknown_device_is_recorded_with_what_it_said(registry, tmp_path):
    net = block()

    async def http_only(reader, writer):
        await reader.read(1024)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 25\r\nContent-Type: text/html\r\n"
                     b"Connection: close\r\n\r\n<html>some printer</html>")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http_only, f"{net}7", 8080)
    try:
        agent = make_agent(registry, config_text(f"{net}1", f"{net}9", tmp_path))
        fleet = await sweep(agent)
        try:
            assert len(fleet.inventory) == 0
            unknown = fleet.inventory.unknown[f"{net}7"]
            assert unknown.ports == [8080]
            assert any("200" in said for said in unknown.said)
            assert fleet.last_sweep.unknown == 1
        finally:
            await fleet.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_faulty_devices_fail_alone(registry, tmp_path):
    """Silent, garbage, half-reply and refusing devices fail only themselves, with a reason."""
    net = block()
    ips = [f"{net}{i}" for i in range(1, 9)]
    fault_by_ip = {ips[0]: "silent", ips[1]: "garbage", ips[2]: "half", ips[3]: "refuse"}
    async with family(registry, "antminer", ips[:4] + ips[6:],
                      fault_by_ip=fault_by_ip) as ants, \
            family(registry, "cgminer", ips[4:6], fault_by_ip={ips[5]: "garbage"}):
        agent = make_agent(registry, config_text(ips[0], ips[-1], tmp_path,
                                                 timeout="2s"))
        fleet = await sweep(agent)
        try:
            healthy = {ips[4], ips[6], ips[7]}
            assert {d.ip for d in fleet.inventory.devices()} == healthy
            assert all(d.state == "ok" for d in fleet.inventory.devices())
            # the faulty ones answered something at connect level but nobody claimed them
            for ip in (ips[0], ips[1], ips[2], ips[5]):
                assert ip in fleet.inventory.unknown, ip
                assert fleet.inventory.unknown[ip].said
            assert ips[3] not in fleet.inventory.unknown  # nothing listens: backs off
            # a known device that turns faulty fails alone, with a reason, and recovers
            good = next(d for d in fleet.inventory.devices() if d.ip == ips[6])
            ants.by_ip[ips[6]].fault = "garbage"
            metrics: list = []
            await sweep(agent, metrics)
            assert good.state == "error" and "unreadable" in good.error
            failed = [m for m in metrics if m.name == "miner" and not m.fields["online"]]
            assert [m.tags["mac"] for m in failed] == [good.mac]
            assert failed[0].fields["error"] == good.error
            assert fleet.inventory.at(ips[7]).state == "ok"
            ants.by_ip[ips[6]].fault = "half"
            await sweep(agent)
            assert good.state == "error" and good.failures == 2
            ants.by_ip[ips[6]].fault = ""
            await sweep(agent)  # re-identified after two failures, then polled
            assert good.state == "ok" and good.failures == 0
        finally:
            await fleet.close()


async def test_slow_device_fails_on_timeout_not_the_sweep(registry, tmp_path):
    net = block()
    ips = [f"{net}1", f"{net}2"]
    async with family(registry, "antminer", ips) as ants:
        agent = make_agent(registry, config_text(ips[0], ips[1], tmp_path,
                                                 timeout="1s"))
        fleet = await sweep(agent)
        try:
            assert len(fleet.inventory) == 2
            ants.by_ip[ips[0]].fault = "slow"
            await sweep(agent)
            slow = fleet.inventory.at(ips[0])
            assert slow.state == "timeout" and "timed out" in slow.error  # not "error"
            assert slow.failing_since > 0
            assert fleet.inventory.at(ips[1]).state == "ok"
        finally:
            await fleet.close()


async def test_refused_multi_command_is_remembered(registry, tmp_path):
    net = block()
    async with family(registry, "antminer", [f"{net}1"],
                      quirks_by_ip={f"{net}1": ["no_multi", "missing_comma", "strings"]}) as s:
        agent = make_agent(registry, config_text(f"{net}1", f"{net}1", tmp_path))
        fleet = await sweep(agent)
        try:
            device = fleet.inventory.at(f"{net}1")
            assert device.state == "ok" and device.reading.hashrate_ths > 50
            driver = fleet.driver_for(device)
            assert device.mac in driver.no_multi
            before = s.sims[0].requests
            await sweep(agent)
            assert s.sims[0].requests - before == 3  # summary, stats, pools: no '+' retried
        finally:
            await fleet.close()


async def test_never_more_sockets_than_the_bound(registry, tmp_path):
    net = block()
    ips = [f"{net}{i}" for i in range(1, 41)]
    async with family(registry, "antminer", ips):
        agent = make_agent(registry, config_text(f"{net}1", f"{net}250", tmp_path,
                                                 agent="concurrency = 8"))
        fleet = await sweep(agent)
        try:
            assert len(fleet.inventory) == 40
            assert 1 <= fleet.net.peak_open <= 8
            assert fleet.status()["open_sockets_peak"] <= 8
        finally:
            await fleet.close()


async def test_dead_address_backoff_is_configurable(registry, tmp_path):
    net = block()
    agent = make_agent(registry, config_text(f"{net}1", f"{net}4", tmp_path,
                                             agent='dead_address_backoff = "1s"'))
    fleet = await sweep(agent)
    try:
        assert fleet.last_sweep.no_answer == 4
        await sweep(agent)
        assert fleet.last_sweep.backing_off == 4
        await asyncio.sleep(1.1)
        async with family(registry, "antminer", [f"{net}2"]):
            await sweep(agent)
            assert fleet.last_sweep.identified == 1 and fleet.last_sweep.no_answer == 3
    finally:
        await fleet.close()


def test_range_validation_names_both_ranges_and_the_cap(registry, tmp_path):
    text = config_text("127.3.0.1", "127.3.0.100", tmp_path,
                       second_range=("127.3.0.50", "127.3.0.200"))
    with pytest.raises(ConfigError) as info:
        parse_config(text, registry)
    message = str(info.value)
    assert "127.3.0.50-127.3.0.200" in message and "127.3.0.1-127.3.0.100" in message
    assert "overlaps" in message
    text = config_text("127.3.0.1", "127.3.3.255", tmp_path, agent="max_addresses = 1000")
    with pytest.raises(ConfigError, match=r"more than agent\.max_addresses = 1000"):
        parse_config(text, registry)
    with pytest.raises(ConfigError, match="not an IPv4 address"):
        parse_config(config_text("::1", "::2", tmp_path), registry)


def test_inventory_file_that_is_broken_starts_empty(tmp_path):
    path = tmp_path / "inventory.json"
    path.write_text("{not json")
    inventory = Inventory(path)
    inventory.load()
    assert len(inventory) == 0


async def test_a_miner_going_failing_and_back_is_logged_once_each_way(registry, tmp_path):
    from structlog.testing import capture_logs

    net = block()
    ips = [f"{net}1"]
    async with family(registry, "antminer", ips) as ants:
        agent = make_agent(registry, config_text(ips[0], ips[0], tmp_path, timeout="1s"))
        fleet = await sweep(agent)
        try:
            with capture_logs() as logs:
                ants.by_ip[ips[0]].fault = "silent"
                for _ in range(3):
                    await sweep(agent)
                ants.by_ip[ips[0]].fault = ""
                for _ in range(2):
                    await sweep(agent)
            events = [e["event"] for e in logs if e["event"] in ("miner failing",
                                                                   "miner answers again")]
            assert events == ["miner failing", "miner answers again"]
            warning = next(e for e in logs if e["event"] == "miner failing")
            assert warning["log_level"] == "warning" and warning["state"] == "timeout"
            assert fleet.inventory.at(ips[0]).state == "ok"
        finally:
            await fleet.close()
