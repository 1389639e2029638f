"""Durable outputs benchmark: the disk buffer and Prometheus's /metrics at N miners. Prints
figures; asserts nothing.

    .venv/bin/python bench/buffer.py [--miners 10000] [--cycles 3] [--interval 10]

The farm runs in its own process(es) (``webbo simulate``, Antminer family, web on port 80 as
bench/poll.py runs it: as root), a real ``influxd`` on a free loopback port (the tests' helper,
tests/support/servers.py). Four parts:

1. **Poll CPU, disk buffer off vs on.** The agent runs as ``webbo run`` would (inputs on their
   interval, the influxdb output writing to the live influxd) once with the memory ring and
   once with ``buffer = "disk"``; this process's CPU time (every thread: the disk buffer's
   thread counts) over ``--cycles`` steady cycles after the identification sweep, per cycle and
   per miner.
2. **Append and replay.** One real cycle's metrics (captured from part 1) appended ``--repeat``
   times to a disk buffer (line protocol built on the loop, checksummed records written by the
   buffer's thread, fdatasync per the policy), then read back in batches of 5,000 with acks
   after reopening the folder (the restart case, the scan of every record included): lines/s,
   MB/s, disk bytes per metric. The same with SQLite in WAL mode, one row per metric and one
   row per record of 2,000 lines (synchronous=NORMAL, a transaction per append / per ack).
   Then the replay into the live influxd through the influxdb output: what the server accepts.
3. **/metrics at N miners**: render time and size of the page from the polled fleet (in this
   thread, and through the web's renderer in its worker thread while a 10 ms ticker on the
   event loop measures the longest stall), and the same families through prometheus-client
   (a custom collector + ``generate_latest``), which the hand-written page replaces.

Network: 127.0.0.0/8 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from poll import start_farm, stop_farm  # the same farm as the poll benchmark

from webbo.agent.cli.simulate import raise_file_limit
from webbo.agent.core.agent import Agent
from webbo.agent.core.config import parse_config
from webbo.agent.core.disk_buffer import DiskBuffer
from webbo.agent.core.log import configure_logging
from webbo.agent.core.metric import Metric, to_lines
from webbo.agent.core.plugins import default_registry
from webbo.agent.fleet.discovery import MinerFleet
from webbo.web.exposition import Exposition, render

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))
from servers import InfluxDB1  # the tests' real-server helper

HTTP_PORT = 80


def config_text(first: str, last: str, state: str, url: str, buffer: str, interval: int) -> str:
    return (f'[agent]\ninterval = "{interval}s"\nflush_interval = "{interval}s"\n'
            f'timeout = "20s"\nconnect_timeout = "5s"\nconcurrency = 1024\n'
            f'internal_metrics = false\nwatch_config = false\n'
            f'metric_batch_size = 5000\n'
            f'[web]\nenabled = false\nstate_dir = "{state}"\n'
            f'[[network.ip_range_groups]]\nname = "bench"\n'
            f'[[network.ip_range_groups.ip_ranges]]\nname = "farm"\n'
            f'first = "{first}"\nlast = "{last}"\n'
            f'[[inputs.bitmain_http]]\nweb_port = {HTTP_PORT}\nsettings_every = 10\n'
            f'[[inputs.cgminer]]\n'
            f'[[outputs.influxdb]]\nurls = ["{url}"]\ndatabase = "bench"\ntimeout = "30s"\n'
            f'buffer = "{buffer}"\nbuffer_max_bytes = "4GB"\n')


# -- 1. poll CPU ----------------------------------------------------------------------------


async def poll_cpu(devices: list[dict], url: str, buffer: str, cycles: int, interval: int
                   ) -> tuple[dict, list[Metric], Agent]:
    """Run the agent; CPU of ``cycles`` steady cycles. Returns figures, one cycle's metrics
    and the agent (still running: part 3 reads its fleet)."""
    registry = default_registry()
    state = tempfile.mkdtemp(prefix="webbo-bench-")
    agent = Agent(registry, parse_config(
        config_text(devices[0]["ip"], devices[-1]["ip"], state, url, buffer, interval),
        registry))
    captured: list[Metric] = []
    capturing = {"on": False}

    def listen(metric: Metric) -> None:
        if capturing["on"] and metric.name.startswith("miner"):
            captured.append(metric)

    agent.listen(listen)
    await agent.start(watch=False, signals=False)
    fleet = agent.service(MinerFleet)
    assert fleet is not None
    await until(lambda: fleet.sweeps >= 2)  # identification, then a first poll
    await drain(agent)
    first = fleet.sweeps
    cpu0, wall0 = time.process_time(), time.perf_counter()
    capturing["on"] = True
    await until(lambda: fleet.sweeps >= first + 1)
    capturing["on"] = False
    await until(lambda: fleet.sweeps >= first + cycles)
    await drain(agent)
    cpu1, wall1 = time.process_time(), time.perf_counter()
    runner = agent.outputs[0]
    return ({"cpu": cpu1 - cpu0, "wall": wall1 - wall0, "polled": fleet.last_sweep.polled_ok,
             "written": runner.stats.written, "dropped": runner.buffer.dropped,
             "state": state}, captured, agent)


async def until(predicate, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def drain(agent: Agent) -> None:
    """Until the output has written what the last sweep gave it."""
    await until(lambda: not len(agent.outputs[0].buffer), 60)


def disk_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.seg"))


# -- 2. append and replay -------------------------------------------------------------------


async def buffer_path_cpu(metrics: list[Metric], folder: Path) -> dict[str, float]:
    """CPU (every thread) to take one cycle's metrics through each kind of buffer to the
    bytes an InfluxDB 1.x output sends, lines built from scratch in both."""
    from webbo.agent.core.buffer import MetricBuffer

    async def through(buffer) -> float:
        for m in metrics:
            m._line = m._line_u = None
        started = time.process_time()
        for m in metrics:
            buffer.add(m)
        while True:
            batch, last = await buffer.read(5000)
            if last < 0:
                break
            to_lines(batch, False)
            buffer.ack(last)
        if isinstance(buffer, DiskBuffer):
            await buffer.close()
        return time.process_time() - started

    disk = DiskBuffer(folder, 8 << 30, limit=10**8, flush_interval=10.0, label="bench")
    disk.start()
    await disk.opened()
    memory_s = await through(MetricBuffer(10**8))
    disk_s = await through(disk)
    return {"memory": memory_s, "disk": disk_s}


async def disk_append_replay(metrics: list[Metric], repeat: int, folder: Path) -> dict:
    buffer = DiskBuffer(folder, 8 << 30, limit=10**8, flush_interval=10.0, label="bench")
    buffer.start()
    await buffer.opened()
    for m in metrics:
        m._line_u = None  # built again, as a fresh cycle's would be
    lines0 = time.perf_counter()
    line_bytes = sum(len(m.line(True)) + 1 for m in metrics)
    line_s = time.perf_counter() - lines0
    # The lines are cached now (an output builds them anyway): what follows is the buffer's
    # own cost (encoding, checksums, writes, fdatasync).
    started = time.perf_counter()
    for _ in range(repeat):
        for m in metrics:
            buffer.add(m)
        await buffer._write_pending()
    await buffer._run(buffer._sync)
    append_s = time.perf_counter() - started
    disk = await asyncio.to_thread(disk_size, folder)
    await buffer.close()
    count = len(metrics) * repeat
    opened = time.perf_counter()
    buffer = DiskBuffer(folder, 8 << 30, limit=10**8, flush_interval=10.0, label="bench")
    buffer.start()
    await buffer.opened()
    scan_s = time.perf_counter() - opened
    got = 0
    body_bytes = 0
    while True:
        batch, last = await buffer.read(5000)
        if last < 0:
            break
        body_bytes += len(to_lines(batch, False)) + 1
        got += len(batch)
        buffer.ack(last)
    replay_s = time.perf_counter() - opened
    await buffer.close()
    return {"count": count, "line_s": line_s * repeat, "append_s": append_s,
            "disk_bytes": disk, "line_bytes": line_bytes * repeat, "scan_s": scan_s,
            "replay_s": replay_s, "replayed": got, "body_bytes": body_bytes}


def sqlite_append_replay(lines: list[bytes], repeat: int, path: Path, per_row: int) -> dict:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE buf (seq INTEGER PRIMARY KEY, added INTEGER, n INTEGER, "
               "lines BLOB)")
    seq = 0
    started = time.perf_counter()
    for _ in range(repeat):
        db.execute("BEGIN")
        rows = []
        for i in range(0, len(lines), per_row):
            part = lines[i:i + per_row]
            rows.append((seq, time.time_ns(), len(part), b"".join(part)))
            seq += len(part)
        db.executemany("INSERT INTO buf VALUES (?, ?, ?, ?)", rows)
        db.execute("COMMIT")
    append_s = time.perf_counter() - started
    disk = path.stat().st_size + Path(f"{path}-wal").stat().st_size
    db.close()
    opened = time.perf_counter()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    got = 0
    last = -1
    rows_per_batch = max(1, 5000 // per_row)
    while True:
        rows = db.execute("SELECT seq, n, lines FROM buf WHERE seq > ? ORDER BY seq LIMIT ?",
                          (last, rows_per_batch)).fetchall()
        if not rows:
            break
        body = b"".join(r[2] for r in rows)
        got += sum(r[1] for r in rows)
        last = rows[-1][0]
        db.execute("DELETE FROM buf WHERE seq <= ?", (last,))
        del body
    replay_s = time.perf_counter() - opened
    db.close()
    return {"count": len(lines) * repeat, "append_s": append_s, "disk_bytes": disk,
            "replay_s": replay_s, "replayed": got}


async def replay_into_influx(metrics: list[Metric], repeat: int, folder: Path, url: str) -> dict:
    """Fill a disk buffer, then let a real output drain it into influxd (what the server
    accepts is the bound)."""
    import structlog

    from webbo.agent.core.config import Config
    from webbo.agent.core.contract import PluginContext
    from webbo.plugins.outputs.influxdb import InfluxDBConfig, InfluxDBOutput

    buffer = DiskBuffer(folder, 8 << 30, limit=10**8, flush_interval=10.0, label="bench")
    buffer.start()
    for _ in range(repeat):
        for m in metrics:
            buffer.add(m)
        await buffer._write_pending()
    output = InfluxDBOutput(InfluxDBConfig(urls=[url], database="replay", timeout=60),
                            PluginContext(Config(), Path(folder), structlog.get_logger()))
    await output.connect()
    started = time.perf_counter()
    sent = 0
    while True:
        batch, last = await buffer.read(5000)
        if last < 0:
            break
        await output.write(batch)
        buffer.ack(last)
        sent += len(batch)
    took = time.perf_counter() - started
    await output.close()
    await buffer.close()
    return {"sent": sent, "s": took}


# -- 3. /metrics ------------------------------------------------------------------------------


async def prometheus_page(agent: Agent) -> dict:
    fleet = agent.service(MinerFleet)
    assert fleet is not None
    for runner in agent.inputs:  # measure the page's own effect on the loop
        await runner.stop()
    await drain(agent)
    devices = fleet.inventory.devices()
    internal = agent.internal_metrics()
    times = []
    page = b""
    for _ in range(3):
        started = time.perf_counter()
        page = render(devices, [], internal)
        times.append(time.perf_counter() - started)
        del page
    page = render(devices, [], internal)
    samples = sum(1 for line in page.split(b"\n") if line and not line.startswith(b"#"))
    # Through the web's renderer (a worker thread), with a ticker on the loop.
    stalls: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            stalls.append(now - last - 0.01)
            last = now

    tick = asyncio.create_task(ticker())
    exposition = Exposition(agent)
    started = time.perf_counter()
    await exposition.page()
    threaded = time.perf_counter() - started
    done.set()
    await tick
    # The same time without rendering: what the loop shows by itself.
    base: list[float] = []
    last = time.perf_counter()
    quiet = time.perf_counter() + threaded
    while time.perf_counter() < quiet:
        await asyncio.sleep(0.01)
        now = time.perf_counter()
        base.append(now - last - 0.01)
        last = now
    # The same on the loop, for comparison (what rendering in the handler would cost).
    stalls_inline: list[float] = []
    done_inline = asyncio.Event()

    async def ticker_inline() -> None:
        last = time.perf_counter()
        while not done_inline.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            stalls_inline.append(now - last - 0.01)
            last = now

    tick = asyncio.create_task(ticker_inline())
    await asyncio.sleep(0.02)
    render(devices, [], internal)
    await asyncio.sleep(0.02)
    done_inline.set()
    await tick
    client = client_render(devices, internal)
    return {"devices": len(devices), "render_s": min(times), "bytes": len(page),
            "samples": samples, "threaded_s": threaded,
            "max_stall_ms": 1000 * max(stalls or [0.0]),
            "base_stall_ms": 1000 * max(base or [0.0]),
            "inline_stall_ms": 1000 * max(stalls_inline or [0.0]), **client}


def client_render(devices: list, internal: list[Metric]) -> dict:
    """The same families through prometheus-client (custom collector + generate_latest)."""
    try:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.core import Metric as PromMetric
    except ImportError:
        return {"client_s": None}
    from webbo.agent.fleet.metrics import failure_metric, reading_metrics
    from webbo.web.exposition import LEFT_OUT

    class Collector:
        def collect(self):
            families: dict[str, PromMetric] = {}

            def family(name: str) -> PromMetric:
                found = families.get(name)
                if found is None:
                    found = families[name] = PromMetric(name, name, "gauge")
                return found

            for device in devices:
                reading = device.reading
                metrics = (reading_metrics(device, reading)
                           if device.state == "ok" and reading is not None
                           else [failure_metric(device, 0)])
                for metric in [*metrics, *([] if device is not devices[0] else internal)]:
                    labels = {k: v for k, v in metric.tag_items() if v}
                    strings = {}
                    for key, value in metric.field_items():
                        if isinstance(value, str):
                            if key not in LEFT_OUT:
                                strings[key] = value
                            continue
                        name = f"{metric.name}_{key}"
                        family(name).add_sample(name, labels, float(value))
                    if strings:
                        name = f"{metric.name}_info"
                        family(name).add_sample(name, {**labels, **strings}, 1.0)
            yield from families.values()

    registry = CollectorRegistry()
    registry.register(Collector())
    started = time.perf_counter()
    text = generate_latest(registry)
    return {"client_s": time.perf_counter() - started, "client_bytes": len(text)}


# -- main ---------------------------------------------------------------------------------------


def rate(count: float, seconds: float) -> str:
    return f"{count / seconds:,.0f}" if seconds > 0 else "inf"


async def run(devices: list[dict], args: argparse.Namespace, influx: InfluxDB1) -> None:
    best: dict[str, float] = {}
    captured: list[Metric] = []
    page: dict = {}
    order = ["memory", "disk"]
    for round_ in range(args.rounds):
        for kind in order if round_ % 2 == 0 else order[::-1]:
            figures, cycle, agent = await poll_cpu(devices, influx.url, kind, args.cycles,
                                                   args.interval)
            captured = captured or cycle
            per_cycle = figures["cpu"] / args.cycles
            best[kind] = min(best.get(kind, per_cycle), per_cycle)
            print(f"  {kind:>6} buffer: {figures['cpu']:.2f} s CPU over {args.cycles} cycles = "
                  f"{per_cycle:.2f} s/cycle, "
                  f"{1000 * per_cycle / max(1, figures['polled']):.3f} ms/miner; "
                  f"{figures['written']} written, {figures['dropped']} dropped", flush=True)
            if kind == "memory" and not page:
                page = await prometheus_page(agent)
            await agent.stop()
            shutil.rmtree(figures["state"], ignore_errors=True)
    extra = best["disk"] / best["memory"] - 1
    print(f"  best of {args.rounds}: memory {best['memory']:.2f} s/cycle, disk "
          f"{best['disk']:.2f} s/cycle: the disk buffer costs {100 * extra:+.1f}% poll CPU "
          "(goal: under +10%)")

    print(f"\n2. append and replay ({len(captured)} metrics per cycle x {args.repeat})")
    with tempfile.TemporaryDirectory(prefix="webbo-bench-buf-") as tmp:
        paths = [await buffer_path_cpu(captured, Path(tmp) / f"cpu{i}") for i in range(3)]
        memory_s = min(p["memory"] for p in paths)
        disk_s = min(p["disk"] for p in paths)
        print(f"  one cycle through the buffer to the bytes sent (CPU, best of 3): memory "
              f"{memory_s:.3f} s, disk {disk_s:.3f} s: the disk adds {disk_s - memory_s:.3f} s "
              f"a cycle = {100 * (disk_s - memory_s) / best['memory']:+.1f}% of the poll CPU "
              f"({best['memory']:.2f} s a cycle with the memory ring)")
        disk = await disk_append_replay(captured, args.repeat, Path(tmp) / "seg")
        n, mb = disk["count"], disk["disk_bytes"] / 1e6
        print(f"  segments: append {rate(n, disk['append_s'])} lines/s "
              f"({mb / disk['append_s']:.0f} MB/s on disk), lines already built (building "
              f"them: {rate(n, disk['line_s'])} lines/s, paid by every output, memory or "
              f"disk); {disk['disk_bytes'] / n:.0f} disk bytes/metric (the line protocol "
              f"alone {disk['line_bytes'] / n:.0f})")
        print(f"            replay after reopening: {rate(disk['replayed'], disk['replay_s'])} "
              f"lines/s ({mb / disk['replay_s']:.0f} MB/s), of which opening (checking every "
              f"record) {disk['scan_s']:.2f} s; {disk['replayed']} of {n} read back")
        lines = [(m.line(True) + "\n").encode() for m in captured]
        for per_row, label in ((1, "SQLite WAL, a row per metric"),
                               (2000, "SQLite WAL, a row per 2,000")):
            path = Path(tmp) / f"buf{per_row}.db"
            sql = sqlite_append_replay(lines, args.repeat, path, per_row)
            print(f"  {label}: append {rate(sql['count'], sql['append_s'])} lines/s, replay "
                  f"{rate(sql['replayed'], sql['replay_s'])} lines/s; "
                  f"{sql['disk_bytes'] / sql['count']:.0f} disk bytes/metric "
                  "(line protocol only, no line building)")
        into = await replay_into_influx(captured, args.repeat, Path(tmp) / "influx", influx.url)
        print(f"  replay into influxd (batches of 5,000, one output): "
              f"{rate(into['sent'], into['s'])} lines/s, {into['sent']} lines")

    print(f"\n3. /metrics at {page['devices']} miners")
    print(f"  hand-written: {page['render_s']:.3f} s, {page['bytes'] / 1e6:.1f} MB, "
          f"{page['samples']} samples; through the web's worker thread "
          f"{page['threaded_s']:.3f} s, longest event-loop stall meanwhile "
          f"{page['max_stall_ms']:.0f} ms (none rendering: {page['base_stall_ms']:.0f} ms; "
          f"rendering on the loop instead: {page['inline_stall_ms']:.0f} ms)")
    if page.get("client_s") is not None:
        print(f"  prometheus-client (custom collector + generate_latest): "
              f"{page['client_s']:.3f} s, {page['client_bytes'] / 1e6:.1f} MB "
              f"({page['client_s'] / page['render_s']:.1f}x the hand-written page)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--miners", type=int, default=10000)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--interval", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5, help="cycles appended in part 2")
    parser.add_argument("--rounds", type=int, default=2,
                        help="runs of each buffer kind in part 1, alternating (best counts)")
    parser.add_argument("--base", default="127.202.0.1")
    args = parser.parse_args()
    raise_file_limit()
    configure_logging("console", "warning")
    print(f"# buffer bench — Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"{platform.platform()}")
    print(f"\n1. poll CPU at {args.miners} miners, {args.interval} s interval, influxdb output "
          "to a live influxd")
    with tempfile.TemporaryDirectory(prefix="webbo-bench-influx-") as tmp:
        influx = InfluxDB1(Path(tmp)).start()
        proc, devices = start_farm(args.miners, args.base, False)
        try:
            time.sleep(1.0)
            asyncio.run(run(devices, args, influx))
        finally:
            stop_farm(proc)
            influx.stop()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
