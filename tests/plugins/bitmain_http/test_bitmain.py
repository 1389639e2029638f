"""bitmain_http: control actions (the driver's methods) against simulated Antminers (read
back, what the device really did), digest credentials per range, the CGI fallback."""

from __future__ import annotations

import msgspec
import pytest
from minerfarm import block, config_text, control, family, make_agent, sweep

from webbo.agent.core.errors import DeviceError
from webbo.agent.fleet.model import normalise_mac

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def s19_and_s21(registry, tmp_path):
    net = block()
    ips = [f"{net}1", f"{net}2"]
    async with family(registry, "antminer", ips[:1], models=["Antminer S19"]) as old, \
            family(registry, "antminer", ips[1:], models=["Antminer S21"]) as new:
        agent = make_agent(registry, config_text(ips[0], ips[1], tmp_path,
                                                 bitmain="web_port = 8080\nsettings_every = 5"))
        fleet = await sweep(agent)
        try:
            yield agent, fleet, old.sims[0], new.sims[0]
        finally:
            await fleet.close()


async def test_work_mode_is_written_and_read_back(s19_and_s21):
    agent, fleet, _, s21 = s19_and_s21
    mac = normalise_mac(s21.mac)
    assert await control(agent, mac, "get_work_mode") == "normal"
    assert await control(agent, mac, "set_work_mode", mode="sleep") is None
    assert s21.work_mode == 1 and s21.conf_writes == 1
    assert await control(agent, mac, "get_work_mode") == "sleep"
    # the next poll carries the new mode and sees the device asleep (hashrate 0, fans slow)
    s21._snap_key = -1
    await sweep(agent)
    reading = fleet.inventory.get(mac).reading
    assert reading.work_mode == "sleep" and reading.is_mining is False
    assert reading.hashrate_ths == 0 and max(reading.fans_rpm) < 2000
    await control(agent, mac, "set_work_mode", mode="low_power")
    assert await control(agent, mac, "get_work_mode") == "low_power"
    await control(agent, mac, "set_work_mode", mode="normal")
    await sweep(agent)
    assert fleet.inventory.get(mac).reading.hashrate_ths > 150


async def test_unsupported_low_power_reports_what_the_device_did(s19_and_s21):
    agent, fleet, s19, _ = s19_and_s21
    driver = fleet.driver_for(fleet.inventory.get(normalise_mac(s19.mac)))
    driver.config = msgspec.structs.replace(driver.config, readback_timeout=1.0)
    with pytest.raises(DeviceError, match=r"answered OK but still reports normal.*low_power "
                                          r"is not supported by Antminer S19"):
        await control(agent, normalise_mac(s19.mac), "set_work_mode", mode="low_power")
    assert s19.work_mode == 0
    with pytest.raises(DeviceError, match="mode must be one of"):
        await control(agent, normalise_mac(s19.mac), "set_work_mode", mode="turbo")


async def test_led_on_off_and_status(s19_and_s21):
    agent, fleet, _, s21 = s19_and_s21
    mac = normalise_mac(s21.mac)
    assert await control(agent, mac, "get_led") == 0
    assert await control(agent, mac, "set_led", status=1) is None
    assert s21.blink is True and await control(agent, mac, "get_led") == 1
    await sweep(agent)
    assert fleet.inventory.get(mac).reading.led == 1  # refreshed right after the action
    await control(agent, mac, "set_led", status=0)
    assert s21.blink is False
    with pytest.raises(DeviceError, match="status must be 0 or 1"):
        await control(agent, mac, "set_led", status=7)


async def test_pools_round_trip_with_the_browser_shaped_object(s19_and_s21):
    agent, _, _, s21 = s19_and_s21
    mac = normalise_mac(s21.mac)
    pools = await control(agent, mac, "get_pools")
    assert len(pools) == 3 and pools[0]["address"].startswith("stratum+tcp://")
    assert pools[2] == {"address": "", "worker": "", "passwd": ""}
    new = [{"address": "stratum+tcp://a.example:3333", "worker": "acct.1x2", "passwd": "p1"},
           {"address": "stratum+tcp://b.example:443", "worker": "acct.1x2", "passwd": "p,2"},
           {"address": "", "worker": "", "passwd": ""}]
    s21.work_mode = 1  # the write keeps the current work mode
    assert await control(agent, mac, "set_pools", pools=new) is None
    assert await control(agent, mac, "get_pools") == new
    assert s21.work_mode == 1
    # the RPC shows them too (without passwords), and they survive
    reply = s21.one("pools", None)
    assert [p["URL"] for p in reply["POOLS"]] == [new[0]["address"], new[1]["address"]]


async def test_reboot_takes_the_device_away_and_back(s19_and_s21):
    agent, fleet, _, s21 = s19_and_s21
    mac = normalise_mac(s21.mac)
    s21.blink = True
    assert await control(agent, mac, "reboot") is None
    from minerfarm import wait_for

    await wait_for(lambda: s21.down, timeout=10)
    await sweep(agent)
    assert fleet.inventory.get(mac).state in ("unreachable", "error")
    await wait_for(lambda: not s21.down, timeout=10)
    await sweep(agent)
    device = fleet.inventory.get(mac)
    assert device.state == "ok" and device.reading.uptime_s < 30 and s21.blink is False


async def test_command_action_is_refused_by_name(s19_and_s21):
    agent, _, _, s21 = s19_and_s21
    with pytest.raises(DeviceError, match="command: not supported by Antminer S21"):
        await control(agent, normalise_mac(s21.mac), "command", name="x", args={})


async def test_credentials_per_range_and_a_wrong_password(registry, tmp_path):
    net = block()
    ips = [f"{net}1", f"{net}41"]
    async with family(registry, "antminer", ips[:1]), \
            family(registry, "antminer", ips[1:], web_password="s3cret", seed=9) as other:
        extra = ('[[inputs.bitmain_http]]\nranges = ["rack 2"]\nweb_port = 8080\n'
                 'password = "${RACK2_PASSWORD}"\n')
        text = config_text(f"{net}1", f"{net}40", tmp_path, extra_inputs=extra,
                           second_range=(f"{net}41", f"{net}80"))
        from webbo.agent.core.agent import Agent
        from webbo.agent.core.config import parse_config

        agent = Agent(registry, parse_config(text, registry, env={"RACK2_PASSWORD": "s3cret"}))
        fleet = await sweep(agent)
        try:
            device = fleet.inventory.at(ips[1])
            assert device is not None and device.driver == "bitmain_http"
            assert device.mac == normalise_mac(other.sims[0].mac)
            assert fleet.driver_for(device).config.password == "s3cret"
            assert await control(agent, device.mac, "get_led") == 0
        finally:
            await fleet.close()
        # wrong password: not claimed by bitmain_http; the generic driver takes it over RPC
        agent = Agent(registry, parse_config(text, registry, env={"RACK2_PASSWORD": "nope"}))
        (tmp_path / "inventory.json").unlink()
        fleet = await sweep(agent)
        try:
            device = fleet.inventory.at(ips[1])
            assert device.driver == "cgminer" and device.make == "Antminer"
            assert device.mac_source == "derived"
        finally:
            await fleet.close()


async def test_cgi_is_read_where_the_rpc_port_is_closed(registry, tmp_path):
    net = block()
    async with family(registry, "antminer", [f"{net}1"], rpc_port=4029) as sim:
        agent = make_agent(registry, config_text(
            f"{net}1", f"{net}1", tmp_path, bitmain="web_port = 8080", cgminer="port = 4029"))
        fleet = await sweep(agent)
        try:
            device = fleet.inventory.at(f"{net}1")
            assert device.driver == "bitmain_http"
            # bitmain_http reads RPC on 4028 (closed here) and falls back to the CGIs
            reading = device.reading
            assert device.state == "ok" and reading.hashrate_ths > 50
            assert len(reading.boards) == 3 and reading.boards[0].serial
            assert reading.fans_rpm and reading.pools and reading.uptime_s is not None
            assert device.mac in fleet.driver_for(device).no_rpc
            assert sim.sims[0].requests == 0  # the RPC (on 4029) was never needed
        finally:
            await fleet.close()


async def test_settings_are_read_every_nth_poll_spread_over_the_farm(registry, tmp_path):
    net = block()
    ips = [f"{net}{i}" for i in range(1, 9)]
    async with family(registry, "antminer", ips) as sim:
        agent = make_agent(registry, config_text(ips[0], ips[-1], tmp_path,
                                                 bitmain="web_port = 8080\nsettings_every = 4"))
        fleet = await sweep(agent)
        try:
            writes_before = sum(d.requests for d in sim.sims)
            for _ in range(4):
                await sweep(agent)
            # every device has its mode and LED after settings_every polls ...
            assert all(d.reading.work_mode == "normal" and d.reading.led == 0
                       for d in fleet.inventory.devices())
            # ... and the polls in between were RPC only: one '+' connection per device
            assert sum(d.requests for d in sim.sims) - writes_before == 4 * len(ips)
        finally:
            await fleet.close()


# -- readings from every firmware variant (issue 11, item 10) ----------------------------------


async def test_a_stopped_fan_reads_zero_and_a_hydro_model_has_no_fans(registry, tmp_path):
    net = block()
    ips = [f"{net}1", f"{net}2", f"{net}3"]
    async with family(registry, "antminer", ips[:1], models=["Antminer S21"],
                      quirks_by_ip={ips[0]: ["fan_stopped"]}), \
            family(registry, "antminer", ips[1:2], models=["Antminer S21 Hyd."]), \
            family(registry, "antminer", ips[2:], models=["Antminer S21"], rpc_port=4029,
                   quirks_by_ip={ips[2]: ["fan_stopped"]}):
        agent = make_agent(registry, config_text(ips[0], ips[2], tmp_path,
                                                 cgminer="port = 4029"))
        sink: list = []
        fleet = await sweep(agent, sink)
        try:
            stopped, hydro, by_cgi = (fleet.inventory.at(ip) for ip in ips)
            for device in (stopped, by_cgi):  # RPC stats, and the CGIs where RPC is closed
                assert device.reading.cooling == "air"
                assert len(device.reading.fans_rpm) == 4 and device.reading.fans_rpm[1] == 0
            assert by_cgi.mac in fleet.driver_for(by_cgi).no_rpc
            assert hydro.model == "Antminer S21 Hyd." and hydro.reading.fans_rpm == []
            assert hydro.reading.cooling == "hydro"
            rows = {m.tags["mac"]: m.fields for m in sink if m.name == "miner"}
            assert rows[stopped.mac]["fan_rpm_min"] == 0 and rows[stopped.mac]["fan_count"] == 4
            assert rows[hydro.mac]["fan_count"] == 0 and rows[hydro.mac]["cooling"] == "hydro"
        finally:
            await fleet.close()
