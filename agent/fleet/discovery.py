"""The miner fleet: sweep the ``[network]`` ranges, identify what answers, poll what is known.

Per address, exactly as the manual (§1.5.1) describes:

1. known in the inventory → poll it with the driver that identified it;
2. otherwise identify it: the configured miner drivers are asked in turn (priority band, then
   name), sharing one memoised :class:`~webbo.agent.fleet.net.Probe`, so cheap probes come
   first and are made once; the first claim wins and the device is polled at once;
3. an address where nothing accepts a connection is left alone for ``dead_address_backoff``
   (the manual's minute); one that answers but that no driver claims is recorded as an unknown
   device with what it said.

A known device is re-identified after two failed polls in a row (another device may have taken
its address) and every ``reidentify_every`` polls (to notice a swap the poll itself cannot see).

This module knows no make: drivers come from the ``kind="miner"`` input plugins.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import structlog

from webbo.agent.core.config import Config, PluginInstance, config_key
from webbo.agent.core.contract import Accumulator, CoreInput, PluginContext
from webbo.agent.core.errors import DeviceError
from webbo.agent.fleet.addresses import AddressSummary, summarise
from webbo.agent.fleet.driver import DriverContext, MinerDriver, MinerInputConfig
from webbo.agent.fleet.history import MinerHistory
from webbo.agent.fleet.inventory import Device, Inventory, Place, RangeMap
from webbo.agent.fleet.metrics import failure_metric, reading_metrics
from webbo.agent.fleet.model import Identity
from webbo.agent.fleet.net import (
    DeviceTimeout,
    DeviceUnreachable,
    Net,
    Probe,
    int_to_ip,
    ip_to_int,
)

log = structlog.get_logger("webbo.discovery")

KEEP_UNUSED_FOR = 300.0
"""Seconds a kept connection may go unused before the sweep closes it (Whatsminer API v3
closes an idle connection after 300 s)."""
REIDENTIFY_AFTER_FAILURES = 2
REIDENTIFY_EVERY_POLLS = 30
INVENTORY_FILE = "inventory.json"


@dataclass
class DriverInstance:
    """One ``[[inputs.NAME]]`` table of a miner driver, built."""

    inst: PluginInstance
    driver: MinerDriver

    @property
    def name(self) -> str:
        return self.inst.name

    @property
    def order(self) -> tuple[int, str]:
        """Identification order: the priority band, then the name (deterministic)."""
        return (self.driver.priority, self.name)

    def rank(self, place: Place | None) -> int | None:
        cfg = self.inst.config
        if not isinstance(cfg, MinerInputConfig):
            return 2
        if place is None:
            return 2 if not (cfg.groups or cfg.ranges) else None
        return cfg.scope_rank(place.group, place.group_id, place.range, place.range_id)


YOUNG_GC_THRESHOLD = 100_000
"""Allocations between two collections of the youngest GC generation (CPython's default: 700)."""


def roomier_young_generation() -> None:
    """Collect the youngest generation less often.

    A sweep keeps a thousand connections in flight and allocates a few hundred thousand
    short-lived objects per thousand miners (replies, readings, metrics), nearly all freed by
    reference counting. With CPython's default threshold the cyclic collector ran ~900 times
    in one identification sweep of 10,000 miners, each time walking the in-flight state: a
    fifth of the sweep's CPU. At 10,000 allocations apart it still ran ~25 times per poll
    cycle of 10,000 miners, and twice a second-generation pass over the cycle's metrics: 12-15 %
    of the cycle's CPU (bench/README.md). A hundred thousand apart, it runs twice per cycle
    (0.13 s instead of 0.46 s at 10,000 miners); what it may leave for later is at most that
    many objects (a few MB). A threshold someone already raised, or a disabled collector, is
    left alone.
    """
    gen0, gen1, gen2 = gc.get_threshold()
    if 0 < gen0 < YOUNG_GC_THRESHOLD:
        gc.set_threshold(YOUNG_GC_THRESHOLD, gen1, gen2)


@dataclass
class SweepStats:
    addresses: int = 0
    polled_ok: int = 0
    polled_failed: int = 0
    identified: int = 0
    unknown: int = 0
    no_answer: int = 0
    backing_off: int = 0
    duration_s: float = 0.0


class MinerFleet:
    """Long-lived (survives reloads): the inventory, the bounded network, the driver instances.

    The agent's service for miners: it runs the sweep input while ranges and drivers are
    configured, and the controller finds a device's driver here (:meth:`driver_for`).
    ``persistent=False`` keeps the inventory in memory only (``webbo scan``).
    """

    def __init__(self, context: PluginContext, persistent: bool = True) -> None:
        roomier_young_generation()
        config = context.config
        self.context = context
        self.input_types = context.inputs
        self.inventory = Inventory(config.state_dir / INVENTORY_FILE if persistent else None)
        self._loaded = False
        self.net = self._make_net(config)
        self.config = config
        self.drivers: list[DriverInstance] = []
        self.ranges = RangeMap(config.network)
        self.last_sweep = SweepStats()
        self.sweeps = 0
        self.history = MinerHistory()
        """The recent past of each miner, for the web UI's charts (memory only)."""
        self._driver_key = b""
        self._chosen: dict[tuple[str, str, str], DriverInstance | None] = {}
        self._summaries: dict[tuple[str | None, str | None], tuple[float, AddressSummary]] = {}
        self._told = ""
        self.after_sweep: list[Callable[[], None]] = []
        """Called after every sweep (the alert engine evaluates then); quick, never raising."""

    @staticmethod
    def _make_net(config: Config) -> Net:
        agent = config.agent
        return Net(agent.concurrency, float(agent.connect_timeout), float(agent.timeout))

    # -- configuration ----------------------------------------------------------------------

    def miner_instances(self, config: Config) -> list[PluginInstance]:
        """The ``[[inputs.*]]`` tables of miner drivers."""
        types = self.input_types
        return [i for i in config.inputs if i.name in types and types[i.name].kind == "miner"]

    def configure(self, config: Config) -> list[PluginInstance]:
        """Adopt a (re)loaded config: new ranges, and new driver instances if they changed.
        Returns the driver tables in force. The first call also reads the saved inventory
        (so a service made long before the agent starts reads the file as it is then)."""
        if not self._loaded:
            self._loaded = True
            self.inventory.load()
        agent_cfg, old = config.agent, self.config.agent
        if (agent_cfg.concurrency, agent_cfg.connect_timeout, agent_cfg.timeout) != (
                old.concurrency, old.connect_timeout, old.timeout):
            self.net.close_idle()
            self.net = self._make_net(config)
            self._driver_key = b""  # drivers hold the net: rebuild them
        self.config = config
        self.ranges = RangeMap(config.network)
        instances = self.miner_instances(config)
        key = b"|".join(i.key for i in instances)
        if key != self._driver_key:
            self.drivers = self._build_drivers(config, instances)
            self._driver_key = key
        self._chosen.clear()
        self._summaries.clear()
        if self.problem != self._told:
            self._told = self.problem
            if self.problem:
                log.warning("nothing is swept", reason=self.problem)
        return instances

    def _build_drivers(self, config: Config, instances: list[PluginInstance]
                       ) -> list[DriverInstance]:
        built: list[DriverInstance] = []
        for inst in instances:
            context = DriverContext(config=config, state_dir=config.state_dir,
                                    log=log.bind(driver=inst.label), shared=self.context.shared,
                                    edits=self.context.edits, inputs=self.input_types,
                                    net=self.net)
            try:
                driver = self.input_types[inst.name].factory(inst.config, context)
            except Exception as exc:
                log.error("miner driver failed to start", driver=inst.label, error=repr(exc))
                continue
            if not isinstance(driver, MinerDriver):
                log.error("miner driver skipped: not a MinerDriver", driver=inst.label,
                          got=type(driver).__name__)
                continue
            if not driver.ports:
                log.error("miner driver skipped: it declares no ports", driver=inst.label)
                continue
            built.append(DriverInstance(inst, driver))
        built.sort(key=lambda d: d.order)
        return built

    @property
    def ports(self) -> tuple[int, ...]:
        ports: set[int] = set()
        for item in self.drivers:
            ports.update(item.driver.ports)
        return tuple(sorted(ports))

    def drivers_for(self, place: Place | None) -> list[DriverInstance]:
        """Driver instances that serve ``place``, one per driver name (the most specific),
        in identification order."""
        best: dict[str, tuple[int, DriverInstance]] = {}
        for item in self.drivers:
            rank = item.rank(place)
            if rank is None:
                continue
            current = best.get(item.name)
            if current is None or rank < current[0]:
                best[item.name] = (rank, item)
        chosen = [item for _, item in best.values()]
        chosen.sort(key=lambda d: d.order)
        return chosen

    def driver_for(self, device: Device) -> MinerDriver | None:
        """The driver that owns ``device`` at its current place, or None."""
        key = (device.driver, device.group_id, device.range_id)
        if key not in self._chosen:
            place = self.ranges.locate(ip_to_int(device.ip)) if device.ip else None
            match = [d for d in self.drivers_for(place) if d.name == device.driver]
            self._chosen[key] = match[0] if match else None
        chosen = self._chosen[key]
        return chosen.driver if chosen is not None else None

    def inputs(self, config: Config) -> list[CoreInput]:
        """The sweep, as an input of the agent, while there is something to sweep (ranges,
        and at least one miner driver configured)."""
        instances = self.configure(config)
        if not instances or self.ranges.size == 0:
            return []
        key = b"miners|" + config_key([
            config.network, config.agent.interval, config.agent.jitter,
            config.agent.concurrency, config.agent.connect_timeout, config.agent.timeout,
            config.agent.dead_address_backoff,
        ]) + b"|" + b"|".join(i.key for i in instances)
        return [(key, "miners", lambda: MinerSweepInput(self))]

    # -- the sweep ----------------------------------------------------------------------------

    async def sweep(self, acc: Accumulator | None,
                    on_address: Callable[[], None] | None = None) -> SweepStats:
        """Visit every address of every range once (bounded concurrency). ``on_address`` is
        called after each address (``webbo scan``'s progress bar)."""
        started = time.perf_counter()
        stats = SweepStats()
        self.inventory.prune(self.ranges)
        addresses: Iterator[tuple[int, Place]] = self.ranges.addresses()
        workers = min(self.config.agent.concurrency, max(1, self.ranges.size))

        async def worker() -> None:
            for ip, place in addresses:
                stats.addresses += 1
                try:
                    await self.visit(ip, place, acc, stats)
                except Exception:  # never let one address stop the sweep
                    log.exception("address visit failed", ip=int_to_ip(ip))
                if on_address is not None:
                    on_address()

        await asyncio.gather(*(worker() for _ in range(workers)))
        stats.duration_s = time.perf_counter() - started
        self.last_sweep = stats
        # A kept connection nobody used for this long serves no device the sweep still
        # polls (and the device has closed it anyway): give its file back.
        self.net.close_idle(unused_for=max(KEEP_UNUSED_FOR, 3 * float(self.config.agent.interval)))
        self.sweeps += 1
        for listener in self.after_sweep:
            try:
                listener()
            except Exception:
                log.exception("after-sweep listener failed")
        if self.inventory.dirty and self.inventory.path is not None:
            await asyncio.to_thread(self.inventory.save)
        return stats

    async def visit(self, ip_int: int, place: Place | None, acc: Accumulator | None,
                    stats: SweepStats) -> None:
        ip = int_to_ip(ip_int)
        device = self.inventory.at(ip)
        if device is not None:
            if device.failures < REIDENTIFY_AFTER_FAILURES and \
                    device.polls < REIDENTIFY_EVERY_POLLS:
                await self.poll(device, acc, stats)
                return
        elif self.inventory.is_backing_off(ip_int, time.monotonic()):
            stats.backing_off += 1
            return
        await self.identify(ip_int, place, acc, stats, device)

    async def identify(self, ip_int: int, place: Place | None, acc: Accumulator | None,
                       stats: SweepStats, known: Device | None = None) -> Device | None:
        ip = int_to_ip(ip_int)
        probe = Probe(self.net, ip, self.ports)
        try:
            return await self._identify(probe, ip_int, place, acc, stats, known)
        finally:
            probe.close()  # what the port checks left open and nothing used

    async def _identify(self, probe: Probe, ip_int: int, place: Place | None,
                        acc: Accumulator | None, stats: SweepStats,
                        known: Device | None) -> Device | None:
        ip = probe.ip
        open_ports = await probe.open_ports()
        if not open_ports:
            if known is not None:
                self._failed(known, "unreachable", f"{ip}: no answer on ports "
                             f"{', '.join(map(str, self.ports))}", acc, stats)
            else:
                stats.no_answer += 1
                self.inventory.back_off(ip_int, float(self.config.agent.dead_address_backoff),
                                        time.monotonic())
            return None
        identity = await self.claim(probe, place)
        if identity is None:
            stats.unknown += 1
            if known is not None:
                if probe.timed_out:
                    self._failed(known, "timeout", f"{ip} accepts connections but does not "
                                 "answer in time", acc, stats)
                else:
                    self._failed(known, "error", f"{ip} answers, but no driver recognises it",
                                 acc, stats)
            self.inventory.record_unknown(ip, open_ports, probe.said,
                                          "timeout" if probe.timed_out else "unrecognised")
            self.inventory.back_off(ip_int, float(self.config.agent.dead_address_backoff),
                                    time.monotonic())
            log.debug("unknown device", ip=ip, ports=sorted(open_ports), said=probe.said)
            return None
        device = self.inventory.learn(identity, ip, place)
        if known is None or known is not device:
            stats.identified += 1
        await self.poll(device, acc, stats)
        return device

    @property
    def identify_budget(self) -> float:
        """Longest time one address may take to identify: twice ``[agent] timeout``. A device
        that answers, but too slowly for every driver's questions, must not hold the sweep up
        for one full timeout per question."""
        return 2 * float(self.config.agent.timeout)

    async def claim(self, probe: Probe, place: Place | None) -> Identity | None:
        """Ask each driver serving ``place``, in priority order; the first claim wins."""
        budget = self.identify_budget
        deadline = time.monotonic() + budget
        for item in self.drivers_for(place):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                probe.note(f"identification gave up after {budget:g} s")
                return None
            try:
                async with asyncio.timeout(remaining):
                    identity = await item.driver.identify(probe)
            except TimeoutError:
                probe.timed_out = True
                probe.note(f"{item.name}: no complete answer within {budget:g} s")
                return None
            except DeviceTimeout as exc:
                probe.timed_out = True
                probe.note(f"{item.name}: {exc}")
                continue
            except DeviceError as exc:
                probe.note(f"{item.name}: {exc}")
                continue
            except Exception as exc:
                log.exception("driver identify failed", driver=item.name, ip=probe.ip)
                probe.note(f"{item.name}: {exc!r}")
                continue
            if identity is not None:
                return identity
        return None

    async def poll(self, device: Device, acc: Accumulator | None, stats: SweepStats) -> bool:
        driver = self.driver_for(device)
        if driver is None:
            self._failed(device, "error",
                         f"no [[inputs.{device.driver}]] serves this device's range", acc, stats)
            return False
        try:
            reading = await driver.poll(device)
        except DeviceUnreachable as exc:
            self._failed(device, "unreachable", str(exc), acc, stats)
            return False
        except DeviceTimeout as exc:
            self._failed(device, "timeout", str(exc), acc, stats)
            return False
        except DeviceError as exc:
            self._failed(device, "error", str(exc), acc, stats)
            return False
        except Exception as exc:
            log.exception("driver poll failed", driver=device.driver, mac=device.mac)
            self._failed(device, "error", f"driver error: {exc!r}", acc, stats)
            return False
        if device.failures:
            log.info("miner answers again", mac=device.mac, ip=device.ip,
                     failed_s=round(time.time() - device.failing_since, 1))
        device.reading = reading
        device.state = "ok"
        device.error = ""
        device.failures = 0
        device.failing_since = 0.0
        device.polls += 1
        device.last_seen = time.time()
        stats.polled_ok += 1
        self.history.record(device.mac, reading.hashrate_ths, reading.temp_board_max_c,
                            reading.temp_chip_max_c)
        if acc is not None:
            for metric in reading_metrics(device, reading):
                acc.add(metric)
        return True

    def _failed(self, device: Device, state: str, error: str, acc: Accumulator | None,
                stats: SweepStats) -> None:
        if not device.failures:
            device.failing_since = time.time()
            log.warning("miner failing", mac=device.mac, ip=device.ip, state=state,
                        error=error)
        device.state = state
        device.error = error
        device.failures += 1
        stats.polled_failed += 1
        if acc is not None:
            acc.add(failure_metric(device, time.time_ns()))

    # -- status -------------------------------------------------------------------------------

    # -- what an operator must be told ------------------------------------------------------

    @property
    def problem(self) -> str:
        """Why ranges that are set are not swept, or "" when they are (or there are none)."""
        return self._problem(self.ranges.size > 0, bool(self.drivers))

    def problem_with(self, config: Config) -> str:
        """:attr:`problem` as it will be once ``config`` is in force (set-network's answer)."""
        return self._problem(RangeMap(config.network).size > 0,
                             bool(self.miner_instances(config)))

    def _problem(self, ranges: bool, drivers: bool) -> str:
        if ranges and not drivers:
            types = sorted(n for n, t in self.input_types.items() if t.kind == "miner")
            return ("ranges are set but no miner driver is configured, so nothing is swept: "
                    "add an [[inputs.NAME]] table for your miners' make to webbo.toml"
                    + (f" (installed drivers: {', '.join(types)})" if types else
                       " (no miner driver plugin is installed: see `webbo plugins`)"))
        return ""

    def addresses(self, group: str | None = None, range_: str | None = None
                  ) -> AddressSummary:
        """The state of every address of the ranges (or of one group or range). Cached for a
        second: the Miners page and the API ask often, the sweep changes it once a cycle."""
        key = (group, range_)
        now = time.monotonic()
        cached = self._summaries.get(key)
        if cached is not None and now - cached[0] < 1.0:
            return cached[1]
        summary = summarise(self.inventory, self.ranges, group, range_)
        if len(self._summaries) > 64:
            self._summaries.clear()
        self._summaries[key] = (now, summary)
        return summary

    def status(self) -> dict[str, Any]:
        return {
            **self.inventory.status(),
            "problem": self.problem,
            "addresses_by_state": self.addresses().counts,
            "addresses": self.ranges.size,
            "sweeps": self.sweeps,
            "last_sweep": dataclasses.asdict(self.last_sweep),
            "drivers": [d.inst.label for d in self.drivers],
            "open_sockets_peak": self.net.peak_open,
            "connections_kept": self.net.idle,
        }

    async def close(self) -> None:
        if self.inventory.path is not None:
            self.inventory.dirty = True
            await asyncio.to_thread(self.inventory.save)
        await self.net.close()


class MinerSweepInput:
    """The core input that runs one sweep per interval and reports the fleet's figures."""

    def __init__(self, fleet: MinerFleet) -> None:
        self.fleet = fleet

    async def gather(self, acc: Accumulator) -> None:
        await self.fleet.sweep(acc)

    def internal_fields(self) -> dict[str, Any]:
        last = self.fleet.last_sweep
        by_state = self.fleet.inventory.status()["by_state"]
        return {
            "addresses": last.addresses,
            "devices_seen": last.polled_ok + last.polled_failed,
            "devices_ok": last.polled_ok,
            "devices_failed": last.polled_failed,
            "devices_identified": last.identified,
            "unknown_devices": last.unknown,
            "no_answer": last.no_answer,
            "inventory": len(self.fleet.inventory),
            "inventory_unreachable": by_state.get("unreachable", 0),
            "sweep_time_s": round(last.duration_s, 6),
            "open_sockets_peak": self.fleet.net.peak_open,
            "connections_kept": self.fleet.net.idle,
        }
