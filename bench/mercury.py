"""Mercury meter bench: exchanges, bytes on the wire and time per full reading. Prints figures;
asserts nothing.

    .venv/bin/python bench/mercury.py [--readings 20] [--baud 9600] [--reply-delay 0.02]

The meters run in their own process (``webbo simulate --meters``, a pseudo-terminal) with line
speed emulation: each exchange takes the time its request and reply need at ``--baud`` 8N1 plus
the meter's ``--reply-delay`` (not documented by the manufacturer; 20 ms is a guess). This
process reads them with the agent's own code (the serial link and the meter session the bus task
uses):

* a Mercury 230 with the fast read ``08 16 A0`` (three-phase, the normal case);
* a Mercury 230 without it (older firmware: seven grouped ``08 16`` reads);
* a Mercury 204 (single-phase: seven ``08 11`` reads).

For each: the first contact (serial number check, open, variant, then the reading) and steady
readings (the channel stays open): exchanges, bytes out/in, wall time (median, max) and this
process's CPU time per reading. Then the three meters on one bus, as the agent polls them.
Target: ≤ 10 exchanges and ≤ 0.5 s for a three-phase meter.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import time

from webbo.agent.cli.simulate import spawn, stop
from webbo.agent.core.log import configure_logging
from webbo.plugins.inputs.mercury.backend import device_config
from webbo.plugins.inputs.mercury.bus import MeterBuses
from webbo.plugins.inputs.mercury.config import MercuryConfig
from webbo.plugins.inputs.mercury.link import SerialLink
from webbo.plugins.inputs.mercury.session import MeterSession, MeterState

METERS = [
    {"serial_number": "32297700-17", "device_model": "230", "address": 1},
    {"serial_number": "43099131-20", "device_model": "230", "address": 131, "fast_read": False},
    {"serial_number": "20481234-21", "device_model": "204", "address": 34},
]
LABELS = ["230, fast read (3-phase)", "230, grouped reads (3-phase)", "204 (1-phase)"]


def start_meters(baud: int, reply_delay: float) -> tuple[subprocess.Popen, list[dict]]:
    extra = {"meters": METERS, "line_speed": True, "baudrate": baud, "reply_delay": reply_delay}
    proc, farm = spawn("--miners", "0", "--meters", str(len(METERS)), "--families", "mercury",
                       "--extra", json.dumps(extra))
    return proc, farm["meters"]


def config_of(device: dict, baud: int) -> MercuryConfig:
    return device_config({"port": device["port"], "serial_number": device["serial_number"],
                          "device_model": device["device_model"], "address": device["address"],
                          "port_settings": {"baudrate": baud}})


async def measure(device: dict, baud: int, readings: int) -> dict:
    config = config_of(device, baud)
    link = SerialLink(config.port, config.port_settings)
    await link.open()
    state = MeterState()
    rows = []
    try:
        for _ in range(readings + 1):
            stats = link.stats
            out0, in0 = stats.bytes_out, stats.bytes_in
            session = MeterSession(link, config, state)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            fields = await session.read()
            rows.append({"exchanges": session.exchanges, "out": stats.bytes_out - out0,
                         "in": stats.bytes_in - in0, "wall": time.perf_counter() - wall0,
                         "cpu": time.process_time() - cpu0, "fields": len(fields)})
    finally:
        await link.close()
    first, steady = rows[0], rows[1:]
    return {
        "first": first,
        "exchanges": steady[-1]["exchanges"], "out": steady[-1]["out"], "in": steady[-1]["in"],
        "fields": steady[-1]["fields"],
        "wall_median": statistics.median(r["wall"] for r in steady),
        "wall_max": max(r["wall"] for r in steady),
        "cpu_ms": 1000 * statistics.mean(r["cpu"] for r in steady),
    }


async def bus_round(devices: list[dict], baud: int, seconds: float) -> dict:
    buses = MeterBuses()
    slots = []
    for device in devices:
        # interval 1 ms: as fast as the line allows
        slots.append(await buses.attach(config_of(device, baud), 0.001))
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    took = time.perf_counter() - started
    await buses.close()
    total = sum(s.readings for s in slots)
    return {"readings": total, "per_s": total / took, "failed": sum(s.failed for s in slots)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=20)
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--reply-delay", type=float, default=0.02)
    parser.add_argument("--bus-seconds", type=float, default=5.0)
    args = parser.parse_args()
    configure_logging("console", "warning")
    proc, devices = start_meters(args.baud, args.reply_delay)
    try:
        print(f"# Mercury bench — Python {platform.python_version()}, {os.cpu_count()} CPUs, "
              f"{args.baud} baud 8N1 emulated, meter reply delay {args.reply_delay * 1000:.0f} "
              f"ms, {args.readings} steady readings each")
        print(f"{'meter':<30} {'exch':>4} {'out B':>6} {'in B':>6} {'fields':>6} "
              f"{'median s':>9} {'max s':>7} {'cpu ms':>7}   first contact (exch, s)")
        for label, device in zip(LABELS, devices, strict=True):
            r = asyncio.run(measure(device, args.baud, args.readings))
            first = r["first"]
            print(f"{label:<30} {r['exchanges']:>4} {r['out']:>6} {r['in']:>6} {r['fields']:>6} "
                  f"{r['wall_median']:>9.3f} {r['wall_max']:>7.3f} {r['cpu_ms']:>7.2f}   "
                  f"{first['exchanges']}, {first['wall']:.3f}")
        r = asyncio.run(bus_round(devices, args.baud, args.bus_seconds))
        print(f"one bus, the three meters polled back to back for {args.bus_seconds:.0f} s: "
              f"{r['readings']} readings ({r['per_s']:.2f}/s), {r['failed']} failed")
        print("target: three-phase ≤ 10 exchanges and ≤ 0.5 s per reading")
    finally:
        stop(proc, 10)


if __name__ == "__main__":
    main()
