"""A lean HTTP/1.1 client for device web APIs, on top of :meth:`Net.exchange
<webbo.agent.fleet.net.Net.exchange>`.

Why not aiohttp here: identifying an Antminer takes two HTTP requests (``GET /`` for the realm,
``get_system_info.cgi``), and aiohttp's per-request machinery (URL objects, connector, happy
eyeballs, stream reader, response object, timers) cost more CPU than everything else the
identification does. A device web API needs much less: one request per connection
(``Connection: close``), a status line, headers, a body delimited by ``Content-Length``,
``chunked`` or the end of the connection. The socket is one of the agent's bounded slots, with
the same connect and reply timeouts as the RPC exchanges.

:func:`parse_response` never raises anything but :class:`HttpGarbled` (a
:class:`~webbo.agent.core.errors.DeviceError`), whatever bytes the device sent, so a garbled answer
fails that one device and nothing else.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from webbo.agent.core.errors import DeviceError
from webbo.agent.fleet.net import MAX_REPLY, Complete, Net

__all__ = ["HttpGarbled", "Response", "build_request", "parse_response", "request",
           "response_complete"]

_HEAD_END = b"\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"\ncontent-length[ \t]*:[ \t]*([^\r\n]*)", re.I)
_CHUNKED = re.compile(rb"\ntransfer-encoding[ \t]*:[^\r\n]*chunked", re.I)
_BAD_HEADER_TEXT = re.compile(r"[\r\n\x00]")


class HttpGarbled(DeviceError):
    """The answer is not a readable HTTP/1.x response."""


@dataclass(slots=True)
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    """Lower-case names; the first of repeated headers (as aiohttp's ``headers.get``)."""
    body: bytes

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


def build_request(method: str, host: str, path: str, headers: Mapping[str, str] | None = None,
                  body: bytes | None = None) -> bytes:
    """One request, ``Connection: close`` (a device API answers one request per connection).

    ``host`` is the ``Host`` header value (``ip`` or ``ip:port``). Raises ValueError for a
    method, path or header that would break the request line (CR, LF, NUL, spaces in the
    path): such text comes from code or configuration, never from a device.
    """
    if not method.isalpha() or not path.startswith("/") or " " in path or \
            _BAD_HEADER_TEXT.search(path) or _BAD_HEADER_TEXT.search(host):
        raise ValueError(f"unusable HTTP request line: {method!r} {path!r} (host {host!r})")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close", "Accept: */*",
             "Accept-Encoding: identity", "User-Agent: webbo"]
    if headers:
        for name, value in headers.items():
            if _BAD_HEADER_TEXT.search(name) or _BAD_HEADER_TEXT.search(value) or ":" in name:
                raise ValueError(f"unusable HTTP header {name!r}")
            lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
    return head + body if body else head


def _head_end(data: bytes | bytearray, offset: int = 0) -> tuple[int, int]:
    """(end of the header lines, start of the body), or (-1, -1) while the head is incomplete.
    A bare-LF head (``\\n\\n``) is accepted too: some embedded servers send one."""
    end = data.find(_HEAD_END, offset)
    bare = data.find(b"\n\n", offset)
    if bare >= 0 and (end < 0 or bare < end):
        return bare, bare + 2
    if end >= 0:
        return end, end + 4
    return -1, -1


def _status_code(head: bytes | bytearray) -> int | None:
    line_end = head.find(b"\n")
    parts = (head if line_end < 0 else head[:line_end]).split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or len(parts[1]) != 3 or \
            not parts[1].isdigit():
        return None
    return int(parts[1])


def response_complete(buffer: bytearray) -> bool:
    """Is the response in ``buffer`` whole? (A ``complete`` predicate for ``Net.exchange``.)

    Only a cheap look at the head: a body without ``Content-Length`` or ``chunked`` ends with
    the connection, which ``Net.exchange`` waits for anyway, and so does anything unreadable;
    :func:`parse_response` then says what is wrong.
    """
    offset = 0
    while True:
        end, start = _head_end(buffer, offset)
        if end < 0:
            return False
        head = buffer[offset:end]
        code = _status_code(head)
        if code is None:
            return False
        if 100 <= code < 200 and code != 101:
            offset = start  # an interim answer: wait for the real one
            continue
        break
    if code < 200 or code in (204, 304):
        return True
    if _CHUNKED.search(head):
        if not buffer.endswith(b"\n"):  # the end of a chunked body is an empty line
            return False
        try:
            return _dechunk(bytes(buffer[start:]), partial_ok=True)[1]
        except HttpGarbled:
            return True  # unreadable: stop here, parse_response says why
    match = _CONTENT_LENGTH.search(head)
    if match is None:
        return False
    length = match.group(1).strip()
    return length.isdigit() and len(buffer) - start >= int(length)


def head_and(count: int) -> Complete:
    """A ``complete`` predicate: the head and the first ``count`` bytes of the body are enough
    (for a peek such as ``GET /``, whose page may be large and is not needed)."""

    def enough(buffer: bytearray) -> bool:
        end, start = _head_end(buffer)
        return end >= 0 and (len(buffer) - start >= count or response_complete(buffer))

    return enough


class _CutShort(Exception):
    """Internal: the data ends before the chunked body does."""


def _line(data: bytes, position: int) -> tuple[bytes, int]:
    """The line at ``position`` (without its CR LF) and where the next one starts."""
    end = data.find(b"\n", position)
    if end < 0:
        raise _CutShort
    return data[position:end].rstrip(b"\r"), end + 1


def _dechunk(data: bytes, partial_ok: bool) -> tuple[bytes, bool]:
    """(body, whole) of a chunked body: ``whole`` once the last chunk and the trailer section
    (usually empty) have arrived. Cut short: an error, or what came if ``partial_ok``."""
    out = bytearray()
    position = 0
    try:
        while True:
            size_line, position = _line(data, position)
            size_text = size_line.split(b";", 1)[0].strip()
            if not size_text or size_text.lstrip(b"0123456789abcdefABCDEF"):
                raise HttpGarbled(f"bad chunk size {size_text[:20]!r}")
            size = int(size_text, 16)
            if size == 0:  # the last chunk; trailers (not needed) end with an empty line
                while True:
                    trailer, position = _line(data, position)
                    if not trailer:
                        return bytes(out), True
            if position + size > len(data):
                out += data[position:]
                raise _CutShort
            out += data[position:position + size]
            position += size
            if data.startswith(b"\r\n", position):
                position += 2
            elif data.startswith(b"\n", position):
                position += 1
            elif position < len(data):
                raise HttpGarbled("chunk not followed by CRLF")
    except _CutShort:
        if partial_ok:
            return bytes(out), False
        raise HttpGarbled("chunked body cut short") from None


def _decode_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    last = ""
    for raw in block.split(b"\n"):
        line = raw.rstrip(b"\r").decode("latin-1")
        if not line:
            continue
        if line[0] in " \t" and last:  # obsolete line folding
            headers[last] = f"{headers[last]} {line.strip()}"
            continue
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if not colon or not name:
            raise HttpGarbled(f"bad header line {line[:60]!r}")
        last = name if name not in headers else ""
        headers.setdefault(name, value.strip())
    return headers


def parse_response(raw: bytes, *, partial_ok: bool = False) -> Response:
    """The response in ``raw``; raises :class:`HttpGarbled` for anything else.

    ``partial_ok``: a body shorter than announced is returned as it is (a peek that stopped
    reading early); otherwise it is an error (the connection was cut mid-answer).
    """
    offset = 0
    while True:
        if not raw[offset:].strip():
            raise HttpGarbled("empty reply" if offset == 0 else "no answer after 100 Continue")
        end, start = _head_end(raw, offset)
        if end < 0:
            what = raw[offset:offset + 60]
            raise HttpGarbled("HTTP header cut short" if what.startswith(b"HTTP/1.")
                              else f"not an HTTP answer: {what!r}")
        head = raw[offset:end]
        status = _status_code(head)
        if status is None or status < 100:
            first_line = head.split(b"\n", 1)[0][:60]
            raise HttpGarbled(f"not an HTTP answer: {first_line!r}")
        if 100 <= status < 200 and status != 101:
            offset = start  # an interim answer (100 Continue): the real one follows
            continue
        break
    line_end = head.find(b"\n")
    status_line = (head if line_end < 0 else head[:line_end]).rstrip(b"\r")
    parts = status_line.split(None, 2)
    reason = parts[2].decode("latin-1").strip() if len(parts) > 2 else ""
    headers = _decode_headers(head[line_end + 1:] if line_end >= 0 else b"")
    rest = raw[start:]
    if status in (204, 304) or status < 200:
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(rest, partial_ok)[0]
    elif "content-length" in headers:
        text = headers["content-length"].split(",")[0].strip()
        if not text.isdigit():
            raise HttpGarbled(f"bad Content-Length {text[:20]!r}")
        length = int(text)
        if len(rest) < length and not partial_ok:
            raise HttpGarbled(f"reply cut short: {len(rest)} of {length} body bytes")
        body = rest[:length]
    else:
        body = rest
    encoding = headers.get("content-encoding", "").strip().lower()
    if body and encoding in ("gzip", "deflate", "x-gzip"):
        body = _inflate(body, encoding, partial_ok)
    return Response(status, reason, headers, body)


def _inflate(body: bytes, encoding: str, partial_ok: bool) -> bytes:
    """Undo gzip/deflate (we ask for ``identity``; a server may compress anyway)."""
    wbits = 16 + zlib.MAX_WBITS if "gzip" in encoding else zlib.MAX_WBITS
    try:
        inflater = zlib.decompressobj(wbits)
        out = inflater.decompress(body, MAX_REPLY)
        if inflater.unconsumed_tail:
            raise HttpGarbled(f"compressed body larger than {MAX_REPLY} bytes")
        if not inflater.eof and not partial_ok:
            raise HttpGarbled("compressed body cut short")
        return out
    except zlib.error:
        if encoding == "deflate":  # some servers send raw deflate without the zlib header
            try:
                return zlib.decompressobj(-zlib.MAX_WBITS).decompress(body, MAX_REPLY)
            except zlib.error:
                pass
        raise HttpGarbled(f"unreadable {encoding} body") from None


async def request(net: Net, ip: str, port: int, method: str, path: str, *,
                  headers: Mapping[str, str] | None = None, body: bytes | None = None,
                  timeout: float | None = None, connect_timeout: float | None = None,
                  peek: int | None = None, limit: int = MAX_REPLY) -> Response:
    """One request on its own connection (in one of ``net``'s socket slots).

    ``peek``: stop reading after the head and this many body bytes (the body is then cut).
    Raises what :meth:`Net.exchange` raises (``DeviceUnreachable``, ``DeviceTimeout``,
    ``DeviceError``) and :class:`HttpGarbled`.
    """
    name = f"[{ip}]" if ":" in ip else ip
    host = name if port == 80 else f"{name}:{port}"
    payload = build_request(method, host, path, headers, body)
    complete = response_complete if peek is None else head_and(peek)
    raw = await net.exchange(ip, port, payload, complete=complete, timeout=timeout,
                             connect_timeout=connect_timeout, limit=limit)
    return parse_response(raw, partial_ok=peek is not None)
