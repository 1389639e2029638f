"""Control benchmark: one action on ``"*"`` over N simulated miners through the HTTP API,
while the agent keeps sweeping. Prints figures; asserts nothing.

    .venv/bin/python bench/control.py [--miners 10000] [--limit 256] [--interval 10] [--mixed]

The farm runs in its own process(es) (``webbo simulate``, antminer family, or every family
with ``--mixed``, each read by its own driver; web on port 80: run as root), started as
bench/poll.py starts it. This process runs
the agent (sweeping the farm every ``--interval`` seconds) and its web server; the benchmark
calls /api/mining/miners/set-led-status with ``{"macs": "*", "status": 1}`` over real HTTP, polls
/api/task-info until the task ends, then reads the LEDs back with get-led-status and turns them
off again. Reported: task wall time, actions per second, peak actions in flight (must not exceed
``--limit``), this process's CPU and RSS, and the sweeps that completed during the task (polling
must go on). Network: 127.0.0.0/8 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import aiohttp
from poll import config_for, driver_tables, start_farm, stop_farm  # the poll bench's farm

from webbo.agent.cli.simulate import raise_file_limit
from webbo.agent.core.agent import Agent
from webbo.agent.core.config import load_config
from webbo.agent.core.log import configure_logging
from webbo.agent.core.plugins import default_registry
from webbo.web.auth import create_api_key
from webbo.web.server import WebServer


def config_text(first: str, last: str, state: str, limit: int, interval: int,
                mixed: bool) -> str:
    tables, _ = driver_tables(mixed)
    tables = [(name, {**table, "settings_every": 0} if name == "bitmain_http" else table)
              for name, table in tables]
    text = config_for(first, last, state, tables, 1024).replace(
        'interval = "1h"', f'interval = "{interval}s"').replace(
        "internal_metrics = false\n",
        f"internal_metrics = false\ncontrol_concurrency = {limit}\n").replace(
        "[web]\nenabled = false\n", "[web]\n")
    return text


async def run_task(session: aiohttp.ClientSession, url: str, key: str, path: str,
                   body: dict) -> tuple[dict, float]:
    headers = {"X-Api-Key": key, "Content-Type": "application/json"}
    started = time.perf_counter()
    async with session.post(url + path, json=body, headers=headers) as answer:
        task_id = (await answer.json())["payload"]["task_id"]
    while True:
        async with session.post(url + "/api/task-info", json={"task_id": task_id},
                                headers=headers) as answer:
            info = (await answer.json())["payload"]
        if info["status"] != "pending":
            return info, time.perf_counter() - started
        await asyncio.sleep(0.1)


async def bench(devices: list[dict], limit: int, interval: int, mixed: bool) -> dict:
    registry = default_registry()
    ips = sorted(devices, key=lambda d: tuple(int(x) for x in d["ip"].split(".")))
    with tempfile.TemporaryDirectory() as state:
        path = Path(state) / "webbo.toml"
        path.write_text(config_text(ips[0]["ip"], ips[-1]["ip"], state, limit, interval,
                                    mixed))
        agent = Agent(registry, load_config(path, registry))
        web = WebServer(agent, listen="127.0.0.1:0")
        await web.start()
        await agent.start(signals=False, watch=False)
        key, _ = create_api_key(web.store, "bench")
        fleet = agent.services["miners"]
        sweep = next(r for r in agent.inputs if r.label == "miners")
        t0 = time.perf_counter()
        while sweep.stats.gathers < 2:  # noqa: ASYNC110 (identification, then one poll cycle)
            await asyncio.sleep(0.2)
        found = sum(1 for d in fleet.inventory.devices() if d.state == "ok")
        first_sweeps = time.perf_counter() - t0
        poll_cycle = fleet.last_sweep.duration_s
        gathers0 = sweep.stats.gathers
        control = agent.services["control"]
        control.peak_in_flight = 0
        cpu0 = time.process_time()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            info, wall = await run_task(session, web.url, key, "/api/mining/miners/set-led-status",
                                        {"macs": "*", "status": 1})
            cpu = time.process_time() - cpu0
            gathers = sweep.stats.gathers - gathers0
            polled_ok_during = fleet.last_sweep.polled_ok
            check, check_wall = await run_task(session, web.url, key,
                                               "/api/mining/miners/get-led-status",
                                               {"macs": "*"})
            await run_task(session, web.url, key, "/api/mining/miners/set-led-status",
                           {"macs": "*", "status": 0})
        results = info["result"] or {}
        blinking = sum(1 for r in (check["result"] or {}).values() if r.get("payload") == 1)
        figures = {
            "miners": len(devices),
            "found_ok": found,
            "first_two_sweeps_s": round(first_sweeps, 2),
            "poll_cycle_s": round(poll_cycle, 2),
            "control_concurrency": limit,
            "task_status": info["status"],
            "results": len(results),
            "failed": sum(1 for r in results.values() if not r["success"]),
            "task_wall_s": round(wall, 2),
            "actions_per_s": round(len(results) / wall, 1) if wall else None,
            "peak_in_flight": control.peak_in_flight,
            "cpu_s_during_task": round(cpu, 2),
            "cpu_ms_per_action": round(1000 * cpu / max(1, len(results)), 3),
            "sweeps_completed_during_task": gathers,
            "overruns": sweep.stats.overruns,
            "last_sweep_polled_ok": polled_ok_during,
            "readback_blinking": blinking,
            "readback_wall_s": round(check_wall, 2),
            "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        await web.stop()
        await agent.stop(flush_timeout=1)
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miners", type=int, default=10_000)
    parser.add_argument("--limit", type=int, default=256, help="[agent] control_concurrency")
    parser.add_argument("--interval", type=int, default=10, help="sweep interval (s)")
    parser.add_argument("--base", default="127.40.0.1")
    parser.add_argument("--mixed", action="store_true",
                        help="every installed miner family, each read by its own driver")
    args = parser.parse_args()
    configure_logging("console", "warning")
    raise_file_limit()
    print(f"# control bench: python {platform.python_version()}, {os.cpu_count()} cores, "
          f"{platform.platform()}; load average {os.getloadavg()[0]:.2f}, "
          f"{os.getloadavg()[1]:.2f}, {os.getloadavg()[2]:.2f}", flush=True)
    proc, devices = start_farm(args.miners, args.base, args.mixed)
    try:
        figures = asyncio.run(bench(devices, args.limit, args.interval, args.mixed))
    finally:
        stop_farm(proc)
    print(f"# after: load average {os.getloadavg()[0]:.2f}", flush=True)
    for key, value in figures.items():
        print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
