"""The cgminer input against simulated generic cgminer devices: every §1.4 quirk repaired,
multi-command fallback, MAC sources, pools through privileged RPC, reboot through SSH."""

from __future__ import annotations

import asyncio

import pytest
from minerfarm import block, config_text, control, family, make_agent, sweep, wait_for

from webbo.agent.core.errors import DeviceError
from webbo.agent.fleet.model import normalise_mac
from webbo.agent.fleet.net import Net
from webbo.plugins.common.rpc4028 import client as rpc
from webbo.plugins.common.rpc4028.sim_server import QUIRKS

pytestmark = pytest.mark.timeout(180)

SSH = 'ssh_user = "root"\nssh_password = "admin"\nssh_port = 2222\nwrite_access = true'


@pytest.mark.parametrize("quirk", [q for q in QUIRKS if q != "no_multi"])
async def test_every_quirk_is_repaired(registry, quirk):
    net = block()
    ip = f"{net}1"
    async with family(registry, "antminer", [ip], quirks_by_ip={ip: [quirk]}) as sim:
        client = Net(8, 1.0, 3.0)
        parts, joined = await rpc.multicall(client, ip, ["summary", "stats", "pools"])
        assert joined
        from webbo.plugins.common.rpc4028.parse import reading_from

        reading = reading_from(parts)
        device = sim.sims[0]
        assert reading.hashrate_ths == pytest.approx(device.snapshot()["rate"] / 1000, rel=0.05)
        assert len(reading.boards) == 3 and len(reading.pools) == 2
        raw = await rpc.exchange(client, ip, b'{"command":"stats"}')
        assert raw.endswith(b"\x00")
        if quirk in ("missing_comma", "leading_comma", "trailing_comma", "newlines"):
            with pytest.raises(ValueError):
                import json

                json.loads(raw[:-1])
        await client.close()


async def test_multi_refused_falls_back_to_one_command_per_connection(registry):
    net = block()
    ip = f"{net}1"
    async with family(registry, "antminer", [ip], quirks_by_ip={ip: ["no_multi"]}) as sim:
        client = Net(8, 1.0, 3.0)
        parts, joined = await rpc.multicall(client, ip, ["summary", "pools"])
        assert not joined and set(parts) == {"summary", "pools"}
        assert sim.sims[0].requests == 3
        with pytest.raises(rpc.RpcError, match="Invalid command"):
            await rpc.call(client, ip, "nosuch")
        await client.close()


async def test_generic_devices_mac_sources_and_units(registry, tmp_path):
    net = block()
    ips = [f"{net}{i}" for i in range(1, 5)]
    async with family(registry, "cgminer", ips[:2], cgminer_profiles=["avalon"]) as avalon, \
            family(registry, "cgminer", ips[2:], cgminer_profiles=["generic"]) as bare:
        agent = make_agent(registry, config_text(ips[0], ips[-1], tmp_path))
        fleet = await sweep(agent)
        try:
            for sim in avalon.devices:
                device = fleet.inventory.at(sim["ip"])
                assert device.mac == normalise_mac(sim["mac"]) and device.mac_source == "device"
                assert (device.make, device.model) == ("Avalon", "AvalonMiner 1246")
                assert device.reading.hashrate_ths == pytest.approx(90, rel=0.05)  # from MH/s
                # an Avalon is one ASC in devs (the controller), with no temperature there:
                # its boards are in the estats MM ID0 string, which this generic driver skips
                assert len(device.reading.boards) == 1
            for sim in bare.devices:
                device = fleet.inventory.at(sim["ip"])
                a, b, c, d = map(int, sim["ip"].split("."))
                assert device.mac == f"02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}"
                assert device.mac_source == "derived" and sim["mac_source"] == "derived"
                assert device.reading.hashrate_ths == pytest.approx(14, rel=0.05)
        finally:
            await fleet.close()


async def test_pools_through_privileged_rpc(registry, tmp_path):
    net = block()
    async with family(registry, "cgminer", [f"{net}1"], cgminer_profiles=["avalon"]) as sim:
        agent = make_agent(registry, config_text(f"{net}1", f"{net}1", tmp_path, cgminer=SSH))
        fleet = await sweep(agent)
        try:
            mac = normalise_mac(sim.devices[0]["mac"])
            pools = await control(agent, mac, "get_pools")
            assert pools[0]["address"] == "stratum+tcp://btc.pool.example:3333"
            assert pools[2] == {"address": "", "worker": "", "passwd": ""}
            new = [{"address": "stratum+tcp://x.example:1", "worker": "w,1", "passwd": "p"},
                   {"address": "stratum+tcp://y.example:2", "worker": "w2", "passwd": "q"},
                   {"address": "", "worker": "", "passwd": ""}]
            assert await control(agent, mac, "set_pools", pools=new) is None
            got = await control(agent, mac, "get_pools")
            assert [(p["address"], p["worker"]) for p in got] == [
                (p["address"], p["worker"]) for p in new]
            device = sim.sims[0]
            assert device.pools[0]["pass"] == "p" and device.active == 0
            with pytest.raises(DeviceError, match="not supported by AvalonMiner 1246"):
                await control(agent, mac, "set_led", status=1)
            with pytest.raises(DeviceError, match="not supported"):
                await control(agent, mac, "set_work_mode", mode="sleep")
            # a mode nobody can read is the manual's "unknown", a success (not an error)
            assert await control(agent, mac, "get_work_mode") == "unknown"
            # a firmware that denies privileged commands gives a clear error
            device.write_access = False
            with pytest.raises(DeviceError, match="denies privileged RPC"):
                await control(agent, mac, "set_pools", pools=new)
        finally:
            await fleet.close()


async def test_pools_need_write_access_configured(registry, tmp_path):
    net = block()
    async with family(registry, "cgminer", [f"{net}1"], cgminer_profiles=["generic"]) as sim:
        agent = make_agent(registry, config_text(f"{net}1", f"{net}1", tmp_path))
        fleet = await sweep(agent)
        try:
            mac = normalise_mac(sim.devices[0]["mac"])
            with pytest.raises(DeviceError, match="write_access = true"):
                await control(agent, mac, "set_pools", pools=[{"address": "a", "worker": "",
                                                               "passwd": ""}])
            with pytest.raises(DeviceError, match="without SSH"):
                await control(agent, mac, "reboot")
        finally:
            await fleet.close()


async def test_reboot_through_ssh(registry, tmp_path):
    net = block()
    async with family(registry, "cgminer", [f"{net}1"], cgminer_profiles=["generic"]) as sim:
        agent = make_agent(registry, config_text(f"{net}1", f"{net}1", tmp_path, cgminer=SSH))
        fleet = await sweep(agent)
        try:
            mac = normalise_mac(sim.devices[0]["mac"])
            device = sim.sims[0]
            assert await control(agent, mac, "reboot") is None
            await wait_for(lambda: device.reboots == 1, timeout=10)
            await wait_for(lambda: not device.down, timeout=10)
            await sweep(agent)
            assert fleet.inventory.get(mac).reading.uptime_s < 30
            # wrong password: a clear error, nothing rebooted
            driver = fleet.driver_for(fleet.inventory.get(mac))
            import msgspec

            driver.config = msgspec.structs.replace(driver.config, ssh_password="wrong")
            with pytest.raises(DeviceError, match="SSH login refused"):
                await control(agent, mac, "reboot")
            await asyncio.sleep(0.2)
            assert device.reboots == 1
        finally:
            await fleet.close()
