"""Poll benchmark: one full poll cycle of N simulated miners, then pyasic and pyasic-rs on the
same farm, side by side. Prints figures; asserts nothing.

    .venv/bin/python bench/poll.py [--sizes 1000,10000,50000] [--compare 300] [--mixed]

The farm runs in its own process(es) (``webbo simulate``, web on port 80 as on real firmware:
run as root; a farm larger than one process may hold is split into shard processes). ``--mixed``
runs every installed miner family, and the agent is configured the way each family's plugin
says its devices are read (``SimulatorType.reads_with``, as ``webbo demo`` does): every
built-in driver reads its own make. The bench checks that — it prints which driver read how
many miners of which simulated family, and flags any miner read by another make's driver
(e.g. a Whatsminer read by the generic cgminer fallback).

For each N the agent's miner fleet runs two sweeps in this process: the first identifies every
miner (identification CPU per found miner; it includes each miner's first poll), the second is
one poll cycle (wall time, this process's CPU seconds per miner read, miners per second, peak
RSS), including building the line protocol the outputs would send. The cycle's metrics go to a
buffer as an output's would (``MetricBuffer`` at the default ``metric_buffer_limit``,
100,000: an output that is down holds at most that many, newest kept; one that is up writes
each ``metric_batch_size`` as it fills), and the line protocol is built batch by batch.

Then each driver's miners (Whatsminers per API generation) are polled once more on their own,
for the cost of a poll per make, and the costs of what else runs per cycle (:data:`CYCLE_COSTS`)
are measured. Then ``--compare`` miners of the same farm (spread evenly over it, so a mixed
farm gives the rivals the same mix) are read by pyasic (``get_miner`` + ``get_data``) and by
asic-rs (``pyasic-rs``), CPU per miner measured the same way, each in a child process of its
own, so the agent's peak RSS is the agent's alone. The machine's load average is printed
before and after each size: other work on the two cores shows in every figure.
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
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from webbo.agent.alerts.defaults import DEFAULT_RULES
from webbo.agent.cli.simulate import raise_file_limit, spawn, stop
from webbo.agent.core.agent import Agent
from webbo.agent.core.buffer import MetricBuffer
from webbo.agent.core.config import parse_config
from webbo.agent.core.contract import SimOptions
from webbo.agent.core.log import configure_logging
from webbo.agent.core.metric import Metric, to_lines
from webbo.agent.core.plugins import default_registry

HTTP_PORT = 80
ANTMINER_TABLES: list[tuple[str, dict[str, Any]]] = [
    ("bitmain_http", {"web_port": HTTP_PORT}), ("cgminer", {})]


def start_farm(miners: int, base: str, mixed: bool) -> tuple[subprocess.Popen, list[dict]]:
    families = [] if mixed else ["--families", "antminer"]
    proc, farm = spawn("--miners", str(miners), "--base", base, "--http-port", str(HTTP_PORT),
                       "--seed", "1", *families)
    return proc, farm["devices"]


stop_farm = stop


def driver_tables(mixed: bool) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, str]]:
    """The ``[[inputs.*]]`` tables that read the farm, and which driver should read each
    simulated family (the first table its plugin names)."""
    registry = default_registry()
    if not mixed:
        return ANTMINER_TABLES, {"antminer": "bitmain_http"}
    options = SimOptions(http_port=HTTP_PORT)
    tables: list[tuple[str, dict[str, Any]]] = []
    expected: dict[str, str] = {}
    for family in sorted(registry.simulators.values(), key=lambda f: f.name):
        if family.kind != "miner" or family.reads_with is None:
            continue
        wanted = family.reads_with(options)
        if wanted:
            expected[family.name] = wanted[0][0]
        for name, table in wanted:
            if name not in {t[0] for t in tables}:
                # the plugins' defaults, not the demo's quick settings reads
                tables.append((name, {k: v for k, v in table.items()
                                      if k != "settings_every"}))
    return tables, expected


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_for(first: str, last: str, state: str, tables: list[tuple[str, dict[str, Any]]],
               concurrency: int) -> str:
    text = (f'[agent]\ninterval = "1h"\ntimeout = "20s"\nconnect_timeout = "5s"\n'
            f'concurrency = {concurrency}\ninternal_metrics = false\n'
            f'[web]\nenabled = false\nstate_dir = "{state}"\n'
            f'[[network.ip_range_groups]]\nname = "bench"\n'
            f'[[network.ip_range_groups.ip_ranges]]\nname = "farm"\n'
            f'first = "{first}"\nlast = "{last}"\n')
    for name, table in tables:
        text += f"[[inputs.{name}]]\n" + "".join(f"{k} = {_toml_value(v)}\n"
                                                 for k, v in table.items())
    for rule in DEFAULT_RULES:  # the sample config's alert rules, on as when installed
        text += "[[alerts.rules]]\n" + "".join(f"{k} = {_toml_value(v)}\n"
                                               for k, v in rule.items())
    return text


class OutputSink:
    """What an output's buffer holds of a cycle (the agent's own ring, at its limit)."""

    def __init__(self, limit: int) -> None:
        self.buffer = MetricBuffer(limit)
        self.gathered = 0

    def __call__(self, metric: Metric) -> None:
        self.gathered += 1
        self.buffer.add(metric)

    def lines(self, batch: int) -> int:
        """Build the line protocol of what is held, batch by batch: bytes in all."""
        size = 0
        while len(self.buffer):
            metrics, last = self.buffer.peek(batch)
            size += len(to_lines(metrics))
            self.buffer.ack(last)
        return size

    def metrics(self) -> list[Metric]:
        return self.buffer.peek(len(self.buffer))[0]


class Sink:
    """An accumulator that keeps what it is given (as an output's buffer would)."""

    def __init__(self) -> None:
        self.metrics: list[Metric] = []
        self.add = self.metrics.append

    def add_error(self, error: Any) -> None:
        pass


def group_of(device: Any) -> str:
    """The cost group of a device: its driver, and a Whatsminer's API generation."""
    api = device.extra.get("api", "") if device.driver == "whatsminer" else ""
    return f"{device.driver} {api}".strip()


async def per_group_costs(fleet: Any, concurrency: int) -> dict[str, tuple[int, float]]:
    """Poll each group's devices once more, on their own: {group: (ok, CPU seconds)}."""
    from webbo.agent.fleet.discovery import SweepStats

    groups: dict[str, list[Any]] = {}
    for device in fleet.inventory.devices():
        if device.state == "ok":
            groups.setdefault(group_of(device), []).append(device)
    out: dict[str, tuple[int, float]] = {}
    for name, devices in sorted(groups.items()):
        sink, stats = Sink(), SweepStats()
        queue = iter(devices)

        async def worker(sink: Sink = sink, stats: SweepStats = stats,
                         queue: Any = queue) -> None:
            for device in queue:
                await fleet.poll(device, sink, stats)

        gc.collect()
        cpu0 = time.process_time()
        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(devices)))))
        to_lines(sink.metrics)
        out[name] = (stats.polled_ok, time.process_time() - cpu0)
    return out


# -- what else runs per cycle (issue 17, item 5) ---------------------------------------------

CycleCost = Callable[[Agent, list[Metric]], Awaitable[float | None]]


async def listeners_cost(agent: Agent, metrics: list[Metric]) -> float | None:
    """Every ``agent.listen`` listener (alerts and power control read metrics this way) fed
    the whole cycle's metrics: CPU seconds, or None when nothing listens."""
    listeners = list(getattr(agent, "_listeners", []))
    if not listeners:
        return None
    cpu0 = time.process_time()
    for metric in metrics:
        for listener in listeners:
            listener(metric)
    return time.process_time() - cpu0


async def alerts_cost(agent: Agent, metrics: list[Metric]) -> float | None:
    """The alert engine's evaluation after this cycle's sweep, with the sample config's
    default rules (:func:`config_for` gives the agent those, as an installed agent has)."""
    from webbo.agent.alerts.engine import AlertEngine

    engine = agent.service(AlertEngine)
    if engine is None:
        return None
    gc.collect()
    cpu0 = time.process_time()
    engine.evaluate()
    return time.process_time() - cpu0


POWER_FEED_SERIAL = "10000000-20"


async def power_cost(agent: Agent, metrics: list[Metric]) -> float | None:
    """The power controller's decision for one cycle over this farm's miners as read: one
    feed over the bench's range, its meter (config only, never opened) reporting the farm's
    draw, the budget at 60 % of it, so the decision plans a step (``dry-run``: nothing sent)."""
    from webbo.agent.power.controller import PowerController

    fleet = agent.services["miners"]
    devices = [d for d in fleet.inventory.devices() if d.reading is not None]
    if not devices:
        return None
    text = agent.config_text + (
        f'[[inputs.mercury]]\nport = "/dev/webbo-bench-none"\nserial_number = '
        f'"{POWER_FEED_SERIAL}"\ndevice_model = "230"\n'
        f'[power]\nmode = "dry-run"\n[[power.feeds]]\nname = "bench"\n'
        f'meters = ["{POWER_FEED_SERIAL}"]\ngroups = ["bench"]\n'
        f'budget_kw = 1000000\nlimit_kw = 1000000\n')
    registry = default_registry()
    config = parse_config(text, registry)
    other = Agent(registry, config)
    twin = other.services["miners"]
    twin.configure(config)
    for device in devices:
        twin.inventory.by_mac[device.mac] = device
        twin.inventory.by_ip[device.ip] = device
    controller: PowerController = other.services["power"]
    controller.inputs(config)
    controller.state.path = None  # nothing written
    watts = sum(d.reading.power_w or 3250.0 for d in devices)  # type: ignore[union-attr]
    controller.on_metric(Metric("meter", {"serial": POWER_FEED_SERIAL},
                                {"online": True, "power_active_w": watts}, time.time_ns()))
    controller.set_budget("bench", round(watts / 1000 * 0.6, 1), None, "bench")
    controller.assess_all()  # the first decision builds the per-miner profiles, once
    controller.on_metric(Metric("meter", {"serial": POWER_FEED_SERIAL},
                                {"online": True, "power_active_w": watts}, time.time_ns()))
    gc.collect()
    cpu0 = time.process_time()
    controller.assess_all()
    return time.process_time() - cpu0


async def disk_buffer_cost(agent: Agent, metrics: list[Metric]) -> float | None:
    """The cycle's metrics (what an output's buffer holds of them) appended to a disk buffer
    and synced, as ``buffer = "disk"`` does: CPU of the agent's threads included."""
    from pathlib import Path

    from webbo.agent.core.disk_buffer import DiskBuffer

    with tempfile.TemporaryDirectory() as folder:
        buffer = DiskBuffer(Path(folder), 1 << 30, limit=len(metrics) + 1, flush_interval=10.0)
        await buffer.opened()
        gc.collect()
        cpu0 = time.process_time()
        for metric in metrics:
            buffer.add(metric)
        await buffer.close()  # writes what is pending and syncs
        return time.process_time() - cpu0


CYCLE_COSTS: dict[str, CycleCost] = {
    "metric listeners (all)": listeners_cost,
    "alert evaluation": alerts_cost,
    "power control": power_cost,
    "disk buffer": disk_buffer_cost,
}


async def agent_cycle(devices: list[dict], tables: list[tuple[str, dict[str, Any]]],
                      concurrency: int, per_driver: bool) -> dict:
    registry = default_registry()
    first = min(devices, key=lambda d: tuple(int(x) for x in d["ip"].split(".")))["ip"]
    last = max(devices, key=lambda d: tuple(int(x) for x in d["ip"].split(".")))["ip"]
    with tempfile.TemporaryDirectory() as state:
        text = config_for(first, last, state, tables, concurrency)
        config = parse_config(text, registry)
        agent = Agent(registry, config)
        agent.config_text = text  # type: ignore[attr-defined]  (the power hook's twin)
        limit, batch = config.agent.metric_buffer_limit, config.agent.metric_batch_size
        sink = OutputSink(limit)
        gc.collect()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await agent.gather_all_once(sink)
        sink.lines(batch)
        cpu1, wall1 = time.process_time(), time.perf_counter()
        fleet = agent.services["miners"]
        found = len(fleet.inventory)
        sink = OutputSink(limit)
        gc.collect()
        cpu2, wall2 = time.process_time(), time.perf_counter()
        await agent.gather_all_once(sink)
        held = sink.metrics()
        body_size = sink.lines(batch)
        cpu3, wall3 = time.process_time(), time.perf_counter()
        stats = fleet.last_sweep
        by_driver = {(d.ip, d.driver) for d in fleet.inventory.devices() if d.state == "ok"}
        groups = await per_group_costs(fleet, concurrency) if per_driver else {}
        extra = {name: await cost(agent, held) for name, cost in CYCLE_COSTS.items()}
        await fleet.close()
    return {"found": found, "ok": stats.polled_ok, "failed": stats.polled_failed,
            "ident_wall": wall1 - wall0, "ident_cpu": cpu1 - cpu0,
            "poll_wall": wall3 - wall2, "poll_cpu": cpu3 - cpu2, "metrics": sink.gathered,
            "held": len(held), "limit": limit, "bytes": body_size,
            "sockets_peak": fleet.net.peak_open, "kept": fleet.net.reused,
            "connections": fleet.net.connections, "read_by": by_driver, "groups": groups,
            "extra": extra}


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


def ms(seconds: float, count: int) -> float:
    return 1000 * seconds / max(1, count)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def sample(devices: list[dict], count: int) -> list[dict]:
    """``count`` devices spread evenly over the farm (a mixed farm's blocks all show)."""
    if count >= len(devices):
        return list(devices)
    step = len(devices) / count
    return [devices[int(i * step)] for i in range(count)]


def print_read_by(devices: list[dict], read_by: set[tuple[str, str]],
                  expected: dict[str, str]) -> None:
    family_of = {d["ip"]: d.get("family", "antminer") for d in devices}
    counts = Counter((family_of.get(ip, "?"), driver) for ip, driver in read_by)
    families = Counter(family_of.values())
    print("  miners read per driver:")
    wrong = 0
    for (family, driver), count in sorted(counts.items()):
        right = expected.get(family) == driver
        wrong += 0 if right else count
        print(f"    {driver:<13} {count:>6} of {families[family]:>6} simulated {family:<11}"
              + ("" if right else f"  <-- WRONG DRIVER (expected {expected.get(family)})"))
    if wrong:
        print(f"  !! {wrong} miners were read by another make's driver")


def print_ours(size: int, ours: dict, rss_mb: float) -> None:
    print(f"\nN={size}: webbo  found {ours['found']}, polled ok {ours['ok']}, "
          f"failed {ours['failed']}; peak sockets {ours['sockets_peak']}, "
          f"{ours['connections']} connections in all")
    print(f"  identification: {ours['ident_wall']:.2f} s wall, {ours['ident_cpu']:.2f} s CPU = "
          f"{ms(ours['ident_cpu'], ours['found']):.3f} ms/found miner")
    print(f"  poll cycle:     {ours['poll_wall']:.2f} s wall, {ours['poll_cpu']:.2f} s CPU = "
          f"{ms(ours['poll_cpu'], ours['ok']):.3f} ms/miner, "
          f"{ours['ok'] / ours['poll_wall']:.0f} miners/s; peak RSS {rss_mb:.0f} MB")
    print(f"  metrics: {ours['metrics']} gathered, {ours['held']} held by an output's buffer "
          f"(limit {ours['limit']}), {ours['bytes'] / 1e6:.1f} MB of line protocol; "
          f"{ours['kept']} exchanges on a connection already open")
    if ours["groups"]:
        print("  poll per make (each group polled again on its own):")
        for name, (ok, cpu) in ours["groups"].items():
            print(f"    {name:<16} {ok:>6} ok, {ms(cpu, ok):.3f} ms CPU/miner")
    print("  per cycle, besides the poll:")
    for name, seconds in ours["extra"].items():
        what = "not on this branch" if seconds is None else \
            f"{seconds * 1000:.1f} ms CPU ({ms(seconds, ours['ok']) * 1000:.1f} µs/miner)"
        print(f"    {name:<24} {what}")


def print_rivals(ours: dict, rivals: dict[str, dict], compared: int) -> None:
    ours_ms = ms(ours["poll_cpu"], ours["ok"])
    ours_id = ms(ours["ident_cpu"], ours["found"])
    print(f"  side by side ({compared} miners for the others, spread over the farm):")
    print(f"    {'client':<8} {'poll ms CPU/miner':>18} {'ident ms CPU/miner':>19}"
          f" {'poll ok':>8} {'ratio to webbo (poll)':>22}")
    print(f"    {'webbo':<8} {ours_ms:>18.3f} {ours_id:>19.3f} {ours['ok']:>8} {1.0:>22.1f}")
    for name, r in rivals.items():
        their = ms(r["poll_cpu"], r["ok"])
        ident = ms(r["ident_cpu"], r["found"])
        print(f"    {name:<8} {their:>18.3f} {ident:>19.3f} {r['ok']:>4}/{compared:<4}"
              f"{their / ours_ms if ours_ms else float('inf'):>22.1f}")


def run_rivals(devices: list[dict]) -> dict[str, dict]:
    rivals = {}
    for name in RIVALS:
        try:
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                rivals[name] = pool.submit(rival_cycle, name, devices).result()
        except Exception as exc:  # a bench reports, never stops
            print(f"  {name}: failed: {exc!r}")
    return rivals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--compare", type=int, default=300,
                        help="miners read by pyasic and asic-rs (0: skip)")
    parser.add_argument("--base", default="127.200.0.1")
    parser.add_argument("--concurrency", type=int, default=1024, help="[agent] concurrency")
    parser.add_argument("--mixed", action="store_true",
                        help="every installed miner family, each read by its own driver")
    parser.add_argument("--no-per-driver", action="store_true",
                        help="skip polling each driver's miners on their own")
    args = parser.parse_args()
    raise_file_limit()
    configure_logging("console", "warning")
    tables, expected = driver_tables(args.mixed)
    print(f"# poll bench — Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"{platform.platform()}")
    print(f"# farm: {'mixed' if args.mixed else 'Antminer'} simulator in its own process(es); "
          f"drivers: {', '.join(name for name, _ in tables)}; concurrency {args.concurrency}")
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"\n# before N={size}: {load()}", flush=True)
        proc, devices = start_farm(size, args.base, args.mixed)
        try:
            time.sleep(1.0)
            ours = asyncio.run(agent_cycle(devices, tables, args.concurrency,
                                           not args.no_per_driver))
            rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print_ours(size, ours, rss_mb)
            print_read_by(devices, ours["read_by"], expected)
            if args.compare:
                compared = sample(devices, args.compare)
                print_rivals(ours, run_rivals(compared), len(compared))
        finally:
            stop_farm(proc)
        print(f"# after N={size}: {load()}", flush=True)


if __name__ == "__main__":
    main()
