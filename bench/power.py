"""Power-control benchmark (issue 14). Prints figures; asserts nothing.

    .venv/bin/python bench/power.py [--miners 10000] [--feeds 20] [--farm 100] [--speed 5]

1. **Decision time per cycle**: the controller's whole decision (every feed: units from the
   inventory, settling, the budget's sources, the step, and the projected plan to the budget)
   for ``--miners`` miners on ``--feeds`` feeds, from an inventory of made-up miners with
   readings (Whatsminers that report power and Antminers that do not) and meter readings fed
   to the controller as the agent would. Measured at full budget (nothing to do) and with every
   budget at 60 % (every feed plans a shed). Goal: under 50 ms.

2. **Time to reach a budget step of −40 %**, closed on a real simulated meter: ``webbo
   simulate`` (its own process) runs ``--farm`` miners and a Mercury meter on a pty that
   measures them; this process runs the agent (miners, meter, power control). The budget drops
   to 60 % of the measured draw; reported is the simulated time (real × ``--speed``) until the
   meter's reading stays within ±2 % of the budget, for a farm whose firmware has power targets
   (Whatsminer API v2 ≥ 2.0 / v3) and for one with sleep only (Antminer S19). Goals: under 60 s
   and under 120 s.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from webbo.agent.cli.simulate import spawn, stop
from webbo.agent.core.agent import Agent
from webbo.agent.core.config import load_config, parse_config
from webbo.agent.core.log import configure_logging
from webbo.agent.core.metric import Metric
from webbo.agent.core.plugins import default_registry
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.model import Reading, WorkMode
from webbo.agent.power.controller import PowerController

# -- 1. decision time ----------------------------------------------------------------------------


def decision_config(miners: int, feeds: int, state: str) -> str:
    per = miners // feeds
    lines = ['[agent]\ninterval = "10s"\n', f'[web]\nstate_dir = "{state}"\n', "[network]\n"]
    for f in range(feeds):
        lines.append(f'[[network.ip_range_groups]]\nname = "room {f}"\n'
                     f'[[network.ip_range_groups.ip_ranges]]\nname = "rack {f}"\n'
                     f'first = "127.{100 + f}.0.1"\nlast = "127.{100 + f}.{per // 250 + 1}.250"\n')
    lines.append("[[inputs.bitmain_http]]\n[[inputs.whatsminer]]\n")
    for f in range(feeds):
        lines.append(f'[[inputs.mercury]]\nport = "/dev/ttyUSB{f}"\n'
                     f'serial_number = "{10000000 + f}-20"\ndevice_model = "230"\n')
    lines.append('[power]\nmode = "on"\n')
    for f in range(feeds):
        lines.append(f'[[power.feeds]]\nname = "feed {f}"\nmeters = ["{10000000 + f}-20"]\n'
                     f'groups = ["room {f}"]\nbudget_kw = 2000\nlimit_kw = 2000\n')
    return "".join(lines)


def made_up_miners(miners: int, feeds: int, network) -> list[Device]:
    rng = random.Random(5)
    per = miners // feeds
    now = time.time_ns()
    devices = []
    for f in range(feeds):
        group = network.ip_range_groups[f]
        place = group.ip_ranges[0]
        for i in range(per):
            ip = f"127.{100 + f}.{i // 250}.{i % 250 + 1}"  # never contacted
            whatsminer = i % 2 == 0
            ths = rng.uniform(90, 210)
            watts = ths * rng.uniform(18, 38)
            reading = Reading(time_ns=now, hashrate_ths=ths * rng.uniform(0.97, 1.02),
                              expected_hashrate_ths=ths,
                              power_w=watts if whatsminer else None,
                              power_limit_w=watts * 1.08 if whatsminer else None,
                              work_mode=WorkMode.NORMAL, is_mining=True)
            mac = f"02:{f:02x}:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}:01"
            devices.append(Device(
                mac=mac, ip=ip, driver="whatsminer" if whatsminer else "bitmain_http",
                make="Whatsminer" if whatsminer else "Antminer",
                model="M56S_VH30" if whatsminer else "Antminer S19j Pro",
                extra={"api": "v3", "api_ver": "3.0.1"} if whatsminer else {},
                group=group.name, group_id=group.uuid, range=place.name, range_id=place.uuid,
                state="ok", reading=reading))
    return devices


def bench_decision(miners: int, feeds: int, rounds: int) -> dict[str, float]:
    registry = default_registry()
    with tempfile.TemporaryDirectory() as state:
        config = parse_config(decision_config(miners, feeds, state), registry)
        agent = Agent(registry, config)
        fleet = agent.services["miners"]
        fleet.configure(config)
        for device in made_up_miners(miners, feeds, config.network):
            fleet.inventory.by_mac[device.mac] = device
            fleet.inventory.by_ip[device.ip] = device
        controller: PowerController = agent.services["power"]
        controller.inputs(config)

        def meters(share: float) -> None:
            now = time.time_ns()
            per_feed: dict[str, float] = {}
            for device in fleet.inventory.devices():
                watts = device.reading.power_w or 3068.0
                per_feed[device.group] = per_feed.get(device.group, 0.0) + watts
            for f in range(feeds):
                controller.on_metric(Metric("meter", {"serial": f"{10000000 + f}-20"}, {
                    "online": True, "power_active_w": per_feed[f"room {f}"] * share}, now))

        def timed(budget_share: float | None) -> list[float]:
            for feed in controller.section.feeds:
                controller.state.overrides.pop(feed.name, None)
            if budget_share is not None:
                for feed in controller.section.feeds:
                    total = sum(d.reading.power_w or 3068.0 for d in fleet.inventory.devices()
                                if d.group == feed.groups[0])
                    controller.set_budget(feed.name, round(total / 1000 * budget_share, 1),
                                          None, "bench")
            times, cpu = [], []
            for _ in range(rounds):
                meters(1.0)
                started, cpu_started = time.perf_counter(), time.process_time()
                results = controller.assess_all()
                times.append(time.perf_counter() - started)
                cpu.append(time.process_time() - cpu_started)
            planned = sum(len(r.plan.steps) for _, r in results if r.plan)
            started = time.perf_counter()
            projected = sum(len(r.projection) for _, r in results)
            ahead = time.perf_counter() - started
            print(f"    budget {'full' if budget_share is None else f'{budget_share:.0%}'}: "
                  f"median {statistics.median(times) * 1000:.1f} ms wall "
                  f"({statistics.median(cpu) * 1000:.1f} ms CPU), max "
                  f"{max(times) * 1000:.1f} ms over {rounds} cycles; step: {planned} miners, "
                  f"the plan ahead (made when the API or the page asks): {projected} cycles "
                  f"in {ahead * 1000:.0f} ms")
            return times

        controller.state.path = None  # nothing written
        print(f"1. decision time per cycle: {miners} miners on {feeds} feeds")
        full = timed(None)
        shed = timed(0.6)
        assert all(d.reading is not None for d in fleet.inventory.devices())
        return {"full_ms": statistics.median(full) * 1000,
                "shed_ms": statistics.median(shed) * 1000}


# -- 2. a budget step on a simulated farm --------------------------------------------------------


RAMP_KW_PER_MIN = 600.0
"""Of simulated time: a cycle (10 s) may change a feed by 100 kW."""
VERBOSE = False

FARMS = {
    "power targets (Whatsminer M56S/M60, API 2.0.5 and v3)": {
        "families": "whatsminer,mercury",
        "extra": {"whatsminer": {"profiles": ["m56s", "m60", "m56s-v3"]}}},
    "sleep only (Antminer S19)": {
        "families": "antminer,mercury", "extra": {"models": ["Antminer S19"]}},
}


def farm_config(state: str, farm: dict, meter_port: str, speed: float, base: str, last: str
                ) -> str:
    return (f'[agent]\ninterval = "{2 / speed * 5:.2f}s"\ntimeout = "3s"\n'
            f'connect_timeout = "1s"\ninternal_metrics = false\nwatch_config = false\n'
            f'[web]\nenabled = false\nstate_dir = "{state}"\n'
            f'[[network.ip_range_groups]]\nname = "hall"\n'
            f'[[network.ip_range_groups.ip_ranges]]\nname = "rack"\n'
            f'first = "{base}"\nlast = "{last}"\n'
            f'[[inputs.bitmain_http]]\nweb_port = 8080\nsettings_every = 1\n'
            f'[[inputs.whatsminer]]\n'
            f'[[inputs.mercury]]\nport = "{meter_port}"\nserial_number = "32297700-17"\n'
            f'device_model = "230"\naddress = 1\ncurrent_ratio = 100\ninterval = "0.5s"\n'
            f'[power]\nmode = "on"\ninterval = "{10 / speed:.3f}s"\n'
            f'stale_after = "{30 / speed:.3f}s"\ndeadband_pct = 2.0\n'
            f'ramp_kw_per_min = {RAMP_KW_PER_MIN * speed:.0f}\nmax_miners_per_step = 100\n'
            f'min_dwell = "{30 / speed:.3f}s"\nsettle_min = "{10 / speed:.3f}s"\n'
            f'settle_timeout = "{120 / speed:.3f}s"\n'
            f'[[power.feeds]]\nname = "feed"\nmeters = ["32297700-17"]\ngroups = ["hall"]\n'
            f'budget_kw = 2000\nlimit_kw = 2000\n')


async def step_on(name: str, farm: dict, miners: int, speed: float, base: str) -> None:
    extra = dict(farm["extra"])
    last = base.rsplit(".", 1)[0] + f".{int(base.rsplit('.', 1)[1]) + miners - 1}"
    extra.update({"power": {"speed": speed}, "conf_delay": 0.05, "meters": [{
        "serial_number": "32297700-17", "device_model": "230", "address": 1,
        "measures": [f"{base}-{last}"], "current_ratio": 100}]})
    proc, inventory = spawn("--miners", str(miners), "--base", base, "--http-port", "8080",
                            "--families", farm["families"], "--extra", json.dumps(extra))
    registry = default_registry()
    try:
        with tempfile.TemporaryDirectory() as state:
            path = Path(state) / "webbo.toml"
            path.write_text(farm_config(state, farm, inventory["meters"][0]["port"], speed,
                                        base, last))
            agent = Agent(registry, load_config(path, registry))
            await agent.start(watch=False, signals=False)
            try:
                controller: PowerController = agent.services["power"]
                fleet = agent.services["miners"]
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    status = controller.feed_status("feed")
                    ok = sum(1 for d in fleet.inventory.devices() if d.state == "ok")
                    if ok >= miners and status["measured_kw"] and status["state"] == "ok":
                        break
                    await asyncio.sleep(0.2)
                await asyncio.sleep(3)
                full = controller.feed_status("feed")["measured_kw"]
                budget = round(full * 0.6, 1)
                controller.set_budget("feed", budget, None, "bench")
                started = time.monotonic()
                reached = None
                stayed = 0
                while (time.monotonic() - started) * speed < 400:
                    measured = controller.feed_status("feed")["measured_kw"]
                    inside = measured is not None and abs(measured - budget) <= 0.02 * budget
                    if inside and reached is None:
                        reached = (time.monotonic() - started) * speed
                    if inside:
                        stayed += 1
                        if stayed >= 10:
                            break
                    else:
                        reached, stayed = None, 0
                    await asyncio.sleep(0.1)
                final = controller.feed_status("feed")["measured_kw"]
                history = [h[1] for h in controller.feed_status("feed", history=True)[
                    "history"] if h[0] >= time.time() - (time.monotonic() - started) - 1]
                moves = [abs(b - a) for a, b in itertools.pairwise(history)
                         if a is not None and b is not None]
                if VERBOSE:
                    print("      measured per cycle:", [round(h or 0, 1) for h in history])
                print(f"    {name}: {miners} miners, {full:.1f} kW → budget {budget:.1f} kW: "
                      + (f"within ±2 % after {reached:.0f} s of simulated time"
                         if reached is not None else "not within ±2 % in 400 s")
                      + f" (now {final:.1f} kW, {controller.steps_sent} steps; the largest "
                      f"change the meter saw between two cycles: {max(moves, default=0):.1f} kW, "
                      f"the ramp allows {RAMP_KW_PER_MIN * 10 / 60:.1f} kW a cycle)")
            finally:
                await agent.stop(flush_timeout=1)
    finally:
        stop(proc, 30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--miners", type=int, default=10_000)
    parser.add_argument("--feeds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--farm", type=int, default=100)
    parser.add_argument("--speed", type=float, default=5.0)
    parser.add_argument("--skip-farm", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="print each cycle's reading")
    args = parser.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    configure_logging("console", "warning")
    print(f"Python {platform.python_version()}, {platform.system()} {platform.release()}, "
          f"{os.cpu_count()} CPUs")
    bench_decision(args.miners, args.feeds, args.rounds)
    if not args.skip_farm:
        print(f"2. a budget step of −40 % (speed ×{args.speed:g}; simulated time)")
        for n, (name, farm) in enumerate(FARMS.items()):
            asyncio.run(step_on(name, farm, args.farm, args.speed, f"127.14.{240 + n}.1"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
