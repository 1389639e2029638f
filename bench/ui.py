"""How fast the web UI's live parts and the inventory API answer at farm scale, and what the
miners' history costs.

Runs the real app (agent + web server on a free 127.0.0.1 port) with N made-up miners in the
inventory (nothing is swept), logs in like a browser and times the calls the pages repeat every
few seconds: the Miners table (default, sorted, filtered, searched, a deep page), the rack map,
a miner's page; then pages of /api/mining/miners/get with an API key. Then fills a full history
ring for every miner and reports its memory. Prints figures (best of ``--repeat``, and the
first call, which finds nothing cached); asserts nothing.

    .venv/bin/python bench/ui.py --miners 10000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from api_helpers import config_text, stack
from ui_helpers import PASSWORD, fake_devices, fill, login

from webbo.agent.core.plugins import default_registry
from webbo.agent.fleet.history import MinerHistory
from webbo.web.auth import create_api_key

CALLS = [
    ("table, default page", "/ui/miners/rows", {}),
    ("table, sort by temperature", "/ui/miners/rows", {"sort": "temp", "dir": "desc"}),
    ("table, filter group+state", "/ui/miners/rows", {"group": "room 1", "state": "ok"}),
    ("table, search", "/ui/miners/rows", {"q": "s21 127.56.1"}),
    ("table, page 100 of 500 rows", "/ui/miners/rows", {"size": "500", "page": "15"}),
    ("rack map (all tiles)", "/ui/map/tiles", {}),
]


API_CALLS = [
    ("miners/get, first 100", {"limit": 100}),
    ("miners/get, 500 from the middle", {"offset": 25_000, "limit": 500}),
    ("miners/get, state ok, 100", {"state": "ok", "limit": 100}),
    ("miners/get, one group, 100", {"group": "room 1", "limit": 100}),
]


async def timed(session: aiohttp.ClientSession, url: str, params: dict[str, str],
                repeat: int, body: dict | None = None,
                headers: dict | None = None) -> tuple[float, float, int]:
    """(best seconds, first call's seconds, answer size)."""
    times = []
    size = 0
    for _ in range(repeat):
        started = time.perf_counter()
        if body is None:
            request = session.get(url, params=params)
        else:
            request = session.post(url, json=body, headers=headers)
        async with request as resp:
            data = await resp.read()
            assert resp.status == 200, (url, resp.status)
        times.append(time.perf_counter() - started)
        size = len(data)
    return min(times), times[0], size


async def main(miners: int, repeat: int) -> None:
    registry = default_registry()
    tmp = Path(tempfile.mkdtemp(prefix="webbo-bench-ui-"))
    devices = fake_devices(miners)
    one, five, fifteen = os.getloadavg()
    print(f"web UI bench: {miners} miners, best of {repeat}; Python {platform.python_version()}"
          f", {platform.system()} {platform.release()}; load average {one:.2f}, {five:.2f}, "
          f"{fifteen:.2f}")
    async with stack(tmp, registry, config_text(tmp / "state", [])) as s:
        s.web.store.set_password("miner", PASSWORD)
        fill(s.fleet, devices)
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            await login(session, s.url)
            print(f"  {'call':36} {'best':>9} {'first':>9}  {'size':>10}")
            for label, path, params in CALLS:
                best, first, size = await timed(session, s.url + path, params, repeat)
                print(f"  {label:36} {best * 1000:6.1f} ms {first * 1000:6.1f} ms  "
                      f"{size / 1024:6.1f} KiB")
            mac = devices[0].mac
            best, first, size = await timed(session, f"{s.url}/ui/miners/{mac}/live", {},
                                            repeat)
            print(f"  {'a miner page (live part)':36} {best * 1000:6.1f} ms "
                  f"{first * 1000:6.1f} ms  {size / 1024:6.1f} KiB")
            key, _ = create_api_key(s.web.store, "bench")
            for label, body in API_CALLS:
                best, first, size = await timed(
                    session, s.url + "/api/mining/miners/get", {}, repeat, body,
                    {"X-Api-Key": key})
                print(f"  {label:36} {best * 1000:6.1f} ms {first * 1000:6.1f} ms  "
                      f"{size / 1024:6.1f} KiB")
    tracemalloc.start()
    history = MinerHistory()
    before = tracemalloc.get_traced_memory()[0]
    now = time.time()
    started = time.process_time()
    for k in range(history.points):
        for d in devices:
            history.record(d.mac, 100.0, 60.0, 75.0, now=now + k * history.step)
    cpu = time.process_time() - started
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    records = history.points * len(devices)
    print(f"  history: {history.points} points × {len(devices)} miners = {used / 2**20:.1f} MiB; "
          f"{cpu / records * 1e6:.2f} µs CPU per record (under tracemalloc)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miners", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.miners, args.repeat))
