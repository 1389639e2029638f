"""Stored line protocol read back: :class:`LineBatch` and :func:`parse_line`.

The disk buffer (:mod:`.disk_buffer`) keeps metrics as the line protocol an output sends, so a
replay does not rebuild 60,000 Metric objects a cycle only to turn them into the same text
again: a :class:`LineBatch` is a ``Sequence[Metric]`` whose :meth:`~LineBatch.encoded` hands
:func:`~webbo.agent.core.metric.to_lines` the stored bytes as they are. An output that looks at
the metrics themselves (tags, fields) gets them parsed, lazily.

Lines are stored in the lossless flavour (unsigned integers with the ``u`` suffix); a record
that may hold one is flagged, and only such records are parsed and rebuilt for an output that
writes unsigned integers as ``i`` (InfluxDB 1.x).

The parser reads exactly what :meth:`Metric.line` writes: a backslash escapes a separator
(``,`` and space in names; ``,``, ``=`` and space in keys and tag values) and is literal
elsewhere; string field values escape ``\\`` and ``"`` and may hold newlines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import overload

from webbo.agent.core.metric import FieldValue, Metric, UInt

__all__ = ["Chunk", "LineBatch", "parse_line"]

_NAME = re.compile(r"(?:\\[, ]|[^, ])+")
_KEY = re.compile(r"(?:\\[,= ]|[^,= ])+")
_STRING = re.compile(r'"((?:\\.|[^"\\])*)"', re.S)
_PLAIN = re.compile(r"[^, ]+")
_UNESCAPE = re.compile(r"\\([,= ])")
_UNESCAPE_STRING = re.compile(r"\\([\\\"])")


def _unescape(text: str) -> str:
    return _UNESCAPE.sub(r"\1", text) if "\\" in text else text


def _value(text: str) -> FieldValue:
    last = text[-1]
    if last == "i":
        return int(text[:-1])
    if last == "u":
        return UInt(int(text[:-1]))
    if text in ("true", "t", "T", "True", "TRUE"):
        return True
    if text in ("false", "f", "F", "False", "FALSE"):
        return False
    return float(text)


def _token(pattern: re.Pattern[str], line: str, pos: int) -> tuple[str, int]:
    match = pattern.match(line, pos)
    if match is None:
        raise ValueError(f"bad line protocol at {pos}: {line[:200]!r}")
    return _unescape(match.group()), match.end()


def parse_line(line: str) -> Metric:
    """The metric of one line of line protocol as :meth:`Metric.line` writes it (the line is
    kept as the metric's cached uint-flavoured text). Raises ValueError on a malformed line."""
    name, pos = _token(_NAME, line, 0)
    tags: dict[str, str] = {}
    while pos < len(line) and line[pos] == ",":
        key, pos = _token(_KEY, line, pos + 1)
        if line[pos:pos + 1] != "=":
            raise ValueError(f"tag without value at {pos}: {line[:200]!r}")
        tags[key], pos = _token(_KEY, line, pos + 1)
    fields: dict[str, FieldValue] = {}
    separator = " "
    while line[pos:pos + 1] == separator:
        key, pos = _token(_KEY, line, pos + 1)
        if line[pos:pos + 1] != "=":
            raise ValueError(f"field without value at {pos}: {line[:200]!r}")
        pos += 1
        if line[pos:pos + 1] == '"':
            match = _STRING.match(line, pos)
            if match is None:
                raise ValueError(f"unterminated string at {pos}: {line[:200]!r}")
            text = match.group(1)
            fields[key] = _UNESCAPE_STRING.sub(r"\1", text) if "\\" in text else text
            pos = match.end()
        else:
            match = _PLAIN.match(line, pos)
            if match is None:
                raise ValueError(f"empty field value at {pos}: {line[:200]!r}")
            fields[key] = _value(match.group())
            pos = match.end()
        separator = ","
    if line[pos:pos + 1] != " " or not fields:
        raise ValueError(f"no timestamp at {pos}: {line[:200]!r}")
    metric = Metric(name, tags, fields, int(line[pos + 1:]))
    metric._line_u = line.encode("utf-8", "replace")  # Metric caches its lines as UTF-8
    return metric


_UNWRITABLE = "#unwritable"


class Chunk:
    """Consecutive metrics of one stored record: ``data`` holds their lines, each ending in a
    newline (an unwritable metric has none), ``offsets[i]`` where metric ``i`` starts in it."""

    __slots__ = ("added_ns", "data", "first_seq", "maybe_uint", "offsets")

    def __init__(self, first_seq: int, data: bytes, offsets: Sequence[int], maybe_uint: bool,
                 added_ns: int = 0) -> None:
        self.first_seq = first_seq
        self.data = data
        self.offsets = offsets
        self.maybe_uint = maybe_uint
        self.added_ns = added_ns

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.offsets) - 2

    def part(self, start: int, stop: int) -> Chunk:
        """Metrics ``start`` to ``stop`` (exclusive) of this chunk."""
        if start == 0 and stop == len(self):
            return self
        offsets = self.offsets
        base = offsets[start]
        return Chunk(self.first_seq + start, self.data[base:offsets[stop]],
                     [o - base for o in offsets[start:stop + 1]], self.maybe_uint, self.added_ns)

    def lines(self) -> Iterator[str]:
        """Each metric's line ("" for an unwritable one)."""
        data, offsets = self.data, self.offsets
        for i in range(len(offsets) - 1):
            start, end = offsets[i], offsets[i + 1]
            yield data[start:end - 1].decode() if end > start else ""


class LineBatch(Sequence[Metric]):
    """Metrics read back from the disk buffer; see the module docstring."""

    __slots__ = ("_chunks", "_count", "_metrics")

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self._chunks = list(chunks)
        self._count = sum(len(c) for c in self._chunks)
        self._metrics: list[Metric] | None = None

    def __len__(self) -> int:
        return self._count

    @property
    def chunks(self) -> list[Chunk]:
        return self._chunks

    def encoded(self, uint_support: bool) -> bytes:
        """The batch as one newline-separated line-protocol body (what :func:`to_lines` would
        make of the metrics)."""
        parts: list[bytes] = []
        for chunk in self._chunks:
            if uint_support or not chunk.maybe_uint:
                parts.append(chunk.data)
                continue
            for line in chunk.lines():
                if line:
                    text = parse_line(line).line(False)
                    if text:
                        parts.append(text.encode() + b"\n")
        return b"".join(parts)[:-1]

    def _parsed(self) -> list[Metric]:
        if self._metrics is None:
            self._metrics = [parse_line(line) if line else Metric(_UNWRITABLE, None, {}, 0)
                             for chunk in self._chunks for line in chunk.lines()]
        return self._metrics

    @overload
    def __getitem__(self, index: int) -> Metric: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Metric]: ...

    def __getitem__(self, index: int | slice) -> Metric | Sequence[Metric]:
        return self._parsed()[index]

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._parsed())
