"""Whatsminer benchmark: identification and poll cycles of N simulated Whatsminers by the
agent's sweep, then the same farm read by pyasic. Prints figures; asserts nothing.

    .venv/bin/python bench/whatsminer.py [--miners 1000] [--compare 100]

The farm runs in its own process (``webbo simulate --families whatsminer``: M30S/M50/M56S on
API v2, M60/M56S on API v3, web port 80 as on real firmware, so run as root). This process
runs the agent's miner fleet with only ``[[inputs.whatsminer]]``: sweep 1 identifies every
miner, sweeps 2..4 are poll cycles (wall time, this process's CPU seconds per miner). Then
``--compare`` miners are read by pyasic (``get_miner`` + ``get_data``), CPU per miner measured
the same way. Network: 127.0.0.0/8 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import subprocess
import tempfile
import time
import warnings

from webbo.agent.cli.simulate import raise_file_limit, spawn, stop
from webbo.agent.core.agent import Agent
from webbo.agent.core.config import parse_config
from webbo.agent.core.log import configure_logging
from webbo.agent.core.plugins import default_registry


def start_farm(miners: int, base: str) -> tuple[subprocess.Popen, list[dict]]:
    proc, farm = spawn("--miners", str(miners), "--base", base, "--http-port", "80",
                       "--seed", "1", "--families", "whatsminer")
    return proc, farm["devices"]


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def agent_cycles(first: str, last: str, miners: int) -> None:
    registry = default_registry()
    state = tempfile.mkdtemp(prefix="webbo-bench-")
    config = parse_config(
        f'[agent]\ninterval = "1h"\ntimeout = "20s"\nconnect_timeout = "5s"\n'
        f'concurrency = 1024\ninternal_metrics = false\n'
        f'[web]\nenabled = false\nstate_dir = "{state}"\n'
        f'[[network.ip_range_groups]]\nname = "bench"\n'
        f'[[network.ip_range_groups.ip_ranges]]\nfirst = "{first}"\nlast = "{last}"\n'
        f"[[inputs.whatsminer]]\n", registry)
    agent = Agent(registry, config)
    fleet = agent.services["miners"]
    fleet.configure(config)
    for n in range(4):
        c0, t0 = cpu(), time.perf_counter()
        stats = await fleet.sweep(None)
        wall, used = time.perf_counter() - t0, cpu() - c0
        what = "identify + poll" if n == 0 else "poll cycle"
        print(f"  sweep {n + 1} ({what}): {stats.polled_ok} ok, {stats.polled_failed} failed, "
              f"{wall:.2f} s wall, {used * 1000 / max(1, miners):.2f} ms CPU per miner, "
              f"{stats.polled_ok / wall:.0f} miners/s")
    await fleet.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS {rss:.0f} MB")


async def pyasic_reads(ips: list[str]) -> None:
    import pyasic

    warnings.simplefilter("ignore")
    sem = asyncio.Semaphore(200)

    async def one(ip: str) -> bool:
        async with sem:
            miner = await pyasic.get_miner(ip)
            return miner is not None and (await miner.get_data()).hashrate is not None

    c0, t0 = cpu(), time.perf_counter()
    results = await asyncio.gather(*(one(ip) for ip in ips))
    wall, used = time.perf_counter() - t0, cpu() - c0
    print(f"  pyasic get_miner + get_data: {sum(results)}/{len(ips)} read, {wall:.2f} s wall, "
          f"{used * 1000 / len(ips):.2f} ms CPU per miner")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--miners", type=int, default=1000)
    parser.add_argument("--compare", type=int, default=100)
    parser.add_argument("--base", default="127.4.128.1")
    args = parser.parse_args()
    configure_logging("console", "warning")
    raise_file_limit()
    print(f"{platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}")
    proc, devices = start_farm(args.miners, args.base)
    try:
        print(f"{len(devices)} simulated Whatsminers "
              f"({sum(d['api'] == 'v3' for d in devices)} on API v3)")
        asyncio.run(agent_cycles(devices[0]["ip"], devices[-1]["ip"], len(devices)))
        asyncio.run(pyasic_reads([d["ip"] for d in devices[:args.compare]]))
    finally:
        stop(proc)


if __name__ == "__main__":
    main()
