"""Edits of ``[power]`` in webbo.toml: the one use case behind the API, the UI and the CLI.

Each function returns a :data:`~webbo.agent.core.contract.Mutation` for the agent's
:class:`~webbo.agent.core.config_edit.ConfigEditor`: checked whole as a dry run (a feed naming
a meter or a range that does not exist, overlapping feeds, a budget above the limit are
refused with the key path) before anything is written, then written with the comments kept
and reloaded. The running control stays as it was when an edit is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import tomlkit

from webbo.agent.core.config import ConfigError, Duration, to_json, validation_error
from webbo.agent.core.config_edit import set_table_array
from webbo.agent.core.contract import Mutation
from webbo.agent.fleet.model import normalise_mac
from webbo.agent.power.config import PowerSection

__all__ = ["delete_feed", "replace_power", "section_dict", "set_excluded", "set_feed",
           "set_mode"]

_ARRAYS = ("feeds", "models")


def section_dict(section: PowerSection) -> dict[str, Any]:
    """``[power]`` as plain JSON (durations in seconds)."""
    data: dict[str, Any] = msgspec.json.decode(to_json(section))
    return data


def _clean(value: Any) -> Any:
    """Drop None and empty lists (TOML has no null; an empty list is the default anyway)."""
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()
                if v is not None and not (isinstance(v, list) and not v)}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _power_table(doc: tomlkit.TOMLDocument) -> Any:
    power = doc.get("power")
    if power is None:
        power = tomlkit.table()
        doc["power"] = power
    return power


def _duration(kind: type, value: Any) -> Any:
    if kind is Duration:
        return Duration.parse(value)
    raise NotImplementedError


def check_shape(data: Mapping[str, Any]) -> None:
    """Refuse a body that is not a ``[power]`` table (unknown keys, wrong types) before it
    comes near the TOML document; the key path names the problem."""
    try:
        msgspec.convert(dict(data), PowerSection, dec_hook=_duration)
    except msgspec.ValidationError as exc:
        raise validation_error("power", exc) from None
    except ValueError as exc:  # a duration that is not one
        raise ConfigError("power", str(exc)) from None


def replace_power(data: Mapping[str, Any]) -> Mutation:
    """Make ``[power]`` exactly ``data`` (the section as JSON; keys left out take their
    defaults). Raises ConfigError at once for a body that is not the section's shape."""
    check_shape(data)
    data = _clean(dict(data))

    def mutate(doc: tomlkit.TOMLDocument) -> None:
        power = _power_table(doc)
        for key in [k for k in power if k not in _ARRAYS and k not in data]:
            del power[key]
        for key, value in data.items():
            if key not in _ARRAYS:
                power[key] = value
        for key in _ARRAYS:
            items = data.get(key)
            set_table_array(doc, f"power.{key}", items if isinstance(items, list) else [])

    return mutate


def set_mode(mode: str) -> Mutation:
    def mutate(doc: tomlkit.TOMLDocument) -> None:
        _power_table(doc)["mode"] = mode

    return mutate


def set_excluded(macs: Iterable[str], excluded: bool) -> Mutation:
    """Add ``macs`` to ``[power] exclude`` (or take them out)."""
    wanted = [normalise_mac(m) or m for m in macs]

    def mutate(doc: tomlkit.TOMLDocument) -> None:
        power = _power_table(doc)
        current = [str(m) for m in power.get("exclude", [])]
        normal = {normalise_mac(m) or m for m in current}
        if excluded:
            current += [m for m in wanted if m not in normal]
        else:
            current = [m for m in current if (normalise_mac(m) or m) not in wanted]
        power["exclude"] = current

    return mutate


def _feeds(doc: tomlkit.TOMLDocument) -> list[dict[str, Any]]:
    power = doc.get("power") or {}
    return [dict(item) for item in power.get("feeds", [])]


def set_feed(feed: Mapping[str, Any], replaces: str | None = None) -> Mutation:
    """Add a feed, or replace the feed named ``replaces`` (in place, order kept)."""
    table = _clean(dict(feed))

    def mutate(doc: tomlkit.TOMLDocument) -> None:
        _power_table(doc)
        feeds = _feeds(doc)
        names = [str(f.get("name", "")) for f in feeds]
        if replaces is not None and replaces in names:
            feeds[names.index(replaces)] = table
        else:
            feeds.append(table)
        set_table_array(doc, "power.feeds", [_plain(f) for f in feeds])

    return mutate


def delete_feed(name: str) -> Mutation:
    def mutate(doc: tomlkit.TOMLDocument) -> None:
        feeds = [f for f in _feeds(doc) if str(f.get("name", "")) != name]
        set_table_array(doc, "power.feeds", [_plain(f) for f in feeds])

    return mutate


def _plain(value: Any) -> Any:
    """tomlkit items → plain Python (so a table read back can be written again)."""
    if hasattr(value, "unwrap"):
        return value.unwrap()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value

