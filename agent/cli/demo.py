"""``webbo demo``: a simulated farm on loopback and the agent polling it, on the same code path
as ``webbo run`` (so the web UI and API come up exactly as in production).

It starts ``webbo simulate`` as a child process (about 60 miners from 127.77.0.1, a few of them
faulty, plus three Mercury 230 meters on one pty when a meter simulator is installed), writes a
config for them into a demo state folder (two groups of ranges, one instance of every miner
input, no output: the web UI shows the data), and runs the agent with it until Ctrl-C.

Power control closes its loop in the demo: the first two meters each measure the miners of one
group (``measures`` in the simulator's meters, through 100/5 A current transformers, plus a
base load), and ``[power]`` has a feed per group over them, in ``mode = "on"`` with budgets
that fit the farm's draw. "on" rather than "dry-run" because nothing in a demo is real and
only acting shows the loop: lower a feed's budget on the Энергия page and watch its meter follow
(least efficient miners first; the simulated firmware sleeps within seconds and wakes over a
minute or two), then go back to the schedule and watch the most efficient come back first.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomlkit

from webbo.agent.alerts.defaults import DEFAULT_RULES
from webbo.agent.cli.simulate import spawn, stop
from webbo.agent.core.config_edit import append_table
from webbo.agent.core.contract import SimOptions
from webbo.agent.core.plugins import PluginRegistry
from webbo.agent.fleet.net import int_to_ip, ip_to_int
from webbo.agent.power.models import ModelTable

__all__ = ["METER_SERIALS", "demo_config", "meter_tables", "power_feeds", "start_simulator"]

METER_SERIALS = ("32297700-17", "43099131-20", "47457598-22")
BASE = "127.77.0.1"
HTTP_PORT = 8080


CT_RATIO = 20
"""The demo's meters sit on 100/5 A current transformers (a group draws ~100 kW)."""
BASE_LOAD_KW = 5.0
"""Cooling and lights on each demo feed, besides its miners."""


def halves(base: str, miners: int) -> list[str]:
    """The two address spans of the demo's groups (as demo_config splits the farm)."""
    first = ip_to_int(base)
    half = miners // 2
    spans = [(first, first + max(0, half - 1))]
    if half < miners:
        spans.append((first + half, first + miners - 1))
    return [f"{int_to_ip(a)}-{int_to_ip(b)}" for a, b in spans if miners]


def start_simulator(miners: int, meters: int, seed: int = 7) -> tuple[subprocess.Popen[str],
                                                                       dict[str, Any]]:
    """``webbo simulate`` in a child process; returns it with its inventory line. The first
    meters measure the demo's groups (one each); the last stays unbound, for the operator to
    add."""
    spans = halves(BASE, miners)
    specs: list[dict[str, Any]] = []
    for n, serial in enumerate(METER_SERIALS):  # factory addresses
        spec: dict[str, Any] = {"serial_number": serial, "device_model": "230"}
        if n < len(spans) and n < len(METER_SERIALS) - 1:
            spec.update({"measures": [spans[n]], "base_load_w": BASE_LOAD_KW * 1000,
                         "current_ratio": CT_RATIO})
        specs.append(spec)
    extra = {"meters": specs, "conf_delay": 1.0, "reboot_seconds": 10.0}
    return spawn("--miners", str(miners), "--base", BASE, "--http-port", str(HTTP_PORT),
                 "--seed", str(seed), "--meters", str(meters),
                 "--faults", "silent=0.02,garbage=0.02,slow=0.02,refuse=0.02",
                 "--quirks", "no_multi=0.1,missing_comma=0.05,strings=0.05",
                 "--extra", json.dumps(extra))


def power_feeds(farm: dict[str, Any], groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A feed per demo group measured by the meter bound to it, with a budget that fits its
    miners' nominal draw (the model table's figures) and a limit above that."""
    table = ModelTable()
    feeds = []
    meters = [m for m in farm.get("meter_config") or [] if m.get("measures")]
    for group, meter in zip(groups, meters, strict=False):
        span = group["ip_ranges"][0]
        low, high = ip_to_int(span["first"]), ip_to_int(span["last"])
        watts = sum(table.watts(str(d.get("model", "")), None).normal
                    for d in farm["devices"] if low <= ip_to_int(d["ip"]) <= high)
        need = watts / 1000 + BASE_LOAD_KW
        feeds.append({"name": f"Ввод {len(feeds) + 1}", "meters": [meter["serial_number"]],
                      "groups": [group["name"]], "base_load_kw": BASE_LOAD_KW,
                      "budget_kw": float(math.ceil(need * 1.15 / 5) * 5),
                      "limit_kw": float(math.ceil(need * 1.4 / 5) * 5)})
    return feeds


def demo_config(state_dir: Path, farm: dict[str, Any], registry: PluginRegistry,
                listen: str, http_port: int = HTTP_PORT, power: bool = False) -> str:
    """A webbo.toml that reads the farm (the demo's, and ``webbo simulate --write-config``'s):
    two groups of ranges over it, the input tables each simulator family says read its
    devices (served on ``http_port``), the meters."""
    ips = sorted((d["ip"] for d in farm["devices"]), key=lambda ip: tuple(map(int,
                                                                             ip.split("."))))
    half = len(ips) // 2
    doc = tomlkit.document()
    doc.add(tomlkit.comment(" WebboMonitor demo: a simulated farm on loopback. Made by "
                            "`webbo demo`; edit it in the web UI or by hand."))
    agent = tomlkit.table()
    agent["interval"] = "10s"
    agent["timeout"] = "3s"
    agent["dead_address_backoff"] = "60s"
    doc["agent"] = agent
    web = tomlkit.table()
    web["listen"] = listen
    web["state_dir"] = str(state_dir)
    doc["web"] = web
    groups = []
    if ips:
        groups.append({"name": "Зал 1", "ip_ranges": [
            {"name": "Стойка 1", "first": ips[0], "last": ips[max(0, half - 1)]}]})
        if half < len(ips):
            groups.append({"name": "Зал 2", "ip_ranges": [
                {"name": "Стойка 2", "first": ips[half], "last": ips[-1]}]})
    doc["network"] = tomlkit.table()
    for group in groups:
        append_table(doc, "network.ip_range_groups", group)
    options = SimOptions(http_port=http_port)
    written: set[str] = set()
    for family in registry.simulators.values():
        for name, table in family.reads_with(options) if family.reads_with else ():
            if name in registry.inputs and name not in written:
                written.add(name)
                append_table(doc, f"inputs.{name}", table)
    for table in farm.get("meter_config") or []:
        append_table(doc, "inputs.mercury", {k: v for k, v in table.items() if k != "measures"})
    alerts = tomlkit.table()
    alerts["ui_url"] = f"http://{listen}"
    doc["alerts"] = alerts
    for rule in DEFAULT_RULES:  # the sample config's rules: the farm's faults show on the page
        append_table(doc, "alerts.rules", rule)
    feeds = power_feeds(farm, groups) if power else []
    if feeds:
        section = tomlkit.table()
        section.add(tomlkit.comment(" Each feed's meter measures its group's miners: lower a "
                                    "budget on the Энергия page and watch the loop."))
        section["mode"] = "on"
        doc["power"] = section
        for feed in feeds:
            append_table(doc, "power.feeds", feed)
    return tomlkit.dumps(doc)


def run_demo(args: Any, registry: PluginRegistry, run: Callable[[Any], int]) -> int:
    """Start the farm, write the config, run the agent with ``run`` (``webbo run``'s command
    function, handed over by the CLI)."""

    state_dir = Path(args.state_dir or tempfile.mkdtemp(prefix="webbo-demo-"))
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    meters = 3 if any(s.kind == "meter" for s in registry.simulators.values()) else 0
    proc, farm = start_simulator(args.miners, meters)
    try:
        # The last meter is left for the operator to add as the manual's §2.2 says (Настройки ▸
        # Настройки счетчиков: refresh the ports, serial number, model; its factory address).
        meters = farm.get("meters", [])
        farm["meter_config"] = meter_tables(meters[:-1])
        config_path = state_dir / "webbo.toml"
        config_path.write_text(demo_config(state_dir, farm, registry, args.listen,
                                           power=True), encoding="utf-8")
        host, _, port = args.listen.rpartition(":")
        print(f"\nWebboMonitor demo: {len(farm['devices'])} simulated miners on "
              f"{farm['devices'][0]['ip']}..{farm['devices'][-1]['ip']}"
              + (f", {len(farm['meters'])} meters on {farm['meters'][0].get('port')}"
                 if farm.get("meters") else "") + ".\n"
              f"  web UI:  http://{host}:{port}/   (API: docs/API.md)\n"
              f"  config:  {config_path}\n"
              f"  state:   {state_dir}\n"
              + (f"  one more meter is on the line, not added yet: serial "
                 f"{meters[-1].get('serial_number')}, model {meters[-1].get('device_model')} "
                 "(add it under Настройки ▸ Настройки счетчиков)\n" if meters else "")
              + "Stop with Ctrl-C.\n", file=sys.stderr, flush=True)
        args.config = str(config_path)
        return run(args)
    finally:
        stop(proc, 15)


def meter_tables(meters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``[[inputs.mercury]]`` tables for the simulated meters, as their simulator describes
    them (``config`` in each device entry), else from the documented device keys."""
    tables = []
    for meter in meters:
        table = meter.get("config")
        if not isinstance(table, dict):
            table = {k: meter[k] for k in ("port", "serial_number", "device_model", "address",
                                           "current_ratio", "measures") if k in meter}
        tables.append(table)
    return tables

