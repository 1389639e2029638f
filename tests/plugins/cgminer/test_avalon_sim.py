"""The simulated AvalonMiner answers what an Avalon driver needs, on real sockets, as Canaan's
cgminer does: ``estats``/``stats`` with the ``MM ID0`` string, ``ascset`` for the locate LED
(with the firmware's messages and codes), ``restart`` (the process restarts, uptime from 0)."""

from __future__ import annotations

import re

import pytest
from minerfarm import block, family, wait_for

from webbo.agent.core.errors import DeviceError
from webbo.agent.fleet.net import Net
from webbo.plugins.common.rpc4028 import client as rpc
from webbo.plugins.common.rpc4028.parse import first, section

pytestmark = pytest.mark.timeout(120)


def mm_fields(reply: dict) -> dict[str, str]:
    return dict(re.findall(r"(\w+)\[([^\]]*)\]", first(reply, "STATS")["MM ID0"]))


async def test_estats_and_stats_carry_the_mm_string(registry):
    ip = f"{block()}1"
    async with family(registry, "cgminer", [ip], cgminer_profiles=["avalon"]):
        net = Net(4, 1.0, 3.0)
        try:
            estats = await rpc.call(net, ip, "estats")
            stats = await rpc.call(net, ip, "stats")
            summary = await rpc.call(net, ip, "summary")
            devs = await rpc.call(net, ip, "devs")
        finally:
            await net.close()
    assert [s["ID"] for s in section(estats, "STATS")] == ["AVA100"]
    assert [s["ID"] for s in section(stats, "STATS")] == ["AVA100", "POOL0", "POOL1"]
    fields = mm_fields(estats)
    boards = [float(x) for x in fields["MGHS"].split()]
    assert len(boards) == 3
    total_mhs = first(summary, "SUMMARY")["MHS 30s"]
    assert sum(boards) == pytest.approx(total_mhs / 1000, rel=0.001)
    assert float(fields["GHSmm"]) == 90000.0 and fields["Led"] == "0"
    assert int(fields["WALLPOWER"]) == pytest.approx(3420, rel=0.01)
    tmax = [int(x) for x in fields["MTmax"].split()]
    assert int(fields["TMax"]) == max(tmax)
    chips = [int(x) for x in fields["PVT_T0"].split()]
    assert len(chips) == 120 and max(chips) == tmax[0]
    assert [d["Name"] for d in section(devs, "DEVS")] == ["AVA10"]


async def test_ascset_led_on_off_query_and_errors(registry):
    ip = f"{block()}1"
    async with family(registry, "cgminer", [ip], cgminer_profiles=["avalon"]) as sim:
        net = Net(4, 1.0, 3.0)

        async def ascset(parameter: str) -> dict:
            return await rpc.call(net, ip, "ascset", parameter, checked=False)

        try:
            on = await ascset("0,led,1-1")
            assert on["STATUS"][0] | {"When": 0} == {
                "STATUS": "S", "When": 0, "Code": 119, "Msg": "ASC 0 set OK",
                "Description": "cgminer 4.11.1"}
            assert mm_fields(await rpc.call(net, ip, "estats"))["Led"] == "1"
            query = (await ascset("0,led,1-255"))["STATUS"][0]
            assert (query["STATUS"], query["Code"], query["Msg"]) == (
                "I", 118, "ASC 0 set info: LED[1]")
            assert (await ascset("0,led,1-0"))["STATUS"][0]["Msg"] == "ASC 0 set OK"
            assert (await ascset("0,led,1-255"))["STATUS"][0]["Msg"] == "ASC 0 set info: LED[0]"
            for parameter, code, message in [
                    ("0,fan,50", 120, "ASC 0 set failed: Unknown option: fan"),
                    ("0,led,1-7", 120, "ASC 0 set failed: invalid LED status: 7, valid value 0|1"),
                    ("0,led,3-1", 120, "ASC 0 set failed: the current module was disabled 3"),
                    ("0,led", 120, "ASC 0 set failed: missing module_id setting"),
                    ("0,reboot,0", 120, "ASC 0 set failed: invalid module_id: 0, valid range 1-7"),
                    ("1,led,1-1", 107, "Invalid ASC id 1 - range is 0 - 0"),
                    ("0", 116, "Missing option after ASC number")]:
                status = (await ascset(parameter))["STATUS"][0]
                assert (status["STATUS"], status["Code"], status["Msg"]) == ("E", code, message)
            assert (await ascset("0,reboot,1"))["STATUS"][0]["Msg"] == "ASC 0 set OK"
            assert sim.sims[0].avalon.module_reboots == 1
            with pytest.raises(rpc.RpcError, match="set failed"):
                await rpc.call(net, ip, "ascset", "0,nosuch,1")
            sim.sims[0].write_access = False  # api-allow without W: privileged is denied
            with pytest.raises(rpc.RpcError, match="Access denied to 'ascset'") as denied:
                await rpc.call(net, ip, "ascset", "0,led,1-1")
            assert denied.value.code == 45
        finally:
            await net.close()


async def test_restart_answers_then_the_process_restarts(registry):
    ip = f"{block()}1"
    async with family(registry, "cgminer", [ip], cgminer_profiles=["avalon"],
                      restart_seconds=1.0) as sim:
        device = sim.sims[0]
        device.started -= 500  # running for a while
        net = Net(4, 1.0, 3.0)
        try:
            await rpc.call(net, ip, "ascset", "0,led,1-1")
            raw = await rpc.exchange(net, ip, b'{"command":"restart"}')
            assert raw == b'{"STATUS":"RESTART","id":1}\x00'
            assert rpc.status_of(rpc.decode(raw))[0] == "RESTART"
            with pytest.raises(DeviceError):
                await rpc.call(net, ip, "summary")  # the process is gone for a moment
            await wait_for(lambda: not device.down, timeout=10)
            elapsed = first(await rpc.call(net, ip, "summary"), "SUMMARY")["Elapsed"]
            assert elapsed < 5 and device.restarts == 1 and device.reboots == 0
            assert mm_fields(await rpc.call(net, ip, "estats"))["Led"] == "0"
        finally:
            await net.close()
