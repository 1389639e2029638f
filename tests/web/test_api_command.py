"""/api/mining/miners/command: every ability of the ``whatsminer`` library through the agent —
its README's examples redone on simulated Whatsminers (reads, ``power_off`` with
``respbefore``, a write after the token's 30 minutes) — and the same for API v3 and cgminer RPC,
with writes only where the config allows them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

from api_helpers import config_text, stack, start_sims
from minerfarm import block

from webbo.agent.core.contract import SimOptions
from webbo.plugins.inputs.whatsminer.sim import SimClock
from webbo.plugins.inputs.whatsminer.tokens import TokenCache


async def test_the_whatsminer_library_readme_through_the_api(tmp_path, registry):
    net = block()
    v2 = [f"{net}{i}" for i in (1, 2)]
    v3 = [f"{net}3"]
    clock = SimClock()
    old = await registry.simulators["whatsminer"].start(v2, SimOptions(seed=1, extra={
        "whatsminer": {"profiles": ["m30s"], "clock": clock}}))
    new = await registry.simulators["whatsminer"].start(v3, SimOptions(seed=1, extra={
        "whatsminer": {"profiles": ["m60"], "clock": clock}}))
    text = config_text(tmp_path, [("зал", "стойка", f"{net}1", f"{net}3")],
                       inputs='[[inputs.whatsminer]]\nraw_writes = true\nconfirm_timeout = "3s"\n')
    try:
        async with stack(tmp_path, registry, text) as s:
            await s.wait_inventory(3)
            macs = {d.ip: d.mac for d in s.fleet.inventory.devices()}
            both = [macs[ip] for ip in v2]
            # WhatsminerAPI.get_read_only_info(access_token=token, cmd="summary")
            info = await s.task("/api/mining/miners/command",
                                {"macs": both, "command": "summary"})
            assert info["status"] == "success"
            for mac in both:
                reply = info["result"][mac]
                assert reply["success"], reply
                assert reply["payload"]["SUMMARY"][0]["Temperature"] > 0
            # exec_command(cmd="power_off", additional_params={"respbefore": "true"})
            info = await s.task("/api/mining/miners/command", {
                "macs": [both[0]], "command": "power_off", "params": {"respbefore": "true"},
                "write": True})
            reply = info["result"][both[0]]
            assert reply["success"] and reply["payload"]["STATUS"] == "S", reply
            assert old.device(v2[0]).mining is False and old.device(v2[1]).mining is True
            # a write after the token's 30 minutes: the miner forgot it ("check token err"),
            # the agent renews it once and the write goes through
            tokens = s.agent.shared.get(TokenCache)
            start = tokens.clock()
            clock.advance(31 * 60)
            tokens.clock = lambda: start + 31 * 60
            info = await s.task("/api/mining/miners/command", {
                "macs": [both[0]], "command": "power_on", "write": True})
            assert info["result"][both[0]]["success"], info
            assert old.device(v2[0]).mining is True
            # API v3: get.* reads, set.* writes
            info = await s.task("/api/mining/miners/command", {
                "macs": [macs[v3[0]]], "command": "get.device.info",
                "params": {"param": "miner"}})
            assert info["result"][macs[v3[0]]]["payload"]["miner"]["type"]
            # a write not marked as one is refused, nothing sent
            info = await s.task("/api/mining/miners/command", {
                "macs": [macs[v3[0]]], "command": "set.miner.service",
                "params": {"param": "stop"}})
            answer = info["result"][macs[v3[0]]]
            assert not answer["success"] and "write" in answer["payload"]
            assert new.device(v3[0]).mining is True
            # audited like every action
            entries = await s.ok("/api/audit/get", {"limit": 50})
            assert sum(1 for e in entries if e.get("method") == "command") >= 8
    finally:
        await old.close()
        await new.close()


async def test_raw_writes_are_off_by_default_and_rpc_reads_work(tmp_path, registry):
    net = block()
    ants = [f"{net}1"]
    sim = await start_sims(registry, "antminer", ants)
    text = config_text(tmp_path, [("зал", "стойка", f"{net}1", f"{net}1")],
                       inputs='[[inputs.bitmain_http]]\nweb_port = 8080\n')
    try:
        async with stack(tmp_path, registry, text) as s:
            await s.wait_inventory(1)
            mac = s.fleet.inventory.devices()[0].mac
            info = await s.task("/api/mining/miners/command", {"macs": [mac],
                                                               "command": "stats"})
            assert info["result"][mac]["success"]
            assert info["result"][mac]["payload"]["STATS"]
            info = await s.task("/api/mining/miners/command", {
                "macs": [mac], "command": "restart", "write": True})
            answer = info["result"][mac]
            assert not answer["success"] and "raw_writes = false" in answer["payload"]
        # the CLI: the same command on the miners the agent knows (its saved inventory)
        result = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "webbo.agent.cli", "--log-level", "warning",
                             "command", "summary", "--all", "-c", str(s.config_path)],
            capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        answers = json.loads(result.stdout)
        assert answers[mac]["success"] and answers[mac]["payload"]["SUMMARY"]
    finally:
        await sim.close()
