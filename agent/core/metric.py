"""Metrics and the InfluxDB line protocol.

A :class:`Metric` is what every input produces and every output consumes: a measurement name,
string tags, typed fields and a nanosecond timestamp. Its line-protocol form is built once,
directly into a ``str`` (no intermediate objects), and cached, because the same metric usually
goes to several outputs.

Escaping follows the InfluxDB line protocol exactly:

* measurement: ``,`` and space are escaped;
* tag keys, tag values and field keys: ``,``, ``=`` and space are escaped;
* string field values: ``\\`` and ``"`` are escaped; newlines are kept as they are (InfluxDB
  accepts them inside a quoted string).

The line protocol has no way to carry a few things; they are mapped, never sent broken:

* a newline, carriage return or form feed in a name, key or tag value becomes the two
  characters ``\\n`` (``\\r``, ``\\f``), as Telegraf does;
* a backslash right before a separator (``,``, ``=``, space; in names and field keys also
  ``"``) or at the end of a name, key or tag value is dropped: InfluxDB would read it as an
  escape whatever precedes it;
* an empty tag value drops the tag; a NaN or infinite float drops the field; a metric left with
  no field produces no line;
* unsigned fields are written with the ``u`` suffix only where the output supports it
  (InfluxDB 2.x/3.x, VictoriaMetrics); InfluxDB 1.x gets them as integers clamped to int64.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec

__all__ = ["FieldValue", "Metric", "UInt", "field_text", "now_ns", "tag_text"]


class UInt(int):
    """An unsigned 64-bit integer field value (``123u`` in line protocol)."""

    __slots__ = ()

    def __new__(cls, value: int = 0) -> UInt:
        if value < 0 or value > 0xFFFF_FFFF_FFFF_FFFF:
            raise ValueError(f"unsigned field out of range: {value}")
        return super().__new__(cls, value)


FieldValue = float | int | bool | str

_INT64_MAX = 0x7FFF_FFFF_FFFF_FFFF
_INT64_MIN = -0x8000_0000_0000_0000


def now_ns() -> int:
    """The current wall-clock time in nanoseconds, the metrics' timestamp unit."""
    return time.time_ns()


_CONTROL = str.maketrans({"\n": "\\n", "\r": "\\r", "\f": "\\f"})
_KEY = str.maketrans({"\n": "\\n", "\r": "\\r", "\f": "\\f", ",": "\\,", "=": "\\=", " ": "\\ "})
_NAME = str.maketrans({"\n": "\\n", "\r": "\\r", "\f": "\\f", ",": "\\,", " ": "\\ "})
_NEEDS_KEY_ESCAPE = frozenset("\n\r\f,= \\")
_NEEDS_NAME_ESCAPE = frozenset("\n\r\f, \\")


# InfluxDB reads a backslash in front of a separator as an escape, however many precede it
# (measurement names and field keys also unescape \= and \"), so "a backslash followed by one of
# those characters, or at the end" has no exact encoding: such backslashes are dropped (the field
# key X\=A is written with its "=" escaped and stored as X=A) rather than sent as a line the
# server refuses or reads differently.
_LOST_BACKSLASH_TAG = re.compile(r"\\+(?=[,= ]|$)")
_LOST_BACKSLASH_FIELD = _LOST_BACKSLASH_NAME = re.compile(r'\\+(?=[,= "]|$)')


def _escape_key(text: str, lost: re.Pattern[str] = _LOST_BACKSLASH_TAG) -> str:
    """Escape a tag key or tag value (a field key with ``lost=_LOST_BACKSLASH_FIELD``)."""
    if _NEEDS_KEY_ESCAPE.isdisjoint(text):
        return text
    if "\\" in text:
        text = lost.sub("", text)
    return text.translate(_KEY)


def _escape_field_key(text: str) -> str:
    return _escape_key(text, _LOST_BACKSLASH_FIELD)


def _escape_name(text: str) -> str:
    if _NEEDS_NAME_ESCAPE.isdisjoint(text):
        return text
    if "\\" in text:
        text = _LOST_BACKSLASH_NAME.sub("", text)
    return text.translate(_NAME)


def _escape_string(text: str) -> str:
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if '"' in text:
        text = text.replace('"', '\\"')
    return text


def tag_text(text: str) -> str:
    """A tag key or value as a line writes it (escaped); '' when the tag drops out."""
    return _escape_key(text)


def field_text(value: FieldValue, uint_support: bool = False) -> str | None:
    """A field value as a line writes it, or None when it cannot be written (NaN, ±inf, an
    integer out of range): for inputs that build their lines themselves."""
    return _format_field(value, uint_support)


def _format_field(value: FieldValue, uint_support: bool) -> str | None:
    """One field value in line protocol, or None when it cannot be written."""
    kind = type(value)
    if kind is float:
        if math.isfinite(value):
            return repr(value)
        return None
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return f"{value}i" if _INT64_MIN <= value <= _INT64_MAX else None
    if kind is str:
        return f'"{_escape_string(value)}"'
    if kind is UInt:
        if uint_support:
            return f"{int(value)}u"
        return f"{min(int(value), _INT64_MAX)}i"
    # Subclasses of the basic types (IntEnum, StrEnum, numpy scalars converted by callers).
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return _format_field(int(value), uint_support)
    if isinstance(value, float):
        return _format_field(float(value), uint_support)
    if isinstance(value, str):
        return _format_field(str(value), uint_support)
    return None


class Metric(msgspec.Struct, gc=False):
    """One point: ``name,tag=value field=value timestamp``.

    Fields may be ``float``, ``int`` (int64), :class:`UInt`, ``bool`` or ``str``. Tags are kept
    as given; the line-protocol form sorts them by key, which is what InfluxDB prefers.

    ``tags`` and ``fields`` are dicts. A metric made by :meth:`packed` (the miner readings: six
    metrics per miner per cycle, and up to ``metric_buffer_limit`` of them waiting in each
    output's buffer) holds them as tuples of values against shared key tuples, a third of the
    memory of two dicts, and builds the dicts only when something reads them. Its maker may
    hand it its line ready-made (the miner readings do: they know their keys and types, so the
    line costs a third of building it here).

    A metric's line is cached once built: change a metric by assigning ``tags`` or ``fields``
    or with :meth:`add_tags`, which forget it, never by editing the dicts in place once its
    line may exist (reading them is always fine).

    Made as ``Metric(name, tags, fields, time=None)``. It is a ``gc=False`` Struct: the
    cyclic garbage collector never tracks it (it refers to no container that could lead back
    to it), which matters when a sweep keeps hundreds of thousands of them alive: each tracked
    object is walked by every collection of the young generation it lives through.
    """

    name: str
    _tags: Any = None
    _fields: Any = None
    time: Any = None
    _keys: tuple[tuple[str, ...], tuple[str, ...]] | None = None
    _line: bytes | None = None
    _line_u: bytes | None = None

    def __post_init__(self) -> None:
        if self._keys is None:  # made as Metric(name, tags, fields, time): its own dicts
            self._tags = dict(self._tags) if self._tags else {}
            self._fields = dict(self._fields)
        if self.time is None:
            self.time = now_ns()

    @classmethod
    def packed(cls, name: str, tag_keys: tuple[str, ...], tag_values: tuple[str, ...],
               field_keys: Sequence[str], field_values: Sequence[FieldValue],
               time: int, line: bytes | None = None) -> Metric:
        """A metric from parallel key and value sequences (keys unique, as in a dict).

        The key tuples are shared by every metric with the same keys, so each metric holds only
        its values until ``tags`` or ``fields`` is read. ``line``, when given, must be exactly
        what :meth:`line_bytes` would build (with or without unsigned support: the fields hold
        no :class:`UInt`); tests/agent/fleet/test_hot_paths.py holds the fleet's to that.
        """
        keys = (tag_keys, tuple(field_keys))
        shared = _KEY_SETS.get(keys)
        if shared is None:
            shared = keys
            if len(_KEY_SETS) < _CACHE_LIMIT:
                _KEY_SETS[keys] = keys
        return cls(name, tag_values, tuple(field_values), time, shared, line, line)

    def _unpack(self) -> None:
        assert self._keys is not None
        tag_keys, field_keys = self._keys
        self._tags = dict(zip(tag_keys, self._tags, strict=True))
        self._fields = dict(zip(field_keys, self._fields, strict=True))
        self._keys = None

    @property
    def tags(self) -> dict[str, str]:
        if self._keys is not None:
            self._unpack()
        return self._tags  # type: ignore[no-any-return]

    @tags.setter
    def tags(self, value: dict[str, str]) -> None:
        if self._keys is not None:
            self._unpack()
        self._tags = value
        self._line = self._line_u = None

    def add_tags(self, defaults: Mapping[str, str]) -> None:
        """Add the tags of ``defaults`` this metric lacks (an input's extra tags)."""
        tags = self.tags
        for key, value in defaults.items():
            if key not in tags:
                tags[key] = value
                self._line = self._line_u = None

    @property
    def fields(self) -> dict[str, FieldValue]:
        if self._keys is not None:
            self._unpack()
        return self._fields  # type: ignore[no-any-return]

    @fields.setter
    def fields(self, value: dict[str, FieldValue]) -> None:
        if self._keys is not None:
            self._unpack()
        self._fields = value
        self._line = self._line_u = None

    def tag_items(self) -> Iterable[tuple[str, str]]:
        """(key, value) of every tag, without unpacking a packed metric."""
        if self._keys is not None:
            return zip(self._keys[0], self._tags, strict=True)
        return self._tags.items()  # type: ignore[no-any-return]

    def field_items(self) -> Iterable[tuple[str, FieldValue]]:
        """(key, value) of every field, without unpacking a packed metric."""
        if self._keys is not None:
            return zip(self._keys[1], self._fields, strict=True)
        return self._fields.items()  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"Metric({self.name!r}, {self.tags!r}, {self.fields!r}, {self.time})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Metric):
            return NotImplemented
        return (self.name, self.tags, self.fields, self.time) == (
            other.name,
            other.tags,
            other.fields,
            other.time,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def line(self, uint_support: bool = False) -> str:
        """This metric as one line of line protocol (no trailing newline); '' if unwritable."""
        return self.line_bytes(uint_support).decode()

    def line_bytes(self, uint_support: bool = False) -> bytes:
        """:meth:`line`, UTF-8 encoded: what outputs send, and what is cached (half the memory
        of a ``str`` line once a tag holds a non-ASCII letter, as Cyrillic room names do)."""
        if uint_support:
            if self._line_u is None:
                self._line_u = self._build(True).encode("utf-8", "replace")
            return self._line_u
        if self._line is None:
            self._line = self._build(False).encode("utf-8", "replace")
        return self._line

    def _build(self, uint_support: bool) -> str:
        name = _cached(_NAMES, self.name, _escape_name)
        if not name or name.startswith("#"):
            return ""
        head = [name]
        packed = self._keys
        if packed is not None:
            tag_keys, field_keys = packed
            tag_items: Iterable[tuple[str, str]] = sorted(zip(tag_keys, self._tags, strict=True))
            field_items: Iterable[tuple[str, FieldValue]] = zip(field_keys, self._fields,
                                                                strict=True)
        else:
            tag_items = sorted(self._tags.items()) if self._tags else ()
            field_items = self._fields.items()
        if tag_items:
            keys = _TAG_KEYS
            for key, value in tag_items:
                if not value:
                    continue
                ekey = keys.get(key)
                if ekey is None:
                    ekey = _cached(keys, key, _escape_key)
                if not ekey:
                    continue
                if not _NEEDS_KEY_ESCAPE.isdisjoint(value):
                    value = _escape_key(value)
                    if not value:
                        continue
                head.append(f",{ekey}={value}")
        body = []
        fkeys = _FIELD_KEYS
        for key, value in field_items:
            ekey = fkeys.get(key)
            if ekey is None:
                ekey = _cached(fkeys, key, _escape_field_key)
            if not ekey:
                continue
            kind = type(value)
            if kind is float:
                if value - value != 0.0:  # NaN or infinite: not writable
                    continue
                body.append(f"{ekey}={value!r}")
            elif kind is str:
                if "\\" in value or '"' in value:
                    value = _escape_string(value)
                body.append(f'{ekey}="{value}"')
            elif kind is bool:
                body.append(f"{ekey}=true" if value else f"{ekey}=false")
            elif kind is int and _INT64_MIN <= value <= _INT64_MAX:
                body.append(f"{ekey}={value}i")
            else:
                text = _format_field(value, uint_support)
                if text is not None:
                    body.append(f"{ekey}={text}")
        if not body:
            return ""
        return f"{''.join(head)} {','.join(body)} {self.time}"


_KEY_SETS: dict[tuple[tuple[str, ...], tuple[str, ...]],
                tuple[tuple[str, ...], tuple[str, ...]]] = {}
_NAMES: dict[str, str] = {}
_TAG_KEYS: dict[str, str] = {}
_FIELD_KEYS: dict[str, str] = {}
_CACHE_LIMIT = 4096


def _cached(cache: dict[str, str], text: str, escape: Callable[[str], str]) -> str:
    """``escape(text)``, remembered: names and keys come from a small, fixed set, and escaping
    them again for each of 60,000 metrics a cycle was a third of building the line protocol.
    (Bounded, in case some input makes keys up.)"""
    escaped = cache.get(text)
    if escaped is None:
        escaped = escape(text)
        if len(cache) < _CACHE_LIMIT:
            cache[text] = escaped
    return escaped


def to_lines(metrics: Iterable[Metric], uint_support: bool = False) -> bytes:
    """A batch of metrics as one newline-separated line-protocol body (unwritable ones skipped).

    A batch read back from the disk buffer (:class:`~webbo.agent.core.lines.LineBatch`) already
    holds that body and hands it over as it is."""
    encoded = getattr(metrics, "encoded", None)
    if encoded is not None:
        return encoded(uint_support)  # type: ignore[no-any-return]
    return b"\n".join([line for m in metrics if (line := m.line_bytes(uint_support))])
