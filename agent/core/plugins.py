"""Loading plugins: built-in and third-party alike, from the ``webbo`` entry-point group.

Loading is tolerant: a plugin that fails to import, to register or to answer a hook is logged by
name and skipped, and the agent starts with the rest. ``webbo plugins`` shows what loaded, from
which distribution and version, what each provides, what replaced a built-in, and what failed.

Order is fixed, never an accident of names: the plugins of our own distribution register first
(by entry-point name), then every other distribution's (by entry-point name). A third-party
plugin providing a name a built-in already provides replaces the built-in one; two third-party
plugins providing one name is an error for the later one.
"""

from __future__ import annotations

import importlib.metadata as metadata
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy
import structlog

from webbo.agent.core import hookspecs
from webbo.agent.core.contract import (
    InputType,
    OutputType,
    SectionType,
    ServiceType,
    SimulatorType,
)

log = structlog.get_logger("webbo.plugins")

ENTRY_POINT_GROUP = "webbo"
OWN_DISTRIBUTION = "webbo"

_PROVIDERS: tuple[tuple[str, str, type], ...] = (
    ("webbo_inputs", "inputs", InputType),
    ("webbo_outputs", "outputs", OutputType),
    ("webbo_simulators", "simulators", SimulatorType),
    ("webbo_config_sections", "sections", SectionType),
    ("webbo_services", "services", ServiceType),
)
"""(hook, table, item type): what a plugin provides, indexed by the item's name."""


@dataclass
class LoadedPlugin:
    """One plugin as ``webbo plugins`` lists it."""

    name: str
    module: str
    distribution: str
    version: str
    builtin: bool = False
    provides: dict[str, list[str]] = field(default_factory=dict)
    """Table ("inputs", "outputs", ...) → the names this plugin provides."""
    replaced: list[str] = field(default_factory=list)
    """``table.name`` of built-in items this plugin took over."""


@dataclass
class FailedPlugin:
    name: str
    source: str
    error: str


class PluginRegistry:
    """The plugin manager plus what its plugins provide, indexed by name."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.inputs: dict[str, InputType] = {}
        self.outputs: dict[str, OutputType] = {}
        self.simulators: dict[str, SimulatorType] = {}
        self.sections: dict[str, SectionType] = {}
        self.services: dict[str, ServiceType] = {}
        self.loaded: list[LoadedPlugin] = []
        self.failed: list[FailedPlugin] = []
        self._owner: dict[tuple[str, str], LoadedPlugin] = {}

    # -- lookup ---------------------------------------------------------------------------

    def lookup(self, kind: str, name: str) -> InputType | OutputType | None:
        table: dict[str, Any] = self.inputs if kind == "inputs" else self.outputs
        return table.get(name)

    def names(self, kind: str) -> list[str]:
        return sorted(self.inputs if kind == "inputs" else self.outputs)

    def table(self, name: str) -> dict[str, Any]:
        return getattr(self, name)  # type: ignore[no-any-return]

    # -- loading --------------------------------------------------------------------------

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Register every plugin of the entry-point group (ours first), skipping and logging
        broken ones."""
        seen: set[str] = set()

        def order(ep: metadata.EntryPoint) -> tuple[bool, str]:
            return (_distribution(ep)[0] != OWN_DISTRIBUTION, ep.name)

        for ep in sorted(metadata.entry_points(group=group), key=order):
            if ep.name in seen:
                continue  # the same distribution seen twice on sys.path
            seen.add(ep.name)
            dist_name, version = _distribution(ep)
            try:
                plugin = ep.load()
            except Exception as exc:
                self._fail(ep.name, f"{dist_name} ({ep.value})", f"import failed: {exc!r}")
                continue
            self.register(plugin, ep.name, distribution=dist_name, version=version,
                          builtin=dist_name == OWN_DISTRIBUTION)

    def register(
        self,
        plugin: ModuleType | object,
        name: str,
        *,
        distribution: str = "(in-process)",
        version: str = "",
        builtin: bool = False,
    ) -> bool:
        """Register one plugin object and collect what it provides. False if it was skipped."""
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            self._fail(name, distribution, f"registration failed: {exc!r}")
            return False
        entry = LoadedPlugin(
            name=name,
            module=getattr(plugin, "__name__", type(plugin).__name__),
            distribution=distribution,
            version=version,
            builtin=builtin,
        )
        try:
            self._collect(plugin, entry)
        except Exception as exc:
            self.pm.unregister(plugin)
            self._fail(name, distribution, f"hook failed: {exc!r}")
            return False
        self.loaded.append(entry)
        return True

    def _collect(self, plugin: object, entry: LoadedPlugin) -> None:
        """Ask the plugin's provider hooks directly (only this plugin's) and index the answers.

        Nothing is indexed unless every answer is valid, so a half-broken plugin leaves no trace.
        """
        pending: list[tuple[str, Any]] = []
        for hook_name, table_name, kind in _PROVIDERS:
            impl = getattr(plugin, hook_name, None)
            if impl is None:
                continue
            table = self.table(table_name)
            fresh: set[str] = set()
            for item in impl() or []:
                if not isinstance(item, kind):
                    raise TypeError(f"{hook_name} returned {item!r}, not a {kind.__name__}")
                if item.name in fresh:
                    raise ValueError(f"{hook_name}: {item.name!r} is provided twice")
                owner = self._owner.get((table_name, item.name))
                if item.name in table and owner is not None and not (
                        owner.builtin and not entry.builtin):
                    raise ValueError(f"{hook_name}: {item.name!r} is already provided by "
                                     f"{owner.name}")
                fresh.add(item.name)
                pending.append((table_name, item))
        for table_name, item in pending:
            table = self.table(table_name)
            owner = self._owner.get((table_name, item.name))
            if owner is not None:
                owner.provides[table_name].remove(item.name)
                entry.replaced.append(f"{table_name}.{item.name}")
                log.info("built-in replaced by a plugin", item=f"{table_name}.{item.name}",
                         builtin=owner.name, plugin=entry.name, distribution=entry.distribution)
            table[item.name] = item
            entry.provides.setdefault(table_name, []).append(item.name)
            self._owner[(table_name, item.name)] = entry

    def _fail(self, name: str, source: str, error: str) -> None:
        self.failed.append(FailedPlugin(name, source, error))
        log.error("plugin skipped", plugin=name, source=source, error=error)


def _distribution(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = ep.dist
    if dist is None:
        return "?", "?"
    return dist.metadata["Name"], dist.version


def default_registry(extra: Iterable[tuple[str, object]] = ()) -> PluginRegistry:
    """A registry with every installed plugin, plus ``extra`` (name, plugin) pairs."""
    registry = PluginRegistry()
    registry.load_entry_points()
    for name, plugin in extra:
        registry.register(plugin, name)
    return registry
