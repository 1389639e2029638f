"""docs/plugins.md carries a complete third-party miner driver (``webbo-avalon``); this runs
exactly that code.

* In-process, fast: the page's module registered like an installed plugin, against simulated
  Avalons: priority over the generic cgminer driver, the reading, the LED, reboot, and the
  error paths (privileged RPC denied, an unknown outcome, reboot switched off).
* End to end, as a third party ships it: the page's files built into a wheel, installed with
  the webbo wheel into a fresh venv; ``webbo plugins`` lists it; ``webbo simulate`` runs
  Avalons; ``webbo run`` from that venv identifies and polls them, and the HTTP API turns the
  LED on (seen on the simulator's own RPC) and reboots them (their uptime starts again).
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType

import msgspec
import pytest
from doc_files import files_in, write_files
from minerfarm import block, config_text, control, family, make_agent, sweep, wait_for
from project import ROOT
from servers import free_port
from wheels import build_webbo_wheel, run, uv

from webbo.agent.core.errors import DeviceError, OutcomeUnknownError
from webbo.agent.fleet.model import normalise_mac
from webbo.agent.fleet.net import Net
from webbo.plugins.common.rpc4028 import client as rpc

pytestmark = pytest.mark.timeout(600)

PAGE = ROOT / "docs" / "plugins.md"
MODULE = "webbo_avalon/__init__.py"


def mm_led(reply: dict) -> str:
    stats = reply["STATS"][0]
    return re.search(r"Led\[(\d)\]", stats["MM ID0"])[1]


def test_the_page_carries_the_whole_distribution():
    files = files_in(PAGE.read_text(encoding="utf-8"))
    assert set(files) == {"pyproject.toml", MODULE}
    project = msgspec.toml.decode(files["pyproject.toml"].encode())
    assert project["project"]["entry-points"]["webbo"] == {"avalon": "webbo_avalon"}
    # a third party imports the facade and the shared protocol code, nothing else of webbo
    tree = ast.parse(files[MODULE])
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for a in node.names}
    ours = {m for m in imported if m and m.split(".")[0] == "webbo"}
    assert ours and all(m == "webbo.agent.plugin" or m.startswith("webbo.plugins.common")
                        for m in ours), ours


# -- in-process ---------------------------------------------------------------------------------


@pytest.fixture
def avalon_module(tmp_path) -> ModuleType:
    folder = tmp_path / "webbo-avalon"
    write_files(PAGE.read_text(encoding="utf-8"), folder)
    sys.path.insert(0, str(folder))
    try:
        sys.modules.pop("webbo_avalon", None)
        yield importlib.import_module("webbo_avalon")
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("webbo_avalon", None)


@pytest.fixture
def with_avalon(registry, avalon_module):
    assert registry.register(avalon_module, "avalon", distribution="webbo-avalon",
                             version="0.1.0")
    return registry


async def test_driver_from_the_page_in_process(with_avalon, tmp_path):
    registry = with_avalon
    net = block()
    ips = [f"{net}1", f"{net}2", f"{net}3"]
    async with family(registry, "cgminer", ips[:2], cgminer_profiles=["avalon"],
                      restart_seconds=0.5) as avalons, \
            family(registry, "cgminer", ips[2:], cgminer_profiles=["generic"]):
        agent = make_agent(registry, config_text(
            ips[0], ips[-1], tmp_path, extra_inputs="[[inputs.avalon]]\n"))
        fleet = await sweep(agent)
        try:
            generic = fleet.inventory.at(ips[2])
            assert generic.driver == "cgminer"  # not an Avalon: left to the generic driver
            for sim in avalons.devices:
                device = fleet.inventory.at(sim["ip"])
                assert device.driver == "avalon" and device.mac == normalise_mac(sim["mac"])
                assert (device.make, device.model) == ("Avalon", "AvalonMiner 1246")
                assert device.serial == "020100008c3e4d47"
                reading = device.reading
                assert reading.hashrate_ths == pytest.approx(90, rel=0.05)
                assert reading.expected_hashrate_ths == 90.0
                assert len(reading.boards) == 3
                assert sum(b.hashrate_ths for b in reading.boards) == pytest.approx(
                    reading.hashrate_ths, rel=0.01)
                assert all(b.temp_chip_c > b.temp_board_c > 40 for b in reading.boards)
                assert reading.temp_chip_max_c == max(b.temp_chip_c for b in reading.boards)
                assert 15 < reading.temp_env_c < 35
                assert reading.power_w == pytest.approx(3420, rel=0.01)
                assert len(reading.fans_rpm) == 2 and reading.led == 0
                assert len(reading.pools) == 2 and reading.pools[0].active
                assert reading.errors == []
            mac = normalise_mac(avalons.devices[0]["mac"])
            device = avalons.sims[0]
            assert await control(agent, mac, "get_led") == 0
            assert await control(agent, mac, "set_led", status=1) is None
            assert device.avalon.led == 1 and await control(agent, mac, "get_led") == 1
            assert await control(agent, mac, "set_led", status=0) is None
            assert device.avalon.led == 0
            assert await control(agent, mac, "get_work_mode") == "unknown"
            with pytest.raises(DeviceError, match="set_work_mode: not supported by "
                                                  "AvalonMiner 1246"):
                await control(agent, mac, "set_work_mode", mode="sleep")
            # raw RPC: reads always, writes only where raw_writes allows (it is off here)
            raw = await control(agent, mac, "raw", command="estats", params={}, write=False)
            assert raw["STATS"][0]["ID"] == "AVA100"
            with pytest.raises(DeviceError, match=r"\[\[inputs.avalon\]\] raw_writes = false"):
                await control(agent, mac, "raw", command="ascset",
                              params={"parameter": "0,led,1-1"}, write=True)
            assert device.avalon.led == 0
            device.started -= 600
            assert await control(agent, mac, "reboot") is None
            assert device.restarts == 1
            await wait_for(lambda: not device.down, timeout=10)
            await sweep(agent)
            await sweep(agent)
            assert fleet.inventory.get(mac).reading.uptime_s < 30

            # the firmware refuses privileged RPC: a clear error, nothing unknown
            device.write_access = False
            with pytest.raises(DeviceError, match="denies privileged RPC") as denied:
                await control(agent, mac, "set_led", status=1)
            assert not isinstance(denied.value, OutcomeUnknownError)
            device.write_access = True
            # sent, then silence: the outcome is unknown and says so
            device.fault = "silent"
            with pytest.raises(OutcomeUnknownError, match="restart was sent"):
                await control(agent, mac, "reboot")
            device.fault = ""
            assert device.restarts == 1
        finally:
            await fleet.close()


async def test_reboot_can_be_switched_off(with_avalon, tmp_path):
    registry = with_avalon
    ip = f"{block()}1"
    async with family(registry, "cgminer", [ip], cgminer_profiles=["avalon"]) as sim:
        agent = make_agent(registry, config_text(
            ip, ip, tmp_path, extra_inputs="[[inputs.avalon]]\nreboot = false\n"))
        fleet = await sweep(agent)
        try:
            mac = normalise_mac(sim.devices[0]["mac"])
            with pytest.raises(DeviceError, match=r"reboot: not supported by AvalonMiner 1246 "
                                                  r"\(reboot = false in \[\[inputs.avalon\]\]\)"):
                await control(agent, mac, "reboot")
            assert sim.sims[0].restarts == 0
        finally:
            await fleet.close()
    with pytest.raises(Exception, match=r"inputs.avalon\[0\].port: must be a TCP port"):
        make_agent(registry, config_text(ip, ip, tmp_path,
                                         extra_inputs="[[inputs.avalon]]\nport = 0\n"))


# -- end to end, from a wheel -------------------------------------------------------------------


def post(base: str, path: str, body: object, key: str) -> dict:
    request = urllib.request.Request(
        base + path, json.dumps(body).encode(),
        {"Content-Type": "application/json", "X-Api-Key": key}, method="POST")
    with urllib.request.urlopen(request, timeout=60) as answer:
        reply = json.loads(answer.read())
    assert reply["success"] is True, (path, reply)
    return reply["payload"]


def task(base: str, path: str, body: object, key: str) -> dict:
    task_id = post(base, path, body, key)["task_id"]
    deadline = time.monotonic() + 120
    while True:
        info = post(base, "/api/task-info", {"task_id": task_id}, key)
        if info["status"] != "pending":
            return info
        assert time.monotonic() < deadline, f"{path}: task still pending"
        time.sleep(0.1)


def until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def rpc_call(ip: str, command: str, parameter: str | None = None) -> dict:
    """Ask a simulated device over its own RPC (from the test, not through the agent)."""
    import asyncio

    async def ask() -> dict:
        net = Net(2, 1.0, 3.0)
        try:
            return await rpc.call(net, ip, command, parameter)
        finally:
            await net.close()

    return asyncio.run(ask())


def uptime(ip: str) -> int | None:
    try:
        return rpc_call(ip, "summary")["SUMMARY"][0]["Elapsed"]
    except DeviceError:
        return None  # restarting


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    """The page's distribution built into a wheel and installed, with the webbo wheel, into a
    fresh venv."""
    work = tmp_path_factory.mktemp("avalon")
    project = work / "webbo-avalon"
    write_files(PAGE.read_text(encoding="utf-8"), project)
    dist = work / "dist"
    built = run(uv(), "build", "--wheel", "--out-dir", str(dist), str(project))
    assert built.returncode == 0, built.stderr[-3000:]
    plugin_wheel = next(dist.glob("webbo_avalon-0.1.0-*.whl"))
    webbo_wheel = build_webbo_wheel(work / "webbo-dist")
    venv = work / "venv"
    made = run(uv(), "venv", "--python", sys.executable, str(venv))
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    inst = run(uv(), "pip", "install", "--python", str(python), str(webbo_wheel),
               str(plugin_wheel))
    assert inst.returncode == 0, inst.stderr[-3000:]
    return {"venv": venv, "bin": venv / "bin", "work": work}


def test_plugins_lists_the_installed_driver(installed):
    result = run(str(installed["bin"] / "webbo"), "plugins", "--json",
                 cwd=str(installed["work"]))
    assert result.returncode == 0, result.stderr
    loaded = {p["name"]: p for p in json.loads(result.stdout)["loaded"]}
    avalon = loaded["avalon"]
    assert (avalon["distribution"], avalon["version"], avalon["module"]) == (
        "webbo-avalon", "0.1.0", "webbo_avalon")
    assert avalon["provides"] == {"inputs": ["avalon"]} and not avalon["builtin"]
    text = run(str(installed["bin"] / "webbo"), "plugins", cwd=str(installed["work"])).stdout
    assert re.search(r"^avalon\s+webbo-avalon 0\.1\.0\s+webbo_avalon\s+inputs: avalon$", text,
                     re.MULTILINE), text


@pytest.mark.slow
def test_installed_driver_identifies_polls_and_controls_through_the_api(installed, tmp_path):
    bin_dir = installed["bin"]
    webbo = str(bin_dir / "webbo")
    net = block()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "XDG_STATE_HOME": str(tmp_path / "xdg")}
    sim = subprocess.Popen(
        [webbo, "--log-level", "warning", "simulate", "--miners", "3", "--base", f"{net}1",
         "--families", "cgminer", "--seed", "5", "--extra",
         json.dumps({"cgminer_profiles": ["avalon"], "ssh_port": 0, "restart_seconds": 2})],
        stdout=subprocess.PIPE, text=True, env=env)
    agent = None
    try:
        devices = json.loads(sim.stdout.readline())["devices"]
        assert len(devices) == 3 and {d["model"] for d in devices} == {"AvalonMiner 1246"}
        port = free_port()
        config = tmp_path / "webbo.toml"
        config.write_text(f"""[agent]
interval = "1s"
timeout = "3s"
connect_timeout = "1s"
internal_metrics = false

[web]
listen = "127.0.0.1:{port}"
state_dir = "state"

[[network.ip_range_groups]]
name = "room A"
[[network.ip_range_groups.ip_ranges]]
name = "rack 1"
first = "{net}1"
last = "{net}3"

[[inputs.avalon]]
[[inputs.cgminer]]
""")
        checked = run(webbo, "config", "check", "-c", str(config), state_home=str(tmp_path))
        assert checked.returncode == 0, checked.stderr
        created = run(webbo, "apikey", "create", "-c", str(config), "--name", "ci",
                      state_home=str(tmp_path))
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip().splitlines()[-1]
        agent = subprocess.Popen([webbo, "run", "-c", str(config)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, env=env)
        base = f"http://127.0.0.1:{port}"

        def miners() -> list[dict]:
            try:
                return post(base, "/api/mining/miners/get", {}, key)["miners"]
            except (urllib.error.URLError, ConnectionError):
                return []

        polled = until(lambda: (m := miners()) and len(m) == 3
                       and all(x["state"] == "ok" and x["reading"] for x in m) and m,
                       90, "3 Avalons polled")
        by_mac = {normalise_mac(d["mac"]): d for d in devices}
        for miner in polled:
            assert miner["mac"] in by_mac and miner["ip"] == by_mac[miner["mac"]]["ip"]
            assert (miner["driver"], miner["make"], miner["model"]) == (
                "avalon", "Avalon", "AvalonMiner 1246")
            reading = miner["reading"]
            assert reading["hashrate_ths"] == pytest.approx(90, rel=0.05)
            assert len(reading["boards"]) == 3
            assert reading["temp_chip_max_c"] > reading["temp_board_max_c"] > 40
            assert reading["power_w"] > 3000 and reading["led"] == 0
        macs = sorted(by_mac)

        lit = task(base, "/api/mining/miners/set-led-status", {"macs": macs, "status": 1}, key)
        assert lit["status"] == "success", lit
        assert lit["result"] == {mac: {"success": True, "payload": None} for mac in macs}
        for device in devices:  # the simulated miners' own RPC: the LED is on
            assert mm_led(rpc_call(device["ip"], "estats")) == "1"
        got = task(base, "/api/mining/miners/get-led-status", {"macs": macs}, key)
        assert got["result"] == {mac: {"success": True, "payload": 1} for mac in macs}

        raw = task(base, "/api/mining/miners/command", {"macs": macs, "command": "estats"},
                   key)
        assert all(r["success"] and r["payload"]["STATS"][0]["ID"] == "AVA100"
                   for r in raw["result"].values()), raw

        first_ip = devices[0]["ip"]
        until(lambda: (uptime(first_ip) or 0) >= 4, 30, "some uptime before the reboot")
        before = {d["ip"]: uptime(d["ip"]) for d in devices}
        rebooted = task(base, "/api/mining/miners/reboot", {"macs": macs}, key)
        assert rebooted["result"] == {mac: {"success": True, "payload": None} for mac in macs}
        for device in devices:  # back, with the uptime from 0 and the LED off again
            ip = device["ip"]
            until(lambda ip=ip: (u := uptime(ip)) is not None and u < before[ip], 30,
                  f"{ip} to restart")
            assert mm_led(rpc_call(ip, "estats")) == "0"
        after = until(lambda: (m := miners()) and all(
            x["state"] == "ok" and x["reading"]["uptime_s"] < before[x["ip"]] for x in m) and m,
            60, "polls after the reboot")
        assert {m["driver"] for m in after} == {"avalon"}
    finally:
        for proc in (agent, sim):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (agent, sim):
            if proc is not None:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
