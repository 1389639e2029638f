"""``webbo simulate``: a simulated farm on loopback, made of every simulator family installed.

The miner families (``SimulatorType(kind="miner")`` from any plugin) share ``--miners N`` by
their weights, each on a block of consecutive addresses from ``--base`` (127.0.0.0/8 only).
Meter families (``kind="meter"``) each get ``--meters M`` devices (pseudo-terminals).

A simulated miner holds two or three listening sockets, and a process may not hold more files
than its hard ``RLIMIT_NOFILE`` (20,000 here, and only root may raise it). So the soft limit is
raised to the hard one, and a farm larger than one process can hold is split into *shards*:
child processes (``python -m webbo.agent.cli.simulate --shard``) that each run a slice of the
addresses and report their devices. With two cores that also lets the farm answer on both.

The first line on stdout is one JSON object, ``{"devices": [...], "meters": [...]}``, printed
only once every device listens; then it runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog

from webbo.agent.core.contract import SimOptions, SimulatorType
from webbo.agent.fleet.net import int_to_ip, ip_to_int

log = structlog.get_logger("webbo.simulate")

__all__ = ["Farm", "plan_miners", "raise_file_limit", "spawn", "start_farm", "stop"]

SOCKETS_PER_MINER = 3
"""Budget of listening sockets per simulated miner (RPC + web + a spare for SSH/v3 APIs)."""
RESERVED_FILES = 2048
"""Files kept free in each process for connections being served."""


def spawn(*args: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """``webbo simulate ARGS`` in a child process (the demo and the benches keep the simulator
    off their own event loop and CPU accounting); returns it once every device listens, with
    the inventory it printed as its first line."""
    proc = subprocess.Popen([sys.executable, "-m", "webbo.agent.cli", "--log-level", "warning",
                             "simulate", *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"the simulator exited with {proc.wait()}")
    return proc, json.loads(line)


def stop(proc: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    """SIGTERM (the simulator closes its devices), then SIGKILL after ``timeout``."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def raise_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


def miners_per_process(limit: int | None = None) -> int:
    limit = raise_file_limit() if limit is None else limit
    return max(100, (limit - RESERVED_FILES) // SOCKETS_PER_MINER)


def addresses_from(base: str, count: int) -> list[str]:
    """``count`` consecutive addresses from ``base``, all inside 127.0.0.0/8."""
    start = ip_to_int(base)
    if start >> 24 != 127 or (start + count - 1) >> 24 != 127:
        raise ValueError(f"simulated devices live in 127.0.0.0/8; {base} + {count} leaves it")
    return [int_to_ip(start + i) for i in range(count)]


def plan_miners(families: Sequence[SimulatorType], miners: int, base: str
                ) -> list[tuple[str, list[str]]]:
    """Split ``miners`` among ``families`` by weight (largest remainder), in consecutive blocks
    of addresses from ``base``: [(family name, addresses)]."""
    families = [f for f in families if f.weight > 0]
    if miners <= 0 or not families:
        return []
    total = sum(f.weight for f in families)
    shares = [miners * f.weight / total for f in families]
    counts = [math.floor(s) for s in shares]
    by_remainder = sorted(range(len(families)), key=lambda i: (counts[i] - shares[i], i))
    for i in by_remainder[: miners - sum(counts)]:
        counts[i] += 1
    addresses = addresses_from(base, miners)
    plan, offset = [], 0
    for family, count in zip(families, counts, strict=True):
        if count:
            plan.append((family.name, addresses[offset:offset + count]))
            offset += count
    return plan


@dataclasses.dataclass
class Farm:
    """A running simulated farm (in-process simulations and/or shard processes)."""

    devices: list[dict[str, Any]]
    meters: list[dict[str, Any]]
    simulations: list[Any]
    shards: list[asyncio.subprocess.Process]

    def inventory(self) -> dict[str, Any]:
        return {"devices": self.devices, "meters": self.meters}

    def simulation(self, family: str) -> Any:
        """The in-process simulation of one family (for tests that steer devices)."""
        for name, sim in self.simulations:
            if name == family:
                return sim
        return None

    async def close(self) -> None:
        for _, sim in self.simulations:
            with contextlib.suppress(Exception):
                await sim.close()
        for proc in self.shards:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in self.shards:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(proc.wait(), 10)


def _options_json(options: SimOptions) -> dict[str, Any]:
    return dataclasses.asdict(options)


async def _start_in_process(families: dict[str, SimulatorType],
                            plan: list[tuple[str, list[str]]], options: SimOptions
                            ) -> tuple[list[dict[str, Any]], list[Any]]:
    devices: list[dict[str, Any]] = []
    sims: list[Any] = []
    try:
        for name, addresses in plan:
            sim = await families[name].start(addresses, options)
            sims.append((name, sim))
            for device in sim.devices:
                devices.append({**device, "family": device.get("family", name)})
    except BaseException:
        for _, sim in sims:
            with contextlib.suppress(Exception):
                await sim.close()
        raise
    return devices, sims


async def _start_shard(plan: list[tuple[str, list[str]]], options: SimOptions
                       ) -> tuple[asyncio.subprocess.Process, list[dict[str, Any]]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "webbo.agent.cli.simulate", "--shard",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 28)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps({"plan": plan, "options": _options_json(options)}).encode()
                     + b"\n")
    await proc.stdin.drain()
    line = await proc.stdout.readline()
    if not line:
        code = await proc.wait()
        raise RuntimeError(f"a simulator shard exited with {code} before it was ready")
    return proc, json.loads(line)["devices"]


async def start_farm(registry: Any, *, miners: int, base: str = "127.77.0.1",
                     options: SimOptions | None = None, meters: int = 0,
                     families: Sequence[str] | None = None,
                     per_process: int | None = None) -> Farm:
    """Start every simulator family (or those named) and return the running farm."""
    options = options or SimOptions()
    available = dict(sorted(registry.simulators.items()))
    if families:
        unknown = [f for f in families if f not in available]
        if unknown:
            raise ValueError(f"unknown simulator famil{'y' if len(unknown) == 1 else 'ies'} "
                             f"{', '.join(unknown)} (installed: {', '.join(available)})")
        available = {k: v for k, v in available.items() if k in families}
    miner_families = [f for f in available.values() if f.kind == "miner"]
    meter_families = [f for f in available.values() if f.kind == "meter"]
    if miners and not miner_families:
        raise ValueError("no miner simulator is installed")
    if meters and not meter_families:
        raise ValueError("no meter simulator is installed")
    plan = plan_miners(miner_families, miners, base)
    limit = per_process or miners_per_process()
    farm = Farm([], [], [], [])
    try:
        if miners <= limit:
            devices, sims = await _start_in_process(available, plan, options)
            farm.devices, farm.simulations = devices, sims
        else:
            pairs = [(name, ip) for name, addresses in plan for ip in addresses]
            chunks = [pairs[i:i + limit] for i in range(0, len(pairs), limit)]
            shard_plans = []
            for chunk in chunks:
                grouped: dict[str, list[str]] = {}
                for name, ip in chunk:
                    grouped.setdefault(name, []).append(ip)
                shard_plans.append(list(grouped.items()))
            results = await asyncio.gather(*(_start_shard(p, options) for p in shard_plans),
                                           return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    continue
                proc, devices = result
                farm.shards.append(proc)
                farm.devices.extend(devices)
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                raise errors[0]
        for family in meter_families:
            sim = await family.start(meters, options)
            farm.simulations.append((family.name, sim))
            farm.meters.extend({**m, "family": family.name} for m in sim.devices)
    except BaseException:
        await farm.close()
        raise
    return farm


def _stop_event() -> asyncio.Event:
    """An event set by SIGINT/SIGTERM (installed before the farm is announced)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def _wait_for_signal(stop: asyncio.Event, extra: asyncio.Future[Any] | None = None
                           ) -> None:
    waiter = asyncio.ensure_future(stop.wait())
    waiting = [waiter] + ([extra] if extra is not None else [])
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()


def default_http_port() -> int:
    """The port the simulated web interfaces serve when none is asked for: 80, the real
    firmware's and the drivers' default, where this process may bind it; else 8080 (a normal
    user on a stock Linux may not bind ports below 1024), said on stderr."""
    try:
        lowest = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        lowest = 1024
    if os.geteuid() == 0 or lowest <= 80:
        return 80
    return 8080


async def run(registry: Any, *, miners: int, base: str, options: SimOptions, meters: int,
              families: Sequence[str] | None = None,
              on_ready: Callable[[dict[str, Any]], None] | None = None) -> int:
    """The body of ``webbo simulate``: start the farm, call ``on_ready(inventory)``, print its
    inventory as one JSON line (with ``http_port``: the line means "ready"), serve until
    SIGTERM/SIGINT."""
    started = asyncio.get_running_loop().time()
    stop = _stop_event()
    farm = await start_farm(registry, miners=miners, base=base, options=options, meters=meters,
                            families=families)
    try:
        inventory = {**farm.inventory(), "http_port": options.http_port}
        if on_ready is not None:
            on_ready(inventory)
        sys.stdout.write(json.dumps(inventory, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        log.info("simulated farm ready", miners=len(farm.devices), meters=len(farm.meters),
                 shards=len(farm.shards),
                 seconds=round(asyncio.get_running_loop().time() - started, 2))
        await _wait_for_signal(stop)
    finally:
        await farm.close()
    return 0


# -- shard process ------------------------------------------------------------------------------


async def _shard_main() -> int:
    from webbo.agent.core.plugins import default_registry

    raise_file_limit()
    stop = _stop_event()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 28)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    spec = json.loads(await reader.readline())
    options = SimOptions(**spec["options"])
    registry = default_registry()
    plan = [(name, list(addresses)) for name, addresses in spec["plan"]]
    devices, sims = await _start_in_process(registry.simulators, plan, options)
    sys.stdout.write(json.dumps({"devices": devices}) + "\n")
    sys.stdout.flush()
    parent_gone = asyncio.ensure_future(reader.read())  # EOF: the parent went away
    try:
        await _wait_for_signal(stop, parent_gone)
    finally:
        for _, sim in sims:
            with contextlib.suppress(Exception):
                await sim.close()
    return 0


if __name__ == "__main__" and "--shard" in sys.argv:
    os.environ.setdefault("WEBBO_LOG_LEVEL", "warning")
    from webbo.agent.core.log import configure_logging

    configure_logging("console", "warning")
    sys.exit(asyncio.run(_shard_main()))
