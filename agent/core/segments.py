"""The disk buffer's files: append-only segments of checksummed records, and the ack mark.

A buffer folder holds ``<first seq, 20 digits>.seg`` files and one ``ack`` file. A segment is an
8-byte file header followed by records; a record is a header, the byte length of each metric's
line, and the lines themselves (each ending in a newline)::

    record header  <magic u32><count u32><first_seq u64><added_ns i64><payload_len u32>
                   <flags u32><crc32 u32>      (crc32 of the header before it and the payload)
    payload        count × u32 line lengths, then the lines

Sequence numbers grow by one per metric and never repeat in a folder. The ``ack`` file holds
the highest sequence number the server has taken (with its own crc), rewritten in place.

:func:`scan` reads a segment back, checking every record; at the first bad one (power lost in
the middle of a write: a short header, a length past the end, a checksum that does not match)
the file is cut there and everything before it is kept. Nothing here touches asyncio: the disk
buffer calls it from its own thread.
"""

from __future__ import annotations

import os
import re
import struct
import sys
import zlib
from array import array
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

from webbo.agent.core.lines import Chunk

__all__ = ["FILE_HEADER", "RECORD", "Cut", "Segment", "encode_lines", "encode_record", "read_ack",
           "read_records", "scan", "segment_name", "write_ack"]

FILE_HEADER = b"WBSEG\x001\n"
RECORD = struct.Struct("<IIQqIII")
RECORD_MAGIC = 0x31524257  # "WBR1"
FLAG_MAYBE_UINT = 1
ACK = struct.Struct("<QI")
_LITTLE = sys.byteorder == "little"
_UINT_FIELD = re.compile(rb"=\d+u[ ,]")
"""A field written with the unsigned suffix (may also match inside a string: then the record is
only parsed when it need not be, never the other way round)."""


def segment_name(first_seq: int) -> str:
    return f"{first_seq:020d}.seg"


@dataclass
class Segment:
    """One segment file as the buffer knows it."""

    path: Path
    first_seq: int
    next_seq: int
    """One past the last sequence number in it."""
    size: int
    first_added_ns: int = 0
    records: int = 0

    @property
    def count(self) -> int:
        return self.next_seq - self.first_seq


@dataclass
class Cut:
    """A segment cut at its last good record."""

    path: Path
    offset: int
    dropped_bytes: int
    reason: str


def encode_lines(lines: list[str] | list[bytes]) -> tuple[list[int], bytes]:
    """Each line's byte length (with its newline; 0 for an unwritable metric's empty line) and
    the lines as one block. Lines may come as text or, as metrics cache them, UTF-8 bytes
    (joined as they are); ASCII text (the usual case) is encoded in one piece."""
    if lines and isinstance(lines[0], bytes):
        raw: list[bytes] = lines  # type: ignore[assignment]
        if all(raw):
            return [len(line) + 1 for line in raw], b"\n".join(raw) + b"\n"
        return [len(line) + 1 if line else 0 for line in raw], \
            b"".join(line + b"\n" for line in raw if line)
    texts: list[str] = lines  # type: ignore[assignment]
    text = "\n".join(texts) + "\n"
    if text.isascii() and all(texts):
        return [len(line) + 1 for line in texts], text.encode()
    encoded = [(line + "\n").encode() if line else b"" for line in texts]
    return [len(e) for e in encoded], b"".join(encoded)


def encode_record(first_seq: int, added_ns: int, lengths: list[int], data: bytes) -> bytes:
    """One record of metrics whose lines (each ending in a newline; none for an unwritable
    metric) are ``data``, ``lengths[i]`` bytes each."""
    index = array("I", lengths)
    if not _LITTLE:
        index.byteswap()
    payload = index.tobytes() + data
    flags = FLAG_MAYBE_UINT if _UINT_FIELD.search(data) else 0
    head = RECORD.pack(RECORD_MAGIC, len(lengths), first_seq, added_ns, len(payload), flags, 0)
    crc = zlib.crc32(payload, zlib.crc32(head[:-4]))
    return head[:-4] + crc.to_bytes(4, "little") + payload


def _decode(head: bytes, payload: bytes) -> Chunk:
    _, count, first_seq, added_ns, _, flags, _ = RECORD.unpack(head)
    lengths = array("I")
    lengths.frombytes(payload[:4 * count])
    if not _LITTLE:
        lengths.byteswap()
    offsets = list(accumulate(lengths, initial=0))
    return Chunk(first_seq, payload[4 * count:], offsets, bool(flags & FLAG_MAYBE_UINT),
                 added_ns)


def _check(head: bytes, payload: bytes | None, remaining: int) -> str:
    """Why this record is bad ("" if it is good)."""
    if len(head) < RECORD.size:
        return "short record header"
    magic, count, _, _, length, _, crc = RECORD.unpack(head)
    if magic != RECORD_MAGIC:
        return "bad record magic"
    if length > remaining - RECORD.size or 4 * count > length:
        return "record longer than the file"
    if payload is None:
        return ""
    if zlib.crc32(payload, zlib.crc32(head[:-4])) != crc:
        return "checksum mismatch"
    return ""


def scan(path: Path, *, repair: bool = True) -> tuple[Segment | None, Cut | None]:
    """Check every record of a segment; cut the file at the first bad one (when ``repair``).

    Returns the segment (None when it holds no good record) and the cut, if there was one."""
    with open(path, "rb") as handle:
        data = handle.read()
    first = int(path.name.split(".")[0])
    segment = Segment(path, first, first, len(FILE_HEADER))
    cut: Cut | None = None
    if data[:len(FILE_HEADER)] != FILE_HEADER:
        cut = Cut(path, 0, len(data), "bad file header")
    pos = len(FILE_HEADER)
    while cut is None and pos < len(data):
        head = data[pos:pos + RECORD.size]
        reason = _check(head, None, len(data) - pos)
        payload = b""
        if not reason:
            length = RECORD.unpack(head)[4]
            payload = data[pos + RECORD.size:pos + RECORD.size + length]
            reason = _check(head, payload, len(data) - pos)
        if reason:
            cut = Cut(path, pos, len(data) - pos, reason)
            break
        _, count, first_seq, added_ns, length, _, _ = RECORD.unpack(head)
        if segment.records == 0:
            segment.first_seq = first_seq
            segment.first_added_ns = added_ns
        segment.next_seq = first_seq + count
        segment.records += 1
        pos += RECORD.size + length
        segment.size = pos
    if cut is not None and repair:
        if cut.offset == 0:
            os.unlink(path)
        else:
            os.truncate(path, cut.offset)
    return (segment if segment.records else None), cut


def read_records(path: Path, offset: int, max_bytes: int) -> tuple[list[Chunk], int, str]:
    """Records from ``offset`` on, about ``max_bytes`` of them (at least one). Returns the chunks,
    the offset after the last one read, and why reading stopped early on a bad record ("")."""
    chunks: list[Chunk] = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        while offset < size and (not chunks or max_bytes > 0):
            head = os.pread(fd, RECORD.size, offset)
            reason = _check(head, None, size - offset)
            if reason:
                return chunks, offset, reason
            length = RECORD.unpack(head)[4]
            payload = os.pread(fd, length, offset + RECORD.size)
            reason = _check(head, payload, size - offset)
            if reason:
                return chunks, offset, reason
            chunks.append(_decode(head, payload))
            offset += RECORD.size + length
            max_bytes -= RECORD.size + length
    finally:
        os.close(fd)
    return chunks, offset, ""


def read_ack(path: Path) -> int:
    """The highest acknowledged sequence number, -1 when there is none (or it is damaged)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return -1
    if len(raw) < ACK.size:
        return -1
    seq, crc = ACK.unpack(raw[:ACK.size])
    if zlib.crc32(raw[:8]) != crc:
        return -1
    return seq - 1  # stored +1 so that "nothing acknowledged" (-1) fits an unsigned field


def write_ack(fd: int, acked: int) -> None:
    raw = (acked + 1).to_bytes(8, "little")
    os.pwrite(fd, ACK.pack(acked + 1, zlib.crc32(raw)), 0)
