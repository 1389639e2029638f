"""Loading plugins: built-in and third-party alike, from the ``webbo`` entry-point group.

Loading is tolerant: a plugin that fails to import, to register or to answer a hook is logged by
name and skipped, and the agent starts with the rest. ``webbo plugins`` shows what loaded, from
which distribution and version, and what failed.
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
from webbo.agent.core.contract import InputType, OutputType, SimulatorType

log = structlog.get_logger("webbo.plugins")

ENTRY_POINT_GROUP = "webbo"


@dataclass
class LoadedPlugin:
    """One plugin as ``webbo plugins`` lists it."""

    name: str
    module: str
    distribution: str
    version: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    simulators: list[str] = field(default_factory=list)


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
        self.loaded: list[LoadedPlugin] = []
        self.failed: list[FailedPlugin] = []
        self._owner: dict[tuple[str, str], str] = {}

    # -- lookup ---------------------------------------------------------------------------

    def lookup(self, kind: str, name: str) -> InputType | OutputType | None:
        table: dict[str, Any] = self.inputs if kind == "inputs" else self.outputs
        return table.get(name)

    def names(self, kind: str) -> list[str]:
        return sorted(self.inputs if kind == "inputs" else self.outputs)

    @property
    def hook(self) -> Any:
        return self.pm.hook

    # -- loading --------------------------------------------------------------------------

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Register every plugin of the entry-point group, skipping (and logging) broken ones."""
        seen: set[str] = set()
        for ep in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
            if ep.name in seen:
                continue  # the same distribution seen twice on sys.path
            seen.add(ep.name)
            dist = ep.dist
            dist_name = dist.metadata["Name"] if dist is not None else "?"
            version = dist.version if dist is not None else "?"
            try:
                plugin = ep.load()
            except Exception as exc:
                self._fail(ep.name, f"{dist_name} ({ep.value})", f"import failed: {exc!r}")
                continue
            self.register(plugin, ep.name, distribution=dist_name, version=version)

    def register(
        self,
        plugin: ModuleType | object,
        name: str,
        *,
        distribution: str = "(in-process)",
        version: str = "",
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
        )
        try:
            self._collect(plugin, name, entry)
        except Exception as exc:
            self.pm.unregister(plugin)
            self._forget(name)
            self._fail(name, distribution, f"hook failed: {exc!r}")
            return False
        self.loaded.append(entry)
        return True

    def _collect(self, plugin: object, name: str, entry: LoadedPlugin) -> None:
        """Ask the plugin's provider hooks directly (only this plugin's) and index the answers.

        Nothing is indexed unless every answer is valid, so a half-broken plugin leaves no trace.
        """
        tables: list[tuple[str, dict[str, Any], type, list[str]]] = [
            ("webbo_inputs", self.inputs, InputType, entry.inputs),
            ("webbo_outputs", self.outputs, OutputType, entry.outputs),
            ("webbo_simulators", self.simulators, SimulatorType, entry.simulators),
        ]
        pending: list[tuple[str, dict[str, Any], Any, list[str]]] = []
        for hook_name, table, kind, names in tables:
            impl = getattr(plugin, hook_name, None)
            if impl is None:
                continue
            fresh: set[str] = set()
            for item in impl() or []:
                if not isinstance(item, kind):
                    raise TypeError(f"{hook_name} returned {item!r}, not a {kind.__name__}")
                if item.name in table or item.name in fresh:
                    owner = self._owner.get((hook_name, item.name), name)
                    raise ValueError(f"{hook_name}: {item.name!r} is already provided by {owner}")
                fresh.add(item.name)
                pending.append((hook_name, table, item, names))
        for hook_name, table, item, names in pending:
            table[item.name] = item
            names.append(item.name)
            self._owner[(hook_name, item.name)] = name

    def _forget(self, name: str) -> None:
        for (hook_name, item), owner in list(self._owner.items()):
            if owner == name:
                del self._owner[(hook_name, item)]
                {"webbo_inputs": self.inputs, "webbo_outputs": self.outputs,
                 "webbo_simulators": self.simulators}[hook_name].pop(item, None)

    def _fail(self, name: str, source: str, error: str) -> None:
        self.failed.append(FailedPlugin(name, source, error))
        log.error("plugin skipped", plugin=name, source=source, error=error)


def default_registry(extra: Iterable[tuple[str, object]] = ()) -> PluginRegistry:
    """A registry with every installed plugin, plus ``extra`` (name, plugin) pairs."""
    registry = PluginRegistry()
    registry.load_entry_points()
    for name, plugin in extra:
        registry.register(plugin, name)
    return registry
