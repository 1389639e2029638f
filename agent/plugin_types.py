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
    from webbo.agent.config import Config, ConfigError
    from webbo.agent.metric import FieldValue, Metric

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
    """For miner drivers: the shared, bounded :class:`webbo.agent.net.Net`."""


@runtime_checkable
class Input(Protocol):
    """A gather input. ``start``/``stop`` are optional (a service input that owns a serial bus
    starts its task in ``start``); ``gather`` is called once per interval, never twice at once."""

    async def gather(self, acc: Accumulator) -> None: ...


@runtime_checkable
class Output(Protocol):
    """An output. ``write`` raises one of :mod:`webbo.agent.errors`' ``WriteError`` classes so
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
    """Control actions the API exposes (manual §3.5) plus the typed extras a driver may allow."""

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
    action: Action
    params: dict[str, Any] = field(default_factory=dict)
    agent: Any = None


@dataclass(frozen=True)
class SimulatorType:
    """A family of simulated devices. ``start`` is awaited with the options of ``webbo simulate``
    and returns a running simulation object with ``devices`` (JSON-ready dicts) and
    ``async close()``."""

    name: str
    kind: Literal["miner", "meter"]
    start: Callable[..., Awaitable[Any]]
    description: str = ""


class SerialBackend(Protocol):
    """What ``/api/serial/*`` calls (manual §3.5.8–3.5.9)."""

    async def get_ports(self, include_all: bool = False) -> list[str]: ...

    def get_devices(self) -> list[dict[str, Any]]: ...

    async def add_device(self, device: dict[str, Any]) -> bool: ...

    async def delete_device(self, serial_number: str) -> bool: ...
