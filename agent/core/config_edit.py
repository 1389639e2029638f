"""Changing the config file: the one edit use case the API, the UI and the CLI all call.

An edit is a *mutation* of the TOML document (tomlkit, so comments and key order survive). It
is validated whole, as a dry run, before anything touches the disk; written atomically (temp
file + rename); and then applied by the running agent (a reload that restarts only what
changed). An invalid edit raises :class:`~webbo.agent.core.config.ConfigError` naming the key
path, and the file and the running config stay as they were.

The table-array helpers at the end rewrite ``[[x]]`` tables so that the comments around them
stay where a person wrote them, however often the UI edits the file.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.container
import tomlkit.items
from tomlkit.exceptions import TOMLKitError

from webbo.agent.core.config import Config, ConfigError, Schemas, parse_config
from webbo.agent.core.contract import Mutation
from webbo.agent.core.files import write_atomically

__all__ = ["ConfigEditor", "append_table", "edit_config", "persist_generated_uuids",
           "put_table", "remove_tables", "set_table_array"]

_edit_lock = threading.Lock()


def _mutated(path: str, mutate: Mutation, registry: Schemas) -> tuple[str, str, Config]:
    """(text on disk, text after ``mutate``, the validated new config); raises ConfigError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        document = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ConfigError("", f"the file on disk is not valid TOML: {exc}") from None
    mutate(document)
    new_text = tomlkit.dumps(document)
    try:
        new_text.encode("utf-8")
    except UnicodeEncodeError as exc:  # e.g. a lone surrogate sent as "\udbb7" in JSON
        raise ConfigError("", f"the edit holds text that is not valid UTF-8 ({exc.reason} "
                              f"at character {exc.start})") from None
    return text, new_text, parse_config(new_text, registry, path=path)


def check_edit(path: str | os.PathLike[str], mutate: Mutation, registry: Schemas) -> Config:
    """Validate an edit of the file as a dry run: the config it would give, nothing written."""
    return _mutated(os.fspath(path), mutate, registry)[2]


def edit_config(
    path: str | os.PathLike[str],
    mutate: Mutation,
    registry: Schemas,
    *,
    after: Callable[[Config], None] | None = None,
) -> Config:
    """Change the config file: validate the whole result, then write it atomically.

    ``mutate`` changes a tomlkit document in place (comments and key order survive). If the
    result is invalid, :class:`ConfigError` is raised and the file is not touched. Otherwise it
    is written and ``after`` is called with the new config. Edits are serialised.
    """
    path = os.fspath(path)
    with _edit_lock:
        text, new_text, config = _mutated(path, mutate, registry)
        if new_text != text:
            write_atomically(path, new_text)
    if after is not None:
        after(config)
    return config


class ConfigEditor:
    """The one "edit the config" use case, for the API, the UI and the CLI alike.

    :meth:`check` is the dry run (call it before starting a task, so a bad request is refused
    at once and nothing changes); :meth:`apply` validates again, writes atomically with the
    comments kept, and hands the new config to ``reload`` (the running agent restarts only what
    changed). Without ``reload`` (the CLI with no agent running) the file is written and a
    running agent picks it up by watching the file.
    """

    def __init__(self, registry: Schemas, current: Callable[[], Config],
                 reload: Callable[[Config], Awaitable[None]] | None = None) -> None:
        self.registry = registry
        self._current = current
        self._reload = reload

    @property
    def config(self) -> Config:
        return self._current()

    @property
    def path(self) -> str:
        path = self._current().path
        if not path:
            raise ConfigError("", "the agent was not started from a config file")
        return path

    def check(self, mutate: Mutation) -> Config:
        return check_edit(self.path, mutate, self.registry)

    async def apply(self, mutate: Mutation) -> Config:
        config = await asyncio.to_thread(edit_config, self.path, mutate, self.registry)
        if self._reload is not None:
            await self._reload(config)
        return config


def persist_generated_uuids(config: Config, registry: Schemas) -> Config:
    """Write uuids assigned at load back into the file, so they stay the same from now on."""
    if not config.generated_uuids or not config.path:
        return config
    groups = config.network.ip_range_groups

    def mutate(doc: tomlkit.TOMLDocument) -> None:
        network = doc.get("network")
        if network is None:
            return
        for group_doc, group in zip(network.get("ip_range_groups", []), groups, strict=False):
            if not group_doc.get("uuid"):
                group_doc["uuid"] = group.uuid
            for range_doc, range_ in zip(group_doc.get("ip_ranges", []), group.ip_ranges,
                                         strict=False):
                if not range_doc.get("uuid"):
                    range_doc["uuid"] = range_.uuid

    return edit_config(config.path, mutate, registry)


# -- TOML table-array edits that keep comments where they belong ------------------------------
#
# In a TOML file, the comment block before a header ("## OUTPUTS ...") is, to tomlkit, the tail
# of the table *above* it. Naively appending, replacing or removing ``[[x]]`` tables would move
# such a block under the wrong header or drop it. These helpers detach the tail of the last
# table first and re-attach it to whatever is last afterwards, so hand-written comments stay
# above the header they describe however often the UI edits the file.


def _last_container(item: Any) -> Any:
    """The innermost container whose end is the end of ``item`` in the file."""
    if isinstance(item, tomlkit.items.AoT):
        return _last_container(item.body[-1]) if len(item.body) else None
    if isinstance(item, tomlkit.items.Table):
        container = item.value
    elif isinstance(item, tomlkit.container.Container):
        container = item
    else:
        return None
    for key, value in reversed(container.body):
        if key is None:
            continue
        if isinstance(value, tomlkit.items.AoT | tomlkit.items.Table):
            inner = _last_container(value)
            return inner if inner is not None else container
        return container
    return container


def _detach_tail(item: Any) -> list[Any]:
    """Remove and return the trailing comments/blank lines at the end of ``item``."""
    container = _last_container(item)
    if container is None:
        return []
    tail: list[Any] = []
    while container.body and container.body[-1][0] is None and isinstance(
            container.body[-1][1], tomlkit.items.Comment | tomlkit.items.Whitespace):
        tail.insert(0, container.body.pop()[1])
    return tail


def _attach_tail(item: Any, tail: list[Any]) -> None:
    container = _last_container(item)
    if container is None:
        return
    for trivia in tail:
        container.body.append((None, trivia))


def _parent_and_leaf(doc: tomlkit.TOMLDocument, dotted: str) -> tuple[Any, str]:
    *parents, leaf = dotted.split(".")
    node: Any = doc
    for part in parents:
        if part not in node:
            node[part] = tomlkit.table(is_super_table=True)
        node = node[part]
    return node, leaf


def _to_table(item: Mapping[str, Any]) -> Any:
    table = tomlkit.table()
    for key, value in item.items():
        if value is None:
            continue
        if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            array = tomlkit.aot()
            for sub in value:
                array.append(_to_table(sub))
            table[key] = array
        elif isinstance(value, list) and not value and key in _TABLE_ARRAY_KEYS:
            continue
        elif isinstance(value, Mapping):
            sub_table = tomlkit.inline_table()
            sub_table.update({k: v for k, v in value.items() if v is not None})
            table[key] = sub_table
        else:
            table[key] = value
    return table


_TABLE_ARRAY_KEYS = frozenset({"ip_ranges", "ip_range_groups"})
"""Keys whose lists are arrays of tables even when empty (an empty one is left out)."""


def _add_array(parent: Any, leaf: str, array: Any) -> None:
    """Add a new ``[[parent.leaf]]`` at the end of ``parent``; the comments that ended the
    parent (they introduce whatever follows it in the file) move after the new tables."""
    tail = _detach_tail(parent)
    parent[leaf] = array
    _attach_tail(array, tail)


def _array(tables: Iterable[Any]) -> Any:
    array = tomlkit.aot()
    for table in tables:
        array.append(table)
    return array


def set_table_array(doc: tomlkit.TOMLDocument, dotted: str,
                    items: Iterable[Mapping[str, Any]], *, key: str | None = None) -> None:
    """Replace ``[[dotted]]`` with ``items`` (dicts; nested lists of dicts become nested
    arrays of tables), in place, keeping the comments that follow it where they are.

    With ``key`` (e.g. ``"uuid"``) a table whose ``key`` matches an item's is kept and updated
    in place, nested arrays of tables too, so the comments a person wrote inside it (and on
    its unchanged lines) survive; tables of new items are added, the others removed."""
    parent, leaf = _parent_and_leaf(doc, dotted)
    existing = parent.get(leaf)
    if key is not None and isinstance(existing, tomlkit.items.AoT):
        tables = _merged(existing, list(items), key)
    else:
        tables = [_to_table(item) for item in items]
    if existing is None:
        if tables:
            _add_array(parent, leaf, _array(tables))
        return
    _replace_array(parent, leaf, existing, tables)


def _merged(existing: Any, items: list[Mapping[str, Any]], key: str) -> list[Any]:
    """The tables for ``items``: the existing table of the same ``key`` updated in place
    (only the values that differ are written), or a new one."""
    old = {str(t[key]): t for t in existing if isinstance(t.get(key), str) and t.get(key)}
    tables = []
    for item in items:
        table = old.pop(str(item.get(key)), None) if item.get(key) else None
        if table is None:
            tables.append(_to_table(item))
            continue
        for name, value in item.items():
            current = table.get(name)
            if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value) \
                    and isinstance(current, tomlkit.items.AoT):
                inner = _merged(current, list(value), key)
                if [id(t) for t in inner] != [id(t) for t in current]:
                    tail = _detach_tail(current)
                    table[name] = array = _array(inner)
                    _attach_tail(array, tail)
            elif value is None or (isinstance(value, list) and not value
                                   and name in _TABLE_ARRAY_KEYS):
                if name in table:
                    del table[name]
            elif current != value:
                table[name] = _to_table({name: value})[name]
        for name in [n for n in table if n not in item]:
            del table[name]
        tables.append(table)
    return tables


def _replace_array(parent: Any, leaf: str, existing: Any, tables: list[Any]) -> None:
    """Put ``tables`` where ``existing`` stands (or remove it when there are none), keeping the
    comments that followed it at the end of what replaces it."""
    tail = _detach_tail(existing)
    if tables:
        array = _array(tables)
        parent[leaf] = array
        _attach_tail(array, tail)
    else:
        del parent[leaf]
        _attach_tail(parent, tail)


def append_table(doc: tomlkit.TOMLDocument, dotted: str, item: Mapping[str, Any]) -> None:
    """Add one ``[[dotted]]`` table after the existing ones (comments stay in place)."""
    parent, leaf = _parent_and_leaf(doc, dotted)
    existing = parent.get(leaf)
    table = _to_table(item)
    if existing is None:
        _add_array(parent, leaf, _array([table]))
        return
    tail = _detach_tail(existing)
    existing.append(table)
    _attach_tail(existing, tail)


def remove_tables(doc: tomlkit.TOMLDocument, dotted: str,
                  predicate: Callable[[Mapping[str, Any]], bool]) -> int:
    """Remove the ``[[dotted]]`` tables for which ``predicate`` is true; returns how many."""
    parent, leaf = _parent_and_leaf(doc, dotted)
    existing = parent.get(leaf)
    if existing is None:
        return 0
    keep = [t for t in existing if not predicate(t)]
    removed = len(existing) - len(keep)
    if removed:
        _replace_array(parent, leaf, existing, keep)
    return removed


def put_table(doc: tomlkit.TOMLDocument, dotted: str,
              predicate: Callable[[Mapping[str, Any]], bool], item: Mapping[str, Any]) -> None:
    """Replace the first ``[[dotted]]`` table for which ``predicate`` is true with ``item``, in
    place (the other tables and every comment stay as written), or append it."""
    parent, leaf = _parent_and_leaf(doc, dotted)
    existing = parent.get(leaf)
    if existing is not None:
        for index, table in enumerate(existing):
            if predicate(table):
                existing[index] = _to_table(item)
                return
    append_table(doc, dotted, item)
