"""``webbo simulate``, ``webbo scan`` and the farm orchestrator: every family from the
registry, split by weight, sharded across processes when one cannot hold them all."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from minerfarm import block

from webbo.agent.cli.simulate import addresses_from, plan_miners, start_farm
from webbo.agent.core.contract import SimOptions, SimulatorType
from webbo.agent.fleet.net import Net
from webbo.plugins.common.rpc4028 import client as rpc

pytestmark = pytest.mark.timeout(240)


async def _nothing(*_):
    return None


def test_plan_splits_by_weight_on_consecutive_addresses():
    families = [SimulatorType("a", "miner", _nothing, weight=1.0),
                SimulatorType("b", "miner", _nothing, weight=0.05),
                SimulatorType("c", "miner", _nothing, weight=1.0)]
    plan = plan_miners(families, 41, "127.3.0.250")
    assert [(name, len(ips)) for name, ips in plan] == [("a", 20), ("b", 1), ("c", 20)]
    flat = [ip for _, ips in plan for ip in ips]
    assert flat[0] == "127.3.0.250" and flat[6] == "127.3.1.0" and len(set(flat)) == 41
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        addresses_from("10.0.0.1", 2)
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        addresses_from("127.255.255.250", 10)


async def test_sharded_farm_answers_from_child_processes(registry):
    net = block()
    farm = await start_farm(registry, miners=7, base=f"{net}1",
                            options=SimOptions(seed=4, http_port=8080), per_process=3)
    try:
        assert len(farm.shards) == 3 and len(farm.devices) == 7
        client = Net(16, 1.0, 5.0)
        for device in farm.devices:
            reply = await rpc.call(client, device["ip"], "version")
            assert reply["VERSION"]
        await client.close()
    finally:
        await farm.close()
    assert all(p.returncode is not None for p in farm.shards)


def test_simulate_cli_prints_inventory_once_ready_and_stops_on_sigterm():
    net = block()
    proc = subprocess.Popen(
        [sys.executable, "-m", "webbo.agent.cli", "--log-level", "warning", "simulate",
         "--miners", "12", "--base", f"{net}1", "--seed", "3", "--faults", "refuse=0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        inventory = json.loads(line)
        devices = inventory["devices"]
        assert inventory["meters"] == [] and len(devices) == 12
        assert {"ip", "mac", "make", "model"} <= set(devices[0])
        assert [d["ip"] for d in devices] == [f"{net}{i}" for i in range(1, 13)]
        families = {d["family"] for d in devices}
        from webbo.agent.core.plugins import default_registry

        installed = {n for n, s in default_registry().simulators.items() if s.kind == "miner"}
        assert "antminer" in families and families <= installed
        # every device listens now (a 'refuse' device on purpose does not)
        import socket

        for device in devices:
            if device["family"] not in ("antminer", "cgminer"):
                continue
            with socket.socket() as sock:
                sock.settimeout(2)
                result = sock.connect_ex((device["ip"], 4028))
            assert (result == 0) == (device.get("fault") != "refuse"), device
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_simulate_refuses_non_loopback_and_bad_options():
    result = subprocess.run([sys.executable, "-m", "webbo.agent.cli", "simulate", "--miners",
                             "2", "--base", "10.0.0.1"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "127.0.0.0/8" in result.stderr
    result = subprocess.run([sys.executable, "-m", "webbo.agent.cli", "simulate", "--miners",
                             "2", "--families", "nosuch"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2 and "unknown simulator family nosuch" in result.stderr


def test_scan_cli_json(tmp_path):
    net = block()
    sim = subprocess.Popen(
        [sys.executable, "-m", "webbo.agent.cli", "--log-level", "warning", "simulate",
         "--miners", "6", "--base", f"{net}10", "--seed", "8", "--families",
         "antminer,cgminer", "--http-port", "8080"], stdout=subprocess.PIPE, text=True)
    try:
        devices = json.loads(sim.stdout.readline())["devices"]
        config = tmp_path / "scan.toml"
        config.write_text('[[inputs.bitmain_http]]\nweb_port = 8080\n[[inputs.cgminer]]\n')
        env = {**os.environ, "WEBBO_LOG_LEVEL": "warning"}
        result = subprocess.run(
            [sys.executable, "-m", "webbo.agent.cli", "scan", f"{net}0/24", "--json", "-c",
             str(config)], capture_output=True, text=True, timeout=120, env=env)
        assert result.returncode == 0, result.stderr
        rows = json.loads(result.stdout)
        assert [r["ip"] for r in rows] == [d["ip"] for d in devices]
        for row, device in zip(rows, devices, strict=True):
            assert row["mac"] == device["mac"].lower() and row["model"] == device["model"]
            assert row["hashrate_ths"] > 1 and row["firmware"]
            assert set(row) >= {"ip", "mac", "make", "model", "firmware", "hashrate_ths"}
        assert "6 devices" in result.stderr
        bad = subprocess.run([sys.executable, "-m", "webbo.agent.cli", "scan", "nonsense"],
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and "not an IPv4 range" in bad.stderr
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(30)


async def test_meters_zero_opens_no_pty(registry):
    net = block()
    before = set(os.listdir("/dev/pts"))
    farm = await start_farm(registry, miners=2, base=f"{net}1", meters=0,
                            families=["antminer"])
    try:
        assert farm.meters == [] and set(os.listdir("/dev/pts")) <= before | set()
    finally:
        await farm.close()
    await asyncio.sleep(0)


def test_demo_config_covers_the_farm_in_two_groups(registry, tmp_path):
    from webbo.agent.cli.demo import demo_config
    from webbo.agent.core.config import parse_config

    devices = [{"ip": f"127.77.0.{i}"} for i in range(1, 61)]
    meters = [{"port": "/dev/pts/9", "serial_number": s, "device_model": "230", "address": i}
              for i, s in enumerate(("32297700-17", "43099131-20", "47457598-22"), 1)]
    farm = {"devices": devices, "meter_config": meters if "mercury" in registry.inputs else []}
    config = parse_config(demo_config(tmp_path, farm, registry, "127.0.0.1:8000"), registry)
    groups = config.network.ip_range_groups
    assert [g.name for g in groups] == ["Зал 1", "Зал 2"]
    assert sum(r.size for g in groups for r in g.ip_ranges) == 60
    miner_inputs = {i.name for i in config.inputs if registry.inputs[i.name].kind == "miner"}
    assert {"bitmain_http", "cgminer"} <= miner_inputs
    assert config.outputs == [] and config.state_dir == tmp_path


def _scan(net: str, *extra: str, env: dict[str, str], prefix: tuple[str, ...] = ()) -> list:
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "webbo.agent.cli", "scan", f"{net}0/24", "--json",
         *extra], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_simulate_and_scan_fit_together_as_root_and_as_a_normal_user(tmp_path):
    """`webbo simulate` serves the ports the drivers use by default, so `webbo scan` with no
    config finds every miner with its real MAC; a normal user (who may not bind port 80) gets
    the farm on 8080 and a config, written by --write-config, with which scan finds the same."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root to run the normal-user half (CI runs as root)")
    env = {**os.environ, "WEBBO_LOG_LEVEL": "warning"}
    families = ("--families", "antminer,whatsminer,cgminer")
    # as root: port 80, defaults everywhere
    net = block()
    sim = subprocess.Popen([sys.executable, "-m", "webbo.agent.cli", "--log-level", "warning",
                            "simulate", "--miners", "9", "--base", f"{net}10", "--seed", "5",
                            *families], stdout=subprocess.PIPE, text=True, env=env)
    try:
        farm = json.loads(sim.stdout.readline())
        assert farm["http_port"] == 80
        rows = _scan(net, env=env)
        assert {r["ip"]: r["mac"] for r in rows} == {
            d["ip"]: d["mac"].lower() for d in farm["devices"]}
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(30)
    # as a normal user
    home = Path(tempfile.mkdtemp(prefix="webbo-user-"))  # where "nobody" may go
    home.chmod(0o777)
    as_nobody = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
    user_env = {**env, "HOME": str(home), "XDG_STATE_HOME": str(home)}
    config = home / "farm.toml"
    net = block()
    sim = subprocess.Popen([*as_nobody, sys.executable, "-m", "webbo.agent.cli", "--log-level",
                            "warning", "simulate", "--miners", "9", "--base", f"{net}10",
                            "--seed", "5", *families, "--write-config", str(config)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=user_env)
    try:
        farm = json.loads(sim.stdout.readline())
        assert farm["http_port"] == 8080 and config.exists()
        rows = _scan(net, "-c", str(config), env=user_env, prefix=as_nobody)
        assert {r["ip"]: r["mac"] for r in rows} == {
            d["ip"]: d["mac"].lower() for d in farm["devices"]}
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(30)
