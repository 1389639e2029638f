"""The objects plugins hand to the agent, and the interfaces the agent expects back.

These are small on purpose. An input type is a name, a config Struct and a factory; the factory
gets the decoded config and a :class:`PluginContext` and returns an object with the methods of
:class:`Input` (a gather input) or :class:`MinerDriver` (a miner input). Output types work the
same way with :class:`Output`.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import structlog

if TYPE_CHECKING:
    from webbo.agent.core.config import Config, ConfigError
    from webbo.agent.core.metric import FieldValue, Metric

__all__ = [
    "Accumulator",
    "Action",
    "ControlRequest",
    "Input",
    "InputType",
    "Output",
    "OutputType",
    "PluginContext",
    "SerialBackend",
    "SimOptions",
    "Simulation",
    "SimulatorType",
]


class Accumulator(Protocol):
    """Where an input puts what it gathered."""

    def add(self, metric: Metric) -> None:
        """Add one metric (the input's extra tags are applied for it)."""

    def add_fields(
        self,
        name: str,
        tags: dict[str, str],
        fields: dict[str, FieldValue],
        time: int | None = None,
    ) -> None:
        """Build and add one metric."""

    def add_error(self, error: BaseException | str) -> None:
        """Record a failure of this gather (counted in self-metrics and logged), but go on."""


@dataclass
class PluginContext:
    """What a plugin factory may use: the whole config (read-only), the state folder, a logger
    bound to the instance, and the running agent (None in ``webbo config check``)."""

    config: Config
    state_dir: Path
    log: structlog.typing.FilteringBoundLogger
    agent: Any = None
    net: Any = None
    """For miner drivers: the shared, bounded :class:`webbo.agent.fleet.net.Net`."""


@runtime_checkable
class Input(Protocol):
    """A gather input. ``start``/``stop`` are optional (a service input that owns a serial bus
    starts its task in ``start``); ``gather`` is called once per interval, never twice at once."""

    async def gather(self, acc: Accumulator) -> None: ...


@runtime_checkable
class Output(Protocol):
    """An output. ``write`` raises one of :mod:`webbo.agent.core.errors`' ``WriteError`` classes so
    the agent can decide: retry later, split the batch, or drop it."""

    async def connect(self) -> None: ...

    async def write(self, metrics: Sequence[Metric]) -> None: ...

    async def close(self) -> None: ...


CheckAll = Callable[[list[Any], "Config"], Iterable["ConfigError"]]


@dataclass(frozen=True)
class InputType:
    """An input plugin: ``[[inputs.<name>]]`` tables are decoded with ``config`` and handed to
    ``factory``. ``kind`` is "gather" for an :class:`Input`, "miner" for a miner driver used by
    the sweep of the ``[network]`` ranges."""

    name: str
    config: type
    factory: Callable[[Any, PluginContext], Any]
    description: str = ""
    kind: Literal["gather", "miner"] = "gather"
    check_all: CheckAll | None = None
    """Checks across all instances of this input (e.g. two meters on one address)."""


@dataclass(frozen=True)
class OutputType:
    """An output plugin: ``[[outputs.<name>]]`` tables are decoded with ``config`` and handed to
    ``factory``."""

    name: str
    config: type
    factory: Callable[[Any, PluginContext], Output]
    description: str = ""
    check_all: CheckAll | None = None


class Action(enum.StrEnum):
    """Control actions (manual §3.5), what they take and what they answer.

    ==================  ======================================  ===============================
    action              ``params``                              result (the API's ``payload``)
    ==================  ======================================  ===============================
    reboot              {}                                      None
    get_led             {}                                      0 or 1 (:class:`LedStatus`)
    set_led             {"status": 0 | 1}                       None
    get_work_mode       {}                                      "normal" | "sleep" |
                                                                "low_power" | "unknown"
    set_work_mode       {"mode": "normal"|"sleep"|"low_power"}  None, once the device *did* it
                                                                (read back where possible)
    get_pools           {}                                      three ``{"address", "worker",
                                                                "passwd"}`` dicts; an empty
                                                                slot has empty strings
    set_pools           {"pools": [three such dicts]}           None. The core has already
                                                                merged null slots and applied
                                                                the worker suffix: write all
                                                                three as given, then read back
    command             {"name": str, "args": {...}}            whatever the allow-listed
                                                                driver command answers
    ==================  ======================================  ===============================

    Failures raise :class:`~webbo.agent.core.errors.DeviceError` with a message for the operator
    (e.g. "set_work_mode: low_power is not supported by Antminer S9"); a write whose effect is
    unknown (timeout or reset after sending) raises
    :class:`~webbo.agent.core.errors.OutcomeUnknownError` and is never retried blindly.
    """

    REBOOT = "reboot"
    GET_LED = "get_led"
    SET_LED = "set_led"
    GET_WORK_MODE = "get_work_mode"
    SET_WORK_MODE = "set_work_mode"
    GET_POOLS = "get_pools"
    SET_POOLS = "set_pools"
    COMMAND = "command"
    """A named, driver-allow-listed extra (e.g. Whatsminer ``set_target_freq``)."""


@dataclass
class ControlRequest:
    """One action for one device: what :func:`webbo_control` implementations receive."""

    device: Any
    """The inventory entry (:class:`webbo.agent.fleet.inventory.Device`)."""
    action: Action
    params: dict[str, Any] = field(default_factory=dict)
    driver: Any = None
    """The driver instance that serves this device at its place (credentials included), as
    chosen by the miner fleet; None if no configured driver serves it."""
    agent: Any = None


@dataclass
class SimOptions:
    """Options of ``webbo simulate`` that every simulator family receives."""

    seed: int = 0
    http_port: int = 8080
    """Port of the simulated miners' web interface (80 on real firmware; 80 needs root)."""
    faults: dict[str, float] = field(default_factory=dict)
    """Fault name → share of this family's devices that show it, e.g. ``{"silent": 0.02,
    "garbage": 0.01, "slow": 0.01, "refuse": 0.01}`` (chosen deterministically by seed)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Family-specific options (e.g. meters: ``line_speed``, ``reply_delay``)."""


class Simulation(Protocol):
    """A running family of simulated devices."""

    devices: list[dict[str, Any]]
    """JSON-ready descriptions: miners at least ``ip``, ``mac``, ``make``, ``model``; meters
    ``port``, ``serial_number``, ``device_model``, ``address``."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class SimulatorType:
    """A family of simulated devices (``webbo simulate``, the demo, the tests).

    * ``kind="miner"``: ``await start(addresses, options)`` runs one device per loopback address
      (127.0.0.0/8 only) and returns a :class:`Simulation`. ``weight`` is the family's share of a
      mixed farm of ``--miners N``.
    * ``kind="meter"``: ``await start(count, options)`` runs ``count`` meters (on pseudo-terminals)
      and returns a :class:`Simulation`.
    """

    name: str
    kind: Literal["miner", "meter"]
    start: Callable[..., Awaitable[Any]]
    description: str = ""
    weight: float = 1.0


class SerialBackend(Protocol):
    """What ``/api/serial/*`` calls (manual §3.5.8–3.5.9)."""

    async def get_ports(self, include_all: bool = False) -> list[str]: ...

    def get_devices(self) -> list[dict[str, Any]]: ...

    async def add_device(self, device: dict[str, Any]) -> bool: ...

    async def delete_device(self, serial_number: str) -> bool: ...
