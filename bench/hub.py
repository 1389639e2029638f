"""Hub benchmark: what the hub costs at 100,000 miners, and a fleet-wide task across real sites.
Prints figures; asserts nothing.

    .venv/bin/python bench/hub.py [--sites 10] [--miners 10000] [--interval 10] [--cycles 3]
                                  [--real 10000] [--skip-synthetic] [--skip-real]

1. **Synthetic sites.** Debian's nats-server (JetStream, temp store) on loopback; a child
   process plays ``--sites`` site agents of ``--miners`` miners each, speaking the sites'
   protocol (hello, heartbeats, a snapshot on request, one state per ``--interval`` into each
   site's stream); the miners are made up and never contacted. This process runs the hub (its
   web server on a free port) and reports, once every miner is shown: its CPU seconds per cycle
   and its RSS, and the latency of the Miners page, its live table and
   ``/api/mining/miners/get`` (a page of 50, and every miner).
2. **Real sites.** Three ``webbo run`` site agents, each polling ``--real`` simulated Antminers
   of its own (``webbo simulate``, web on port 80: run as root) on 127.71/72/73.x; the hub
   sends ``set-led-status`` to ``"*"`` and waits for the merged result: seconds, and how many
   miners answered success. The LEDs are switched off again afterwards.

Network: 127.0.0.0/8 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import resource
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from api_helpers import stack
from nats_servers import NatsServer, hub_config, ports
from ui_helpers import PASSWORD, login

from webbo.agent.cli.simulate import raise_file_limit, spawn, stop
from webbo.agent.core.log import configure_logging
from webbo.agent.core.plugins import default_registry

# -- the synthetic sites (child process) ---------------------------------------------------------


async def play_sites(url: str, sites: int, miners: int, interval: float) -> None:
    """``sites`` site agents in one process: the protocol, without miners behind it."""
    import msgspec
    import nats
    from nats.js.api import StreamConfig

    from webbo.agent.cluster import subjects as subj
    from webbo.agent.cluster.wire import (
        STATE_PART,
        DeviceInfo,
        Heartbeat,
        InventoryMsg,
        MinerState,
        NetworkReply,
        StateMsg,
        encoder,
    )

    async def one(index: int) -> None:
        name = f"bench-{index:02d}"
        instance = uuid.uuid4().hex[:16]
        nc = await nats.connect(url, inbox_prefix=subj.site_inbox(name),
                                max_reconnect_attempts=-1)
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=subj.stream_name(name), subjects=[
            subj.subject(name, subj.STATE), subj.subject(name, subj.ALERTS)]))
        base = f"127.{100 + index}"
        infos = [DeviceInfo(mac=f"02:{index:02x}:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:"
                                f"{i & 255:02x}", ip=f"{base}.{i // 250}.{i % 250 + 1}",
                            driver="bitmain_http", make="Antminer", model="Antminer S19",
                            group="hall", group_id=str(uuid.UUID(int=index + 1, version=4)),
                            range="rack", range_id=str(uuid.UUID(int=index + 1000, version=4)),
                            first_seen=time.time())
                 for i in range(miners)]
        network = {"ip_range_groups": [{"name": "hall", "uuid": infos[0].group_id,
                                        "ip_ranges": [{"name": "rack", "uuid": infos[0].range_id,
                                                       "first": f"{base}.0.1",
                                                       "last": infos[-1].ip}]}]}
        seq = 0

        async def snapshot(msg: Any) -> None:
            parts, snapshot_id = -(-len(infos) // STATE_PART), uuid.uuid4().hex[:6]
            for part in range(parts):
                await nc.publish(subj.subject(name, subj.INVENTORY), encoder.encode(InventoryMsg(
                    instance=instance, rev=1, snapshot=snapshot_id, part=part,
                    parts=parts, devices=infos[part * STATE_PART:(part + 1) * STATE_PART])))

        async def on_network(msg: Any) -> None:
            await nc.publish(msg.reply, encoder.encode(NetworkReply(ok=True, network=network)))

        async def hello(_: Any = None) -> None:
            await nc.publish(subj.HELLO, msgspec.json.encode({"site": name}))

        await nc.subscribe(subj.subject(name, subj.SNAPSHOT), cb=snapshot)
        await nc.subscribe(subj.subject(name, subj.NETWORK), cb=on_network)
        await nc.subscribe(subj.DISCOVER, cb=hello)
        await hello()
        started, sweep = time.time(), 0
        while True:
            sweep += 1
            now = time.time()
            await hello()
            await nc.publish(subj.subject(name, subj.HEARTBEAT), encoder.encode(Heartbeat(
                site=name, instance=instance, host="bench", version="bench", started_at=started,
                time=now, interval=interval, inventory_rev=1, network_rev="n", miners=miners,
                by_state={"ok": miners}, stream=subj.stream_name(name))))
            states = [MinerState(d.mac, "ok", "", 0, now, int(now * 1e9), 95.0 + (i % 7),
                                 95.0, 95.0, 3250.0, None, 25.0, 70.0 + i % 9, 80.0 + i % 11,
                                 [5200, 5300, 5250, 5280], 3600 * sweep, "normal", 0, True,
                                 1000, 2, 0, "stratum+tcp://pool.example:3333", [])
                      for i, d in enumerate(infos)]
            parts = -(-len(states) // STATE_PART)
            for part in range(parts):
                seq += 1
                await nc.publish(subj.subject(name, subj.STATE), encoder.encode(StateMsg(
                    instance=instance, seq=seq, sweep=sweep, time=now, part=part, parts=parts,
                    miners=states[part * STATE_PART:(part + 1) * STATE_PART])),
                    headers={"Nats-Msg-Id": f"{instance}:{seq}"})
            await asyncio.sleep(max(0.0, interval - (time.time() - now)))

    await asyncio.gather(*(one(i) for i in range(sites)))


# -- measuring the hub ---------------------------------------------------------------------------


async def end(proc: asyncio.subprocess.Process, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not ended within ``timeout``."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def timed_get(session: aiohttp.ClientSession, url: str, repeat: int = 5
                    ) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(repeat):
        started = time.perf_counter()
        async with session.get(url) as answer:
            body = await answer.read()
            assert answer.status == 200, (url, answer.status)
        best, size = min(best, time.perf_counter() - started), len(body)
    return best, size


async def timed_post(session: aiohttp.ClientSession, url: str, key: str, body: dict,
                     repeat: int = 5) -> tuple[float, int]:
    best, size = float("inf"), 0
    headers = {"X-Api-Key": key, "Content-Type": "application/json"}
    for _ in range(repeat):
        started = time.perf_counter()
        try:
            async with session.post(url, json=body, headers=headers) as answer:
                data = await answer.read()
                assert answer.status == 200, (url, answer.status, data[:200])
        except aiohttp.ClientError as exc:  # a kept-alive connection the server closed
            print(f"    ({url}: {exc}; asked again)")
            continue
        best, size = min(best, time.perf_counter() - started), len(data)
    return best, size


def hub_text(state: Path, port: int, stale: str = "60s") -> str:
    return (f'[agent]\ninterval = "10s"\ninternal_metrics = false\n'
            f'[web]\nstate_dir = "{state}"\n'
            f'[hub]\nenabled = true\nurls = ["nats://127.0.0.1:{port}"]\nuser = "hub"\n'
            f'password = "hubpw"\nstale_after = "{stale}"\nrequest_timeout = "30s"\n')


async def synthetic(args: argparse.Namespace, tmp: Path) -> None:
    total = args.sites * args.miners
    port, http = ports(2)
    nats = NatsServer(tmp / "nats", hub_config(tmp / "nats" / "store", port=port, http=http,
                                               sites={}), http).start()
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "play", "--url", f"nats://hub:hubpw@127.0.0.1:{port}",
        "--sites", str(args.sites), "--miners", str(args.miners), "--interval",
        str(args.interval))
    registry = default_registry()
    (tmp / "hub").mkdir()
    try:
        async with stack(tmp / "hub", registry, hub_text(tmp / "hub" / "state", port)) as s:
            hub = s.agent.services["hub"]
            started = time.perf_counter()
            while (shown := sum(1 for d in hub.fleet.inventory.devices() if d.reading)) < total:
                await asyncio.sleep(0.5)
                if time.perf_counter() - started > args.wait:
                    raise SystemExit(f"the hub did not get every miner in {args.wait} s: {shown} "
                                     f"shown; {hub.status()}; {hub.sites()}")
            print(f"  every miner shown at the hub after {time.perf_counter() - started:.1f} s")
            messages = hub.session.stats.state_messages
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await asyncio.sleep(args.cycles * args.interval)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            cycles = wall / args.interval
            applied = hub.session.stats.state_messages - messages
            print(f"  hub CPU {cpu / cycles:.2f} s per {args.interval:g} s cycle "
                  f"({cpu / wall * 100:.0f}% of one core; {applied} state messages = "
                  f"{applied * 2000 / max(cpu, 1e-9):,.0f} miner states per CPU second), "
                  f"RSS {rss_mib():.0f} MiB (peak "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")
            s.web.store.set_password("miner", PASSWORD)
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as session:
                await login(session, s.url)
                for label, path in [("Miners page (first load)", "/miners"),
                                    ("Miners live table", "/ui/miners/rows"),
                                    ("Miners, one site", "/ui/miners/rows?site=bench-01"),
                                    ("Miners, sorted by temperature",
                                     "/ui/miners/rows?sort=temp&dir=desc"),
                                    ("rack map tiles (one site)",
                                     "/ui/map/tiles?site=bench-01")]:
                    seconds, size = await timed_get(session, s.url + path)
                    print(f"  {label:34} {seconds * 1000:8.1f} ms  {size / 1024:9.1f} KiB")
                for label, body in [("miners/get, 50", {"limit": 50}),
                                    ("miners/get, one site", {"site": "bench-01"}),
                                    (f"miners/get, all {total:,}", {})]:
                    seconds, size = await timed_post(session, s.url + "/api/mining/miners/get",
                                                     s.key, body, 3)
                    print(f"  {label:34} {seconds * 1000:8.1f} ms  {size / 1024:9.1f} KiB")
    finally:
        await end(child)
        nats.stop()


# -- real sites ----------------------------------------------------------------------------------


def site_text(state: Path, site: str, port: int, first: str, last: str) -> str:
    return (f'[agent]\ninterval = "60s"\ntimeout = "20s"\nconnect_timeout = "5s"\n'
            f'concurrency = 1024\ninternal_metrics = false\n'
            f'[web]\nenabled = false\nstate_dir = "{state}"\n'
            f'[cluster]\nsite = "{site}"\nurls = ["nats://127.0.0.1:{port}"]\nuser = "{site}"\n'
            f'password = "pw"\n'
            f'[[network.ip_range_groups]]\nname = "{site}"\n'
            f'[[network.ip_range_groups.ip_ranges]]\nfirst = "{first}"\nlast = "{last}"\n'
            f'[[inputs.bitmain_http]]\nweb_port = 80\nsettings_every = 0\n')


async def real(args: argparse.Namespace, tmp: Path) -> None:
    names = ["real-a", "real-b", "real-c"]
    port, http = ports(2)
    nats = NatsServer(tmp / "rnats", hub_config(tmp / "rnats" / "store", port=port, http=http,
                                                sites=dict.fromkeys(names, "pw")), http).start()
    farms, agents = [], []
    try:
        for i, name in enumerate(names):
            proc, farm = spawn("--miners", str(args.real), "--base", f"127.{71 + i}.0.1",
                               "--http-port", "80", "--seed", str(i + 1),
                               "--families", "antminer")
            farms.append(proc)
            devices = farm["devices"]
            folder = tmp / name
            folder.mkdir()
            (folder / "webbo.toml").write_text(site_text(folder / "state", name, port,
                                                         devices[0]["ip"], devices[-1]["ip"]))
            agents.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "webbo.agent.cli", "--log-level", "warning", "run",
                "-c", str(folder / "webbo.toml")))
        registry = default_registry()
        total = 3 * args.real
        (tmp / "rhub").mkdir()
        async with stack(tmp / "rhub", registry, hub_text(tmp / "rhub" / "state", port,
                                                          "300s")) as s:
            hub = s.agent.services["hub"]
            started = time.perf_counter()
            while sum(1 for d in hub.fleet.inventory.devices() if d.state == "ok") < total:
                await asyncio.sleep(1.0)
                if time.perf_counter() - started > 900:
                    raise SystemExit("the sites did not report every miner in 15 minutes")
            print(f"  {total:,} miners ok at the hub {time.perf_counter() - started:.0f} s "
                  "after the start")
            for status in (1, 0):
                cpu0, began = time.process_time(), time.perf_counter()
                info = await s.task("/api/mining/miners/set-led-status",
                                    {"macs": "*", "status": status}, timeout=900)
                took = time.perf_counter() - began
                result = info["result"]
                ok = sum(1 for o in result.values() if o["success"])
                print(f"  set-led-status {status} on \"*\": merged result of {len(result):,} "
                      f"miners in {took:.1f} s, {ok:,} success; hub CPU "
                      f"{time.process_time() - cpu0:.2f} s")
    finally:
        for agent in agents:
            await end(agent, 30)
        for proc in farms:
            stop(proc)
        nats.stop()


async def main(args: argparse.Namespace) -> None:
    configure_logging("console", "warning")
    raise_file_limit()
    tmp = Path(tempfile.mkdtemp(prefix="webbo-bench-hub-"))
    print(f"hub bench: Python {platform.python_version()}, {platform.system()} "
          f"{platform.release()}, {os.cpu_count()} CPUs")
    if not args.skip_synthetic:
        print(f"synthetic: {args.sites} sites × {args.miners:,} miners, a state every "
              f"{args.interval:g} s into each site's stream")
        await synthetic(args, tmp)
    if not args.skip_real:
        print(f"real: 3 site agents × {args.real:,} simulated Antminers")
        await real(args, tmp)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "play":
        parser = argparse.ArgumentParser()
        parser.add_argument("play")
        parser.add_argument("--url")
        parser.add_argument("--sites", type=int)
        parser.add_argument("--miners", type=int)
        parser.add_argument("--interval", type=float)
        a = parser.parse_args()
        with contextlib.suppress(KeyboardInterrupt):
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            asyncio.run(play_sites(a.url, a.sites, a.miners, a.interval))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=10)
    parser.add_argument("--miners", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--real", type=int, default=10_000)
    parser.add_argument("--wait", type=float, default=600.0,
                        help="longest wait for the hub to show every miner (seconds)")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--skip-real", action="store_true")
    asyncio.run(main(parser.parse_args()))
