"""The architecture, enforced: every import of the code, walked, runs down the rooms, never up.

Rooms of ``webbo.agent``, bottom to top: ``core`` (knows no device), ``fleet`` (the miners),
``alerts``, ``power``, ``cluster``; then ``webbo.web``; then ``agent/cli``, the composition root
(the only code that imports the web). A room imports from the rooms below it and itself.
Plugins import only the facade ``webbo.agent.plugin`` and ``webbo.plugins.common`` (and their
own package). Imports inside functions and under ``TYPE_CHECKING`` count too, and no cycle of
modules may exist at all, so nothing is held together by a deferred import.
"""

from __future__ import annotations

import ast
from pathlib import Path

from project import ROOT

FOLDERS = {"agent": "webbo.agent", "plugins": "webbo.plugins", "web": "webbo.web"}
ROOMS = ["webbo.agent.core", "webbo.agent.fleet", "webbo.agent.alerts", "webbo.agent.power",
         "webbo.agent.cluster", "webbo.web", "webbo.agent.cli"]
FACADE = "webbo.agent.plugin"


def modules() -> dict[str, Path]:
    found = {}
    for folder, prefix in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            found[".".join([prefix, *parts])] = path
    return found


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules ``name`` imports (``from a import b`` counts ``a.b`` when that is a
    module, else ``a``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("webbo.") and target != name:
                found.add(target)
    return found


def room_of(module: str) -> int | None:
    for rank, room in enumerate(ROOMS):
        if module == room or module.startswith(room + "."):
            return rank
    return None


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(path, name, known) for name, path in mods.items()}


def allowed(source: str, target: str) -> bool:
    if source.startswith("webbo.plugins."):
        if source.startswith("webbo.plugins.common"):
            return target == FACADE or target.startswith("webbo.plugins.common")
        own = ".".join(source.split(".")[:4])  # webbo.plugins.inputs.NAME
        return (target == FACADE or target.startswith("webbo.plugins.common")
                or target == own or target.startswith(own + "."))
    if target.startswith("webbo.plugins"):
        return False  # nothing outside plugins imports a plugin: they load by entry point
    if target == "webbo.agent":
        return True  # the version
    if source == FACADE:
        return room_of(target) is not None and room_of(target) <= ROOMS.index("webbo.agent.fleet")
    if target == FACADE:
        return source.startswith("webbo.agent.cli")
    source_room, target_room = room_of(source), room_of(target)
    if source_room is None or target_room is None:
        return source == "webbo.agent"
    return target_room <= source_room


def test_every_import_runs_down_the_rooms():
    wrong = sorted(f"{source} imports {target}" for source, targets in graph().items()
                   for target in targets if not allowed(source, target))
    assert not wrong, "\n".join(wrong)


def test_no_cycle_of_modules():
    edges = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_graph_sees_the_tree():
    edges = graph()
    assert "webbo.agent.core.agent" in edges and "webbo.agent.fleet.discovery" in edges
    assert "webbo.agent.plugin" in edges["webbo.plugins.inputs.cgminer.driver"]
    assert "webbo.web.app" in edges["webbo.agent.cli.main"] or any(
        t.startswith("webbo.web") for t in edges["webbo.agent.cli.main"])
