"""Poll benchmark: one full poll cycle of N simulated miners, then pyasic and pyasic-rs on the
same farm, side by side. Prints figures; asserts nothing.

    .venv/bin/python bench/poll.py [--sizes 1000,10000] [--compare 300] [--mixed]

The farm runs in its own process(es) (``webbo simulate``, web on port 80 as on real firmware:
run as root). For each N the agent's miner fleet runs two sweeps in this process: the first
identifies every miner (identification CPU per miner), the second is one poll cycle (wall time,
this process's CPU seconds, miners per second, peak RSS), including building the line protocol
the outputs would send. Then ``--compare`` miners of the same farm are read by pyasic
(``get_data``) and by asic-rs (``pyasic-rs``), CPU per miner measured the same way, each in a
child process of its own, so the agent's peak RSS is the agent's alone (importing and running
pyasic and asic-rs in the bench process used to add ~40-100 MB to it).
Network: 127.0.0.0/8 only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import platform
import resource
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

from webbo.agent.cli.simulate import raise_file_limit, spawn, stop
from webbo.agent.core.agent import Agent
from webbo.agent.core.config import parse_config
from webbo.agent.core.log import configure_logging
from webbo.agent.core.metric import to_lines
from webbo.agent.core.plugins import default_registry


def start_farm(miners: int, base: str, mixed: bool) -> tuple[subprocess.Popen, list[dict]]:
    families = [] if mixed else ["--families", "antminer"]
    proc, farm = spawn("--miners", str(miners), "--base", base, "--http-port", "80",
                       "--seed", "1", *families)
    return proc, farm["devices"]


stop_farm = stop


def config_for(first: str, last: str, state: str) -> str:
    return (f'[agent]\ninterval = "1h"\ntimeout = "20s"\nconnect_timeout = "5s"\n'
            f'concurrency = 1024\ninternal_metrics = false\n'
            f'[web]\nenabled = false\nstate_dir = "{state}"\n'
            f'[[network.ip_range_groups]]\nname = "bench"\n'
            f'[[network.ip_range_groups.ip_ranges]]\nname = "farm"\n'
            f'first = "{first}"\nlast = "{last}"\n'
            f'[[inputs.bitmain_http]]\nweb_port = 80\nsettings_every = 10\n'
            f'[[inputs.cgminer]]\n')


async def agent_cycle(devices: list[dict]) -> dict:
    registry = default_registry()
    with tempfile.TemporaryDirectory() as state:
        config = parse_config(config_for(devices[0]["ip"], devices[-1]["ip"], state), registry)
        agent = Agent(registry, config)
        sink: list = []
        gc.collect()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await agent.gather_all_once(sink.append)
        to_lines(sink)
        cpu1, wall1 = time.process_time(), time.perf_counter()
        fleet = agent.services["miners"]
        found = len(fleet.inventory)
        sink.clear()
        gc.collect()
        cpu2, wall2 = time.process_time(), time.perf_counter()
        await agent.gather_all_once(sink.append)
        body = to_lines(sink)
        cpu3, wall3 = time.process_time(), time.perf_counter()
        stats = fleet.last_sweep
        await fleet.close()
    return {"found": found, "ok": stats.polled_ok, "failed": stats.polled_failed,
            "ident_wall": wall1 - wall0, "ident_cpu": cpu1 - cpu0,
            "poll_wall": wall3 - wall2, "poll_cpu": cpu3 - cpu2, "metrics": len(sink),
            "bytes": len(body), "sockets_peak": fleet.net.peak_open}


async def pyasic_cycle(devices: list[dict]) -> dict:
    import pyasic

    limit = asyncio.Semaphore(200)

    async def identify(ip: str):
        async with limit:
            return await pyasic.get_miner(ip)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    miners = await asyncio.gather(*(identify(d["ip"]) for d in devices))
    cpu1, wall1 = time.process_time(), time.perf_counter()

    async def read(miner):
        async with limit:
            return await miner.get_data()

    miners = [m for m in miners if m is not None]
    data = await asyncio.gather(*(read(m) for m in miners), return_exceptions=True)
    cpu2, wall2 = time.process_time(), time.perf_counter()
    ok = sum(1 for d in data if not isinstance(d, BaseException) and d.hashrate is not None)
    return {"found": len(miners), "ok": ok, "ident_cpu": cpu1 - cpu0, "ident_wall": wall1 - wall0,
            "poll_cpu": cpu2 - cpu1, "poll_wall": wall2 - wall1}


async def asic_rs_cycle(devices: list[dict]) -> dict:
    from pyasic_rs import MinerFactory

    factory = MinerFactory()
    limit = asyncio.Semaphore(200)

    async def identify(ip: str):
        async with limit:
            return await factory.get_miner(ip)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    miners = await asyncio.gather(*(identify(d["ip"]) for d in devices), return_exceptions=True)
    cpu1, wall1 = time.process_time(), time.perf_counter()
    miners = [m for m in miners if m is not None and not isinstance(m, BaseException)]

    async def read(miner):
        async with limit:
            return await miner.get_data()

    data = await asyncio.gather(*(read(m) for m in miners), return_exceptions=True)
    cpu2, wall2 = time.process_time(), time.perf_counter()
    ok = sum(1 for d in data if not isinstance(d, BaseException) and d.hashrate is not None)
    return {"found": len(miners), "ok": ok, "ident_cpu": cpu1 - cpu0, "ident_wall": wall1 - wall0,
            "poll_cpu": cpu2 - cpu1, "poll_wall": wall2 - wall1}


RIVALS = {"pyasic": pyasic_cycle, "asic-rs": asic_rs_cycle}


def rival_cycle(name: str, devices: list[dict]) -> dict:
    """One comparison client's run (in a child process: its imports and buffers stay there)."""
    return asyncio.run(RIVALS[name](devices))


def ms(seconds: float, count: int) -> str:
    return f"{1000 * seconds / max(1, count):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--compare", type=int, default=300,
                        help="miners read by pyasic and asic-rs (0: skip)")
    parser.add_argument("--base", default="127.200.0.1")
    parser.add_argument("--mixed", action="store_true",
                        help="every installed miner family, not only Antminers")
    args = parser.parse_args()
    raise_file_limit()
    configure_logging("console", "warning")
    print(f"# poll bench — Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"{platform.platform()}")
    print(f"# farm: {'mixed' if args.mixed else 'Antminer'} simulator in its own process(es)")
    for size in (int(s) for s in args.sizes.split(",")):
        proc, devices = start_farm(size, args.base, args.mixed)
        try:
            time.sleep(1.0)
            ours = asyncio.run(agent_cycle(devices))
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"\nN={size}: webbo  found {ours['found']}, polled ok {ours['ok']}, "
                  f"failed {ours['failed']}; peak sockets {ours['sockets_peak']}")
            ident_ms = ms(ours["ident_cpu"], ours["found"])
            print(f"  identification: {ours['ident_wall']:.2f} s wall, "
                  f"{ours['ident_cpu']:.2f} s CPU = {ident_ms} ms/miner")
            print(f"  poll cycle:     {ours['poll_wall']:.2f} s wall, {ours['poll_cpu']:.2f} s "
                  f"CPU = {ms(ours['poll_cpu'], ours['ok'])} ms/miner, "
                  f"{ours['ok'] / ours['poll_wall']:.0f} miners/s, {ours['metrics']} metrics "
                  f"({ours['bytes'] / 1e6:.1f} MB line protocol); peak RSS {rss_mb:.0f} MB")
            if args.compare:
                sample = devices[: args.compare]
                rivals = {}
                for name in RIVALS:
                    try:
                        with ProcessPoolExecutor(
                                1, mp_context=multiprocessing.get_context("spawn")) as pool:
                            rivals[name] = pool.submit(rival_cycle, name, sample).result()
                    except Exception as exc:  # a bench reports, never stops
                        print(f"  {name}: failed: {exc!r}")
                ours_ms = 1000 * ours["poll_cpu"] / max(1, ours["ok"])
                ours_id = 1000 * ours["ident_cpu"] / max(1, ours["found"])
                print(f"  side by side ({len(sample)} miners for the others):")
                print(f"    {'client':<8} {'poll ms CPU/miner':>18} {'ident ms CPU/miner':>19}"
                      f" {'poll ok':>8} {'ratio to webbo (poll)':>22}")
                print(f"    {'webbo':<8} {ours_ms:>18.3f} {ours_id:>19.3f} {ours['ok']:>8} "
                      f"{1.0:>22.1f}")
                for name, r in rivals.items():
                    their = 1000 * r["poll_cpu"] / max(1, r["ok"])
                    ident = 1000 * r["ident_cpu"] / max(1, r["found"])
                    print(f"    {name:<8} {their:>18.3f} {ident:>19.3f} {r['ok']:>8} "
                          f"{their / ours_ms if ours_ms else float('inf'):>22.1f}")
        finally:
            stop_farm(proc)


if __name__ == "__main__":
    main()
