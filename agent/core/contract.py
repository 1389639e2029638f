"""The objects plugins hand to the agent, and the interfaces the agent expects back.

These are small on purpose. An input type is a name, a config Struct and a factory; the factory
gets the decoded config and a :class:`PluginContext` and returns an object with the methods of
:class:`Input`. Output types work the same way with :class:`Output`. A *service* is a long-lived
object beside the inputs (the miner fleet, a serial-bus backend, the alert engine); it may ask
the agent to run inputs of its own and is found by its type (:meth:`Shared.find`).

Nothing here knows a device: the miner-driver contract lives one room up, in
:mod:`webbo.agent.fleet.driver`; a plugin author imports both through :mod:`webbo.agent.plugin`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, cast, runtime_checkable

import structlog
import tomlkit

from webbo.agent.core.config import CheckAll, Config, SectionType
from webbo.agent.core.metric import FieldValue, Metric

__all__ = [
    "Accumulator",
    "CheckAll",
    "ConfigEdits",
    "CoreInput",
    "Input",
    "InputType",
    "Mutation",
    "Output",
    "OutputType",
    "PluginContext",
    "SectionType",
    "SerialBackend",
    "Service",
    "ServiceType",
    "Shared",
    "SimOptions",
    "Simulation",
    "SimulatorType",
]

T = TypeVar("T")

Mutation = Callable[[tomlkit.TOMLDocument], None]
"""An edit of the config file: changes a tomlkit document in place (comments survive)."""


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


class ConfigEdits(Protocol):
    """The running agent's config, and the one way to change it (see
    :mod:`webbo.agent.core.config_edit`)."""

    @property
    def config(self) -> Config:
        """The config in force now (it changes with every reload)."""

    def check(self, mutate: Mutation) -> Config:
        """Validate an edit as a dry run; raises ConfigError naming the key path."""

    async def apply(self, mutate: Mutation) -> Config:
        """Validate, write atomically (comments kept) and reload; raises ConfigError and
        changes nothing when the result would be invalid."""


class Shared:
    """Long-lived objects of one agent, one per class, kept across reloads.

    Plugins keep what must outlive a reload here (a token cache, the buses of the serial ports)
    and find each other's services by *type*, never by a name: ``context.shared.get(TokenCache)``
    makes the cache on first use; ``context.shared.find(SerialBackend)`` answers the service that
    implements that protocol, or None.
    """

    def __init__(self) -> None:
        self._items: dict[type, object] = {}

    def get(self, kind: type[T], factory: Callable[[], T] | None = None) -> T:
        """The one ``kind`` object, made by ``factory`` (default: ``kind()``) on first use."""
        item = self._items.get(kind)
        if item is None:
            item = self._items[kind] = (factory or kind)()
        return cast(T, item)

    def put(self, item: object) -> None:
        """Keep ``item`` as the one object of its class."""
        self._items[type(item)] = item

    def find(self, kind: type[T]) -> T | None:
        """The kept object that is a ``kind`` (a class or a runtime-checkable protocol)."""
        item = self._items.get(kind)
        if item is not None:
            return cast(T, item)
        for value in self._items.values():
            if isinstance(value, kind):
                return value
        return None

    def values(self) -> list[object]:
        return list(self._items.values())


@dataclass
class PluginContext:
    """What a plugin factory may use: the config in force when it is built (read-only), the
    state folder, a logger bound to the instance, the agent's shared objects and config edits.

    ``edits`` is None where nothing may change the config (``webbo config check``, ``webbo
    test``)."""

    config: Config
    state_dir: Path
    log: structlog.typing.FilteringBoundLogger
    shared: Shared = field(default_factory=Shared)
    edits: ConfigEdits | None = None
    inputs: Mapping[str, InputType] = field(default_factory=dict)
    """Every loaded input type by name (a service that builds inputs, like the miner fleet's
    drivers, finds their factories here)."""


@runtime_checkable
class Input(Protocol):
    """A gather input. ``start``/``stop`` are optional (a service input that owns a serial bus
    starts its task in ``start``); ``gather`` is called once per interval, never twice at once.
    A service input with ``only_when_running = True`` (a link to other agents) is left out of
    the one-shot runs (``webbo test``, ``webbo once``)."""

    async def gather(self, acc: Accumulator) -> None: ...


@runtime_checkable
class Output(Protocol):
    """An output. ``write`` raises one of :mod:`webbo.agent.core.errors`' ``WriteError``
    classes so the agent can decide: retry later, split the batch, or drop it."""

    async def connect(self) -> None: ...

    async def write(self, metrics: Sequence[Metric]) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class InputType:
    """An input plugin: ``[[inputs.<name>]]`` tables are decoded with ``config`` and handed to
    ``factory``.

    ``kind`` says who runs the instances: ``"gather"`` inputs tick on the core's loop; any other
    kind is left to the service that claims it (``"miner"``: the miner fleet builds them as
    drivers, see :mod:`webbo.agent.fleet.driver`)."""

    name: str
    config: type
    factory: Callable[[Any, PluginContext], Any]
    description: str = ""
    kind: str = "gather"
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


CoreInput = tuple[bytes, str, Callable[[], Input]]
"""An input a service asks the agent to run: (identity key, label, builder). A running one keeps
running across a reload while its key stays the same; the builder is only called for a new key."""


class Service(Protocol):
    """A long-lived object beside the inputs, made once per agent (it survives reloads).

    Every method is optional: ``inputs(config)`` names the inputs the service wants run under
    the config in force (called at start and after every reload; an input object with an
    ``interval`` attribute ticks on it instead of ``[agent] interval``); ``status()`` adds to the
    agent's status (``webbo status``, the API) under the service's name; ``on_metric(metric)``
    is called for every gathered metric (registered with ``agent.listen``: quick, never
    raising); ``close()`` runs when the agent stops."""


@dataclass(frozen=True)
class ServiceType:
    """A service a plugin (or a room of the agent) provides: ``factory(context)`` makes it."""

    name: str
    factory: Callable[[PluginContext], object]
    description: str = ""


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
    reads_with: Callable[[SimOptions], list[tuple[str, dict[str, Any]]]] | None = None
    """The ``[[inputs.NAME]]`` tables (name, settings) that read this family's devices when
    they run with these options: how ``webbo demo`` configures the agent for its farm, so
    what it takes to read a simulated make is said by the plugin that simulates it."""


@runtime_checkable
class SerialBackend(Protocol):
    """What ``/api/serial/*`` and the meter pages call (manual §3.5.8–3.5.9): a service that a
    plugin provides (the Mercury plugin), found with ``shared.find(SerialBackend)``."""

    models: tuple[str, ...]
    """The device models ``add_device`` takes (the UI's choice, the API's check)."""

    async def get_ports(self, include_all: bool = False) -> list[str]: ...

    def get_devices(self) -> list[dict[str, Any]]: ...

    async def add_device(self, device: dict[str, Any]) -> bool: ...

    async def delete_device(self, serial_number: str) -> bool: ...

    def meters(self) -> list[dict[str, Any]]:
        """Live state and latest values of every polled meter (the Meters page)."""
        ...
