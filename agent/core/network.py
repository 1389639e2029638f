"""The manual's Network object (§3.4) and ``[network]`` of webbo.toml, both ways.

:func:`network_payload` answers get-network in the manual's shape; :func:`set_network` is the
one set-network use case of the API, the UI and the CLI (:func:`network_items` and
:func:`network_edit` make its config edit, applied through
:class:`~webbo.agent.core.config_edit.ConfigEditor`): groups and ranges without a uuid get a
random UUID4, written to the file, so it is theirs from then on.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import tomlkit

from webbo.agent.core.config import Config, NetworkSection
from webbo.agent.core.config_edit import set_table_array
from webbo.agent.core.contract import ConfigEdits, Mutation
from webbo.agent.core.tasks import Task, TaskService

__all__ = ["network_edit", "network_items", "network_payload", "set_network"]


def network_payload(network: NetworkSection) -> dict[str, Any]:
    """``[network]`` in the manual's Network shape (key order as the manual shows it)."""
    return {"ip_range_groups": [
        {"name": g.name, "uuid": g.uuid, "ip_ranges": [
            {"name": r.name, "uuid": r.uuid, "first": r.first, "last": r.last}
            for r in g.ip_ranges]}
        for g in network.ip_range_groups]}


def new_uuid4() -> str:
    return str(uuid.uuid4())


def _address(value: Any) -> str:
    """An IPv4 address in its canonical form; anything else as given (the config's own check
    then names the field and the reason)."""
    text = str(value)
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        return text


def network_items(groups: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The manual's IPRangeGroup objects → tables for ``[[network.ip_range_groups]]``: uuids
    made for new groups and ranges (random UUID4s, written to the file, so they are kept from
    now on)."""
    items = []
    for group in groups:
        ranges = []
        for range_ in group.get("ip_ranges", []):
            ranges.append({"name": range_.get("name") or "",
                           "uuid": str(range_.get("uuid") or new_uuid4()).lower(),
                           "first": _address(range_["first"]),
                           "last": _address(range_["last"])})
        items.append({"name": group.get("name") or "",
                      "uuid": str(group.get("uuid") or new_uuid4()).lower(),
                      "ip_ranges": ranges})
    return items


def network_edit(items: Sequence[Mapping[str, Any]]) -> Mutation:
    """The edit that sets ``[network]`` to ``items`` (from :func:`network_items`)."""
    items = [dict(item) for item in items]

    def mutate(doc: tomlkit.TOMLDocument) -> None:
        set_table_array(doc, "network.ip_range_groups", items, key="uuid")

    return mutate


def set_network(edits: ConfigEdits, tasks: TaskService, who: str,
                groups: Sequence[Mapping[str, Any]], via: str = "") -> tuple[Task, Config]:
    """set-network, the one use case behind the API, the UI and the CLI: validate the new
    Network as a dry run (raises ConfigError naming the field, before any task starts), then
    start the task that writes webbo.toml (comments kept) and reloads. Its result is ``true``.
    Returns the task and the config it will put in force."""
    items = network_items(groups)
    mutate = network_edit(items)
    config = edits.check(mutate)

    async def apply() -> bool:
        await edits.apply(mutate)
        return True

    details: dict[str, Any] = {"groups": len(items),
                               "ranges": sum(len(g["ip_ranges"]) for g in items),
                               "network": items}
    if via:
        details["via"] = via
    return tasks.start_job("set-network", who, apply, details), config
