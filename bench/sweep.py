"""Sweep benchmark: a /16 (65,536 addresses) with 1% populated by simulated Antminers, swept
once by the agent's miner fleet (identification of what answers), then once more (polls of the
known, back-off of the dead). Prints figures; asserts nothing.

    .venv/bin/python bench/sweep.py [--prefix 127.201] [--share 0.01] [--concurrency 1024]

The simulated miners run in a separate process on addresses scattered at random over
``<prefix>.0.0/16`` (127.0.0.0/8 only). On loopback an empty address refuses the connection
at once; on a real LAN it costs up to ``connect_timeout`` (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time

from webbo.agent.cli.simulate import raise_file_limit
from webbo.agent.core.agent import Agent
from webbo.agent.core.config import parse_config
from webbo.agent.core.contract import SimOptions
from webbo.agent.core.log import configure_logging
from webbo.agent.core.plugins import default_registry


def start_scattered(prefix: str, share: float, seed: int) -> tuple[subprocess.Popen, list[str]]:
    rng = random.Random(seed)
    count = round(65536 * share)
    addresses = sorted(rng.sample(range(1, 65535), count))
    ips = [f"{prefix}.{a >> 8}.{a & 255}" for a in addresses]
    proc = subprocess.Popen([sys.executable, "-m", "webbo.agent.cli.simulate", "--shard"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    options = SimOptions(seed=seed, http_port=8080)
    spec = {"plan": [["antminer", ips]], "options": {
        "seed": options.seed, "http_port": options.http_port, "faults": {}, "extra": {}}}
    proc.stdin.write(json.dumps(spec) + "\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"the simulator failed (exit {proc.wait()})")
    return proc, ips


async def sweeps(prefix: str, concurrency: int) -> list[dict]:
    registry = default_registry()
    with tempfile.TemporaryDirectory() as state:
        text = (f'[agent]\ninterval = "1h"\ntimeout = "10s"\nconnect_timeout = "1s"\n'
                f'concurrency = {concurrency}\ninternal_metrics = false\n'
                f'[web]\nenabled = false\nstate_dir = "{state}"\n'
                f'[[network.ip_range_groups]]\nname = "bench"\n'
                f'[[network.ip_range_groups.ip_ranges]]\nname = "slash16"\n'
                f'first = "{prefix}.0.0"\nlast = "{prefix}.255.255"\n'
                f'[[inputs.bitmain_http]]\nweb_port = 8080\n[[inputs.cgminer]]\n')
        agent = Agent(registry, parse_config(text, registry))
        results = []
        for _ in range(2):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await agent.gather_all_once(lambda m: None)
            cpu1, wall1 = time.process_time(), time.perf_counter()
            fleet = agent.services["miners"]
            stats = fleet.last_sweep
            results.append({"wall": wall1 - wall0, "cpu": cpu1 - cpu0,
                            "addresses": stats.addresses, "identified": stats.identified,
                            "polled": stats.polled_ok, "no_answer": stats.no_answer,
                            "backing_off": stats.backing_off,
                            "peak_sockets": fleet.net.peak_open,
                            "unknown": len(fleet.inventory.unknown),
                            "said": [u.said for u in list(fleet.inventory.unknown.values())[:3]]})
        await fleet.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", default="127.201")
    parser.add_argument("--share", type=float, default=0.01)
    parser.add_argument("--concurrency", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not args.prefix.startswith("127."):
        raise SystemExit("127.0.0.0/8 only")
    raise_file_limit()
    configure_logging("console", "warning")
    print(f"# sweep bench — Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"{platform.platform()}")
    proc, ips = start_scattered(args.prefix, args.share, args.seed)
    try:
        first, second = asyncio.run(sweeps(args.prefix, args.concurrency))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"/16 with {len(ips)} simulated Antminers ({args.share:.0%}), concurrency "
          f"{args.concurrency}:")
    print(f"  sweep 1 (identify): {first['wall']:.2f} s wall, {first['cpu']:.2f} s CPU; "
          f"{first['addresses']} addresses, {first['identified']} identified, "
          f"{first['no_answer']} silent; identification "
          f"{1000 * first['cpu'] / max(1, first['identified']):.2f} ms CPU per found miner "
          f"(all addresses' CPU included); peak sockets {first['peak_sockets']}")
    if first["unknown"]:
        print(f"  unknown answerers: {first['unknown']}, e.g. {first['said']}")
    print(f"  sweep 2 (poll):     {second['wall']:.2f} s wall, {second['cpu']:.2f} s CPU; "
          f"{second['polled']} polled, {second['backing_off']} backing off")
    print(f"  peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
