"""A farm for the power tests: simulated miners of every family on one loopback block, two
(or more) simulated Mercury meters on a pty each measuring a part of it, and the agent with
its web API controlling them. Nothing is mocked: the meters measure what the simulated miners
draw, and the miners' draw follows what the controller tells them, at ``speed`` times the
firmware's pace (so "90 s of simulated time" takes 90/speed real seconds).

127.14.0.0/16 belongs to the power tests (issue 14); each farm takes its own /24.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api_helpers import Stack, stack

from webbo.agent.cli.simulate import Farm, start_farm
from webbo.agent.core.contract import SimOptions
from webbo.agent.core.plugins import PluginRegistry

_blocks = itertools.count((os.getpid() * 11) % 200 + 1)

METERS = (("32297700-17", 1), ("43099131-20", 2), ("47457598-22", 3))
RATIO = 100
"""The simulated meters sit on 500/5 A current transformers."""


def block() -> str:
    return f"127.14.{next(_blocks) % 250 + 1}."


@dataclass
class PowerFarm:
    stack: Stack
    farm: Farm
    speed: float
    feeds: list[dict[str, Any]]
    """name, meter serial, first, last of each feed."""

    @property
    def agent(self) -> Any:
        return self.stack.agent

    def sim_seconds(self, real: float) -> float:
        return real * self.speed

    async def status(self, feed: str, *, miners: bool = False) -> dict[str, Any]:
        return await self.stack.ok("/api/power/get-feed", {"feed": feed, "miners": miners,
                                                            "history": False})

    def devices(self) -> dict[str, Any]:
        """Simulated device state by IP, every family."""
        found: dict[str, Any] = {}
        for name, sim in self.farm.simulations:
            if name == "mercury":
                continue
            for device in getattr(sim, "sims", None) or list(sim.by_ip.values()):
                found[device.ip] = device
        return found

    def meter(self, serial: str) -> Any:
        return self.farm.simulation("mercury").meter(serial)

    def power_steps(self, feed: str | None = None) -> list[dict[str, Any]]:
        """The controller's step entries of the audit log, oldest first."""
        entries = self.agent.tasks.audit.read(limit=10_000)
        return [e for e in reversed(entries) if e.get("method") == "power/step"
                and (feed is None or e.get("feed") == feed)]


def power_toml(speed: float, *, mode: str = "on", extra: str = "", dwell_s: float = 30.0
               ) -> str:
    """``[power]`` with the controller's pace scaled like the simulated firmware's."""
    return f"""[power]
mode = "{mode}"
interval = "{9.0 / speed:.3f}s"
stale_after = "{max(3.0, 25.0 / speed):.3f}s"
deadband_pct = 3.0
ramp_kw_per_min = {240.0 * speed:.1f}
max_miners_per_step = 25
min_dwell = "{dwell_s / speed:.3f}s"
settle_min = "{20.0 / speed:.3f}s"
settle_timeout = "{180.0 / speed:.3f}s"
{extra}
"""


def feed_toml(name: str, serial: str, group: str, *, budget: float, limit: float,
              extra: str = "") -> str:
    return (f'[[power.feeds]]\nname = "{name}"\nmeters = ["{serial}"]\ngroups = ["{group}"]\n'
            f"budget_kw = {budget}\nlimit_kw = {limit}\nbase_load_kw = 0\n{extra}\n")


@contextlib.asynccontextmanager
async def power_farm(tmp_path: Path, registry: PluginRegistry, *, miners: int = 200,
                     feeds: int = 2, speed: float = 6.0, mode: str = "on",
                     budget: float = 500.0, limit: float = 600.0, base_load_kw: float = 0.0,
                     power_extra: str = "", feed_extra: str = "",
                     families: list[str] | None = None,
                     sim_extra: dict[str, Any] | None = None,
                     tail: str = "") -> AsyncIterator[PowerFarm]:
    """Miners on ``feeds`` consecutive parts of one /24, a meter per part, the agent on top
    (``tail``: more of webbo.toml, at its end)."""
    net = block()
    ips = [f"{net}{i}" for i in range(1, miners + 1)]
    size = -(-miners // feeds)
    parts = [ips[i:i + size] for i in range(0, miners, size)]
    meters = [{"serial_number": serial, "device_model": "230", "address": address,
               "measures": [f"{part[0]}-{part[-1]}"], "base_load_w": base_load_kw * 1000,
               "current_ratio": RATIO}
              for (serial, address), part in zip(METERS, parts, strict=False)]
    options = SimOptions(seed=3, http_port=8080, extra={
        "meters": meters, "conf_delay": 0.05, "reboot_seconds": 2.0, "slow_delay": 8.0,
        "power": {"speed": speed}, "reply_delay": 0.005, **(sim_extra or {})})
    farm = await start_farm(registry, miners=miners, base=ips[0], options=options,
                            families=families)
    try:
        groups, feed_info = [], []
        for n, (part, meter) in enumerate(zip(parts, meters, strict=False), start=1):
            groups.append(f'[[network.ip_range_groups]]\nname = "Зал {n}"\n'
                          f'[[network.ip_range_groups.ip_ranges]]\nname = "Стойка {n}"\n'
                          f'first = "{part[0]}"\nlast = "{part[-1]}"\n')
            feed_info.append({"name": f"Ввод {n}", "serial": meter["serial_number"],
                              "group": f"Зал {n}", "first": part[0], "last": part[-1]})
        inputs = []
        sim_options = SimOptions(http_port=8080)
        for family in registry.simulators.values():
            for name, table in family.reads_with(sim_options) if family.reads_with else ():
                body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in table.items())
                inputs.append(f"[[inputs.{name}]]\n{body}\n")
        for meter, info in zip(farm.meters, meters, strict=False):
            inputs.append(f'[[inputs.mercury]]\nport = "{meter["port"]}"\n'
                          f'serial_number = "{info["serial_number"]}"\n'
                          f'device_model = "230"\naddress = {info["address"]}\n'
                          f'current_ratio = {RATIO}\ninterval = "0.5s"\n')
        feeds_text = "".join(feed_toml(f["name"], f["serial"], f["group"], budget=budget,
                                       limit=limit, extra=feed_extra) for f in feed_info)
        text = ('# test config: comments must survive API edits\n'
                '[agent]\ninterval = "1s"\ntimeout = "3s"\nconnect_timeout = "1s"\n'
                f'internal_metrics = false\nwatch_config = false\n'
                f'[web]\nstate_dir = "{tmp_path / "state"}"\n[network]\n' + "".join(groups)
                + "".join(inputs) + power_toml(speed, mode=mode, extra=power_extra)
                + feeds_text + tail)
        async with stack(tmp_path, registry, text) as running:
            yield PowerFarm(running, farm, speed, feed_info)
    finally:
        await farm.close()


async def settled(pf: PowerFarm, count: int, timeout: float = 120.0) -> None:
    """Every miner polled ok and every feed measured."""
    await pf.stack.wait_inventory(count, timeout)
    deadline = time.monotonic() + timeout
    while True:
        states = [await pf.status(f["name"]) for f in pf.feeds]
        if all(s["measured_kw"] is not None and s["miners"].get("total", 0) > 0
               for s in states):
            return
        assert time.monotonic() < deadline, states
        import asyncio

        await asyncio.sleep(0.2)
