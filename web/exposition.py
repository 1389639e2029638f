"""The fleet in Prometheus's text exposition format (``/metrics``), written by hand for speed.

Families and labels are docs/metrics.md's, one family per numeric field: measurement ``miner``
and field ``hashrate_ths`` become ``miner_hashrate_ths{mac,make,model,group,range}``; booleans
are 1/0 (``miner_online`` is the per-miner up-style state; ``miner_state{state="..."}`` is 1 for
the state a miner is in); the string fields become the labels of one ``<measurement>_info``
series of value 1 (``errors`` and ``error`` are left out: they are long and change often).
Readings are shown only for a device whose last poll worked; the others show their state.
The agent's own figures are ``webbo_internal_*`` with the self-metrics' labels.

Why by hand: prometheus-client takes 1.3–1.9 s to render 200,000 labelled samples where
f-strings take 0.14 s (bench/README.md, ``bench/buffer.py --prometheus``), and 10,000 miners
are about 550,000 samples. The page is rendered in a worker thread from a snapshot of the
device list (each device's reading is an immutable object replaced by each poll), so polling
is not stalled; one render serves the scrapes that arrive while it runs and for a second after.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

from webbo.agent.core.agent import Agent
from webbo.agent.core.contract import SerialBackend
from webbo.agent.core.metric import FieldValue, Metric
from webbo.agent.fleet.discovery import MinerFleet
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.metrics import failure_metric, reading_metrics
from webbo.agent.fleet.model import Reading

__all__ = ["CONTENT_TYPE", "Exposition", "render", "render_chunks"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LEFT_OUT = frozenset({"errors", "error"})
"""String fields that do not become labels."""
REUSE_FOR = 1.0
"""Seconds a rendered page answers further scrapes."""

HELP = {
    "miner_online": "1 when the miner's last poll succeeded (the up-style state)",
    "miner_state": "1 for the miner's state: ok, unreachable, error or new",
    "miner_info": "1; labels: ip, hostname, firmware, work_mode, active_pool",
    "miner_hashrate_ths": "current hashrate, TH/s",
    "miner_hashrate_avg_ths": "average hashrate since start, TH/s",
    "miner_expected_hashrate_ths": "nominal hashrate, TH/s",
    "miner_power_w": "power draw, W",
    "miner_power_limit_w": "power limit, W",
    "miner_efficiency_jth": "power per hashrate, J/TH",
    "miner_temp_env_c": "intake temperature, °C",
    "miner_temp_board_max_c": "hottest board, °C",
    "miner_temp_chip_max_c": "hottest chip, °C",
    "miner_fan_rpm_min": "slowest fan, RPM",
    "miner_fan_rpm_max": "fastest fan, RPM",
    "miner_uptime_s": "seconds since the mining software started",
    "miner_failures": "consecutive failed polls",
    "miner_board_hashrate_ths": "hash board hashrate, TH/s",
    "miner_board_temp_board_c": "hash board temperature, °C",
    "miner_board_temp_chip_c": "hash board chip temperature, °C",
    "miner_pool_active": "1 for the pool currently mined on",
    "meter_online": "1 when the meter's last reading succeeded",
    "meter_power_active_w": "active power, W",
    "meter_voltage_l1_v": "phase 1 voltage, V",
    "meter_voltage_l2_v": "phase 2 voltage, V",
    "meter_voltage_l3_v": "phase 3 voltage, V",
    "meter_energy_active_import_kwh": "A+ since reset, kWh",
    "webbo_internal_buffer_size": "metrics waiting in an output's buffer",
    "webbo_internal_metrics_dropped": "metrics an output dropped since it started",
}


def _escape(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


class _Page:
    """Samples grouped by family (the format wants each family's samples together)."""

    __slots__ = ("blocks", "families", "names")

    def __init__(self) -> None:
        self.families: dict[str, list[str]] = {}
        self.blocks: dict[str, list[bytes]] = {}
        """Lines already encoded, per family (see :meth:`compact`)."""
        self.names: dict[tuple[str, str], str] = {}

    def family(self, name: str) -> list[str]:
        lines = self.families.get(name)
        if lines is None:
            lines = self.families[name] = []
        return lines

    def add(self, metric: Metric) -> None:
        """One metric: a sample per number, a state and an info series for the strings."""
        measurement = metric.name
        labels = ",".join(f'{k}="{_escape(v)}"' for k, v in metric.tag_items() if v)
        strings: list[str] = []
        names = self.names
        for key, value in metric.field_items():
            kind = type(value)
            if kind is str:
                if key == "state":
                    self.family(f"{measurement}_state").append(
                        f'{measurement}_state{{{labels},state="{_escape(value)}"}} 1')
                elif key not in LEFT_OUT:
                    strings.append(f'{key}="{_escape(value)}"')  # type: ignore[arg-type]
                continue
            text = _number(value, kind)
            if text is None:
                continue
            name = names.get((measurement, key))
            if name is None:
                name = names[(measurement, key)] = f"{measurement}_{key}"
            self.family(name).append(f"{name}{{{labels}}} {text}")
        if strings:
            self.family(f"{measurement}_info").append(
                f"{measurement}_info{{{labels},{','.join(strings)}}} 1")

    def compact(self, at_least: int = 2000) -> None:
        """Encode the lines of every family that holds ``at_least`` of them (the lists stay the
        same objects: the miner renderer keeps references to them). At 10,000 miners the lines
        as small strings take twice the page's 45 MB; encoded as they come, the peak stays
        near the page itself."""
        for name, lines in self.families.items():
            if len(lines) >= at_least:
                lines.append("")
                self.blocks.setdefault(name, []).append("\n".join(lines).encode())
                lines.clear()

    def chunks(self) -> list[bytes]:
        """The page as encoded blocks, each family's together after its HELP and TYPE."""
        self.compact(1)
        chunks: list[bytes] = []
        for name, blocks in self.blocks.items():
            help_text = HELP.get(name) or f"{name} (see docs/metrics.md)"
            chunks.append(f"# HELP {name} {help_text}\n# TYPE {name} gauge\n".encode())
            chunks.extend(blocks)
        self.blocks = {}
        return chunks


def _number(value: FieldValue, kind: type) -> str | None:
    if kind is float:
        return repr(value) if math.isfinite(value) else None  # type: ignore[arg-type]
    if kind is bool:
        return "1" if value else "0"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return repr(float(value)) if math.isfinite(value) else None
    return None


def _meter_metric(meter: dict[str, Any]) -> Metric:
    tags = {"serial": str(meter.get("serial_number", "")),
            "model": str(meter.get("device_model", "")), "port": str(meter.get("port", "")),
            "address": str(meter.get("address", ""))}
    ok = meter.get("state") == "ok"
    fields: dict[str, FieldValue] = {"online": ok}
    if ok:
        fields.update({k: v for k, v in (meter.get("values") or {}).items()
                       if isinstance(v, int | float)})
    else:
        fields["failures"] = int(meter.get("failures") or 0)
    return Metric("meter", tags, fields, 0)


# The miner families, as fleet/metrics.py writes the fields (a test renders both ways and
# compares): (field, attribute of Reading, digits to round to, or None for integers).
_MINER_NUMBERS = (
    ("hashrate_ths", "hashrate_ths", 3), ("hashrate_avg_ths", "hashrate_avg_ths", 3),
    ("expected_hashrate_ths", "expected_hashrate_ths", 3), ("power_w", "power_w", 1),
    ("power_limit_w", "power_limit_w", 1), ("efficiency_jth", "efficiency_jth", 2),
    ("temp_env_c", "temp_env_c", 1), ("temp_board_max_c", "temp_board_max_c", 1),
    ("temp_chip_max_c", "temp_chip_max_c", 1),
)
_MINER_INTEGERS = ("fan_psu_rpm", "uptime_s", "led", "is_mining", "accepted", "rejected",
                   "hw_errors")
_BOARD_NUMBERS = (
    ("hashrate_ths", 3), ("expected_hashrate_ths", 3), ("temp_board_c", 1), ("temp_chip_c", 1),
    ("chips", None), ("expected_chips", None), ("hw_errors", None), ("frequency_mhz", 1),
)


def _labels(*pairs: tuple[str, str]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in pairs if v)


class _Miners:
    """The polled miners straight from their readings: the fastest path (10,000 miners are
    about 550,000 samples), the same lines as :meth:`_Page.add` of their metrics."""

    def __init__(self, page: _Page) -> None:
        family = page.family
        self.online, self.state, self.info = (family("miner_online"), family("miner_state"),
                                              family("miner_info"))
        self.numbers = [(attr, digits, f"miner_{name}", family(f"miner_{name}"))
                        for name, attr, digits in _MINER_NUMBERS]
        self.fans = [(f"miner_{n}", family(f"miner_{n}"))
                     for n in ("fan_rpm_min", "fan_rpm_max", "fan_count")]
        self.integers = [(name, f"miner_{name}", family(f"miner_{name}"))
                         for name in _MINER_INTEGERS]
        self.errors = family("miner_error_count")
        self.boards = [(name, digits, f"miner_board_{name}", family(f"miner_board_{name}"))
                       for name, digits in _BOARD_NUMBERS]
        self.pool_active, self.pool_accepted, self.pool_rejected, self.pool_info = (
            family("miner_pool_active"), family("miner_pool_accepted"),
            family("miner_pool_rejected"), family("miner_pool_info"))

    def add(self, device: Device, reading: Reading) -> None:
        mac, group, range_ = device.mac, device.group, device.range
        base = _labels(("mac", mac), ("group", group), ("range", range_))
        tail = "{" + _labels(("mac", mac), ("group", group), ("range", range_),
                             ("make", device.make), ("model", device.model)) + "} "
        self.online.append("miner_online" + tail + "1")
        self.state.append("miner_state" + tail[:-2] + ',state="ok"} 1')
        for attr, digits, name, lines in self.numbers:
            value = getattr(reading, attr)
            if value is not None:
                value = round(float(value), digits)
                if value - value == 0.0:  # not NaN or infinite
                    lines.append(f"{name}{tail}{value!r}")
        fans = [f for f in reading.fans_rpm if f is not None]
        if fans:
            for (name, lines), value in zip(self.fans, (min(fans), max(fans), len(fans)),
                                            strict=True):
                lines.append(name + tail + str(value))
        for attr, name, lines in self.integers:
            value = getattr(reading, attr)
            if value is not None:
                lines.append(name + tail + str(int(value)))
        self.errors.append("miner_error_count" + tail + str(len(reading.errors)))
        strings = [("ip", device.ip), ("hostname", reading.hostname or device.hostname),
                   ("firmware", reading.firmware or device.firmware),
                   ("work_mode", reading.work_mode.value if reading.work_mode else ""),
                   ("active_pool", reading.active_pool or "")]
        self.info.append("miner_info" + tail[:-2] + "," + ",".join(
            f'{k}="{_escape(v)}"' for k, v in strings if v) + "} 1")
        for board in reading.boards:
            btail = "{" + base + f',board="{board.index}"}} '
            for name, digits, family_name, lines in self.boards:
                value = getattr(board, name)
                if value is None:
                    continue
                if digits is None:
                    lines.append(f"{family_name}{btail}{int(value)}")
                    continue
                value = round(float(value), digits)
                if value - value == 0.0:
                    lines.append(f"{family_name}{btail}{value!r}")
        for pool in reading.pools:
            ptail = "{" + base + f',index="{pool.index}"}} '
            self.pool_active.append("miner_pool_active" + ptail + ("1" if pool.active else "0"))
            if pool.accepted is not None:
                self.pool_accepted.append("miner_pool_accepted" + ptail + str(pool.accepted))
            if pool.rejected is not None:
                self.pool_rejected.append("miner_pool_rejected" + ptail + str(pool.rejected))
            info = f'url="{_escape(pool.url)}",user="{_escape(pool.user)}"'
            if pool.status:
                info += f',status="{_escape(pool.status)}"'
            self.pool_info.append("miner_pool_info" + ptail[:-2] + "," + info + "} 1")


def render(devices: Sequence[Device], meters: Iterable[dict[str, Any]],
           internal: Iterable[Metric], *, by_metrics: bool = False) -> bytes:
    """The page for these devices, meters and self-metrics, in one piece."""
    return b"".join(render_chunks(devices, meters, internal, by_metrics=by_metrics))


def render_chunks(devices: Sequence[Device], meters: Iterable[dict[str, Any]],
                  internal: Iterable[Metric], *, by_metrics: bool = False) -> list[bytes]:
    """The page for these devices, meters and self-metrics, a block per family (pure: any
    thread may call it). ``by_metrics`` renders the miners through their metrics (the
    reference the fast path is tested against)."""
    page = _Page()
    miners = _Miners(page)
    for count, device in enumerate(devices, 1):
        if count % 200 == 0:
            page.compact()
        reading = device.reading
        if device.state == "ok" and reading is not None:
            if by_metrics:
                for metric in reading_metrics(device, reading):
                    page.add(metric)
            else:
                miners.add(device, reading)
        else:
            page.add(failure_metric(device, 0))
    for meter in meters:
        page.add(_meter_metric(meter))
    for metric in internal:
        page.add(metric)
    return page.chunks()


class Exposition:
    """Renders the agent's page off the event loop; concurrent scrapes share one render."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._page: list[bytes] = []
        self._made_at = -REUSE_FOR
        self._rendering: asyncio.Future[list[bytes]] | None = None
        self.last_render_s = 0.0

    async def page(self) -> list[bytes]:
        """The page as blocks (stream them; joining would copy ~45 MB at 10,000 miners)."""
        if time.monotonic() - self._made_at < REUSE_FOR:
            return self._page
        if self._rendering is not None:
            return await asyncio.shield(self._rendering)
        self._page = []  # the old page's memory goes before the new one is made
        future: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()
        self._rendering = future
        try:
            fleet = self.agent.service(MinerFleet)
            devices = fleet.inventory.devices() if fleet is not None else []
            backend = self.agent.service(SerialBackend)  # type: ignore[type-abstract]
            meters = backend.meters() if backend is not None else []
            internal = self.agent.internal_metrics()
            started = time.perf_counter()
            self._page = await asyncio.to_thread(render_chunks, devices, meters, internal)
            self.last_render_s = time.perf_counter() - started
            self._made_at = time.monotonic()
            future.set_result(self._page)
            return self._page
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters re-raise it
            raise
        finally:
            self._rendering = None
