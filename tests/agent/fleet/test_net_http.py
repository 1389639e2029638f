"""The device network layer on real loopback sockets: Net.exchange (connect, partial sends,
reply limits, timeouts, the socket bound, cancellation), the lean HTTP/1.1 client and its parser
(hypothesis: no byte string crashes it), and the Antminer web client's error semantics."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webbo.agent.core.errors import DeviceError, OutcomeUnknownError
from webbo.agent.fleet import http1
from webbo.agent.fleet.net import DeviceTimeout, DeviceUnreachable, Net
from webbo.plugins.common.rpc4028.client import nul_terminated
from webbo.plugins.inputs.bitmain_http.web import WebClient, get_root

pytestmark = pytest.mark.timeout(120)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[int]]]:
    """Start a TCP server on 127.0.0.1 with a handler; returns its port."""
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """An HTTP request's head and (Content-Length) body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + (await reader.readexactly(length) if length else b"")


def holding(release: asyncio.Event, *pieces: bytes, http: bool = False) -> Handler:
    """A handler that reads the request, writes ``pieces`` one by one, then keeps the
    connection open until ``release`` is set."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await (read_request(reader) if http else reader.read(100))
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.01)
        await release.wait()
        writer.close()

    return handler


# -- Net.exchange ------------------------------------------------------------------------------


async def test_reply_until_the_peer_closes(serve):
    async def handler(reader, writer):
        request = await reader.read(100)
        writer.write(b"got " + request)
        await writer.drain()
        writer.close()

    port = await serve(handler)
    net = Net(4, 1.0, 5.0)
    assert await net.exchange("127.0.0.1", port, b"ping") == b"got ping"
    assert net.open_now == 0 and net.connections == 1


async def test_complete_reply_returns_without_waiting_for_close(serve):
    release = asyncio.Event()
    # complete after the NUL, but the connection stays open
    port = await serve(holding(release, b'{"a":1}', b"\x00"))
    net = Net(4, 1.0, 30.0)
    assert await net.exchange("127.0.0.1", port, b"x", complete=nul_terminated) == b'{"a":1}\x00'
    release.set()


async def test_refused_and_unresolvable_are_unreachable():
    net = Net(4, 1.0, 5.0)
    with pytest.raises(DeviceUnreachable, match="connection refused"):
        await net.exchange("127.0.0.1", free_port(), b"x")
    with pytest.raises(DeviceUnreachable):
        await net.exchange("no-such-host.invalid", 4028, b"x")
    assert net.open_now == 0 and net._slots.free == 4


async def test_a_host_name_is_resolved(serve):
    async def handler(reader, writer):
        await reader.read(10)
        writer.write(b"ok")
        writer.close()

    port = await serve(handler)
    assert await Net(2, 2.0, 5.0).exchange("localhost", port, b"x") in (b"ok",)


async def test_connect_timeout_is_unreachable():
    # A listening socket whose accept queue is full drops further SYNs: the connect hangs.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        await asyncio.sleep(0.2)
        net = Net(4, 0.3, 5.0)
        with pytest.raises(DeviceUnreachable, match="connect timed out"):
            await net.exchange("127.0.0.1", port, b"x")
        assert net.open_now == 0
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_reply_timeout_keeps_the_partial_reply(serve):
    release = asyncio.Event()
    port = await serve(holding(release, b'{"half":'))
    net = Net(4, 1.0, 0.3)
    with pytest.raises(DeviceTimeout) as caught:
        await net.exchange("127.0.0.1", port, b"x", complete=nul_terminated)
    assert caught.value.partial == b'{"half":'
    release.set()
    assert net.open_now == 0


async def test_reply_larger_than_the_limit_fails(serve):
    async def handler(reader, writer):
        await reader.read(10)
        writer.write(b"x" * 5000)
        await writer.drain()
        writer.close()

    port = await serve(handler)
    with pytest.raises(DeviceError, match="larger than 1000 bytes"):
        await Net(4, 1.0, 5.0).exchange("127.0.0.1", port, b"x", limit=1000)


async def test_a_large_payload_is_sent_whole(serve):
    payload = bytes(range(256)) * 16384  # 4 MiB: more than one send() takes

    async def handler(reader, writer):
        data = await reader.readexactly(len(payload))
        writer.write(str(len(data)).encode() + (b" same" if data == payload else b" differ"))
        await writer.drain()
        writer.close()

    port = await serve(handler)
    reply = await Net(4, 1.0, 30.0).exchange("127.0.0.1", port, payload)
    assert reply == f"{len(payload)} same".encode()


async def test_reset_without_a_reply_is_a_device_error(serve):
    async def handler(reader, writer):
        await reader.read(10)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()  # RST, not FIN

    port = await serve(handler)
    net = Net(4, 1.0, 5.0)
    try:
        reply = await net.exchange("127.0.0.1", port, b"x")
    except DeviceError as exc:
        assert not isinstance(exc, DeviceUnreachable)
    else:
        assert reply == b""  # the RST raced the FIN: an empty reply, which callers reject
    assert net.open_now == 0


async def test_sockets_stay_within_the_bound_and_cancellation_frees_slots(serve):
    gate = asyncio.Event()
    inside = 0

    async def handler(reader, writer):
        nonlocal inside
        inside += 1
        await reader.read(10)
        await gate.wait()
        writer.write(b"done")
        writer.close()

    port = await serve(handler)
    net = Net(3, 1.0, 30.0)
    tasks = [asyncio.create_task(net.exchange("127.0.0.1", port, b"x")) for _ in range(10)]
    for _ in range(200):
        if inside == 3:
            break
        await asyncio.sleep(0.02)
    assert net.open_now == 3 and len(net._slots.waiters) == 7
    for task in tasks[5:]:  # some waiting for a slot ...
        task.cancel()
    tasks[0].cancel()  # ... and one holding a connection
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(r == b"done" for r in results) == 4
    assert sum(isinstance(r, asyncio.CancelledError) for r in results) == 6
    assert net.peak_open == 3 and net.open_now == 0 and net._slots.free == 3


# -- the HTTP/1.1 parser -----------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_parse_or_fail_cleanly(raw):
    for partial in (False, True):
        try:
            response = http1.parse_response(raw, partial_ok=partial)
        except http1.HttpGarbled:
            continue
        assert 100 <= response.status <= 999 and isinstance(response.body, bytes)
    assert http1.response_complete(bytearray(raw)) in (True, False)
    assert http1.head_and(10)(bytearray(raw)) in (True, False)


http_like = st.builds(
    lambda status, headers, body: b"HTTP/1.1 " + status + b"\r\n" + headers + b"\r\n\r\n" + body,
    st.sampled_from([b"200 OK", b"401 Unauthorized", b"100 Continue", b"204 No Content",
                     b"2x0 Bad", b""]),
    st.lists(st.sampled_from([b"Content-Length: 5", b"Content-Length: -1", b"Content-Length: x",
                              b"Transfer-Encoding: chunked", b"Content-Encoding: gzip",
                              b"Content-Encoding: deflate", b" folded", b"nocolon",
                              b"WWW-Authenticate: Digest realm=\"a\""]), max_size=4)
    .map(b"\r\n".join),
    st.binary(max_size=60) | st.sampled_from([b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\n", b"5\r\nhel"]),
)


@settings(max_examples=600, deadline=None)
@given(http_like)
def test_http_shaped_garbage_parses_or_fails_cleanly(raw):
    try:
        http1.parse_response(raw)
    except http1.HttpGarbled:
        pass
    assert http1.response_complete(bytearray(raw)) in (True, False)


def test_bodies_by_length_chunks_and_close():
    ok = http1.parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhelloEXTRA")
    assert (ok.status, ok.reason, ok.body, ok.header("x-a")) == (200, "OK", b"hello", "1")
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
    assert http1.parse_response(chunked).body == b"hello world"
    assert http1.response_complete(bytearray(chunked))
    assert not http1.response_complete(bytearray(chunked[:-12]))
    until_close = b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n{\"a\": 1}"
    assert http1.parse_response(until_close).body == b'{"a": 1}'
    assert not http1.response_complete(bytearray(until_close))  # ends with the connection
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    assert (http1.parse_response(interim).status, http1.parse_response(interim).body) == \
        (201, b"ok")
    assert http1.response_complete(bytearray(interim))
    assert not http1.response_complete(bytearray(interim[:30]))
    empty = http1.parse_response(b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n")
    assert empty.body == b"" and http1.response_complete(bytearray(b"HTTP/1.1 204 No\r\n\r\n"))
    packed = gzip.compress(b'{"x": 1}')
    zipped = (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: "
              + str(len(packed)).encode() + b"\r\n\r\n" + packed)
    assert http1.parse_response(zipped).body == b'{"x": 1}'
    bare_lf = http1.parse_response(b"HTTP/1.1 401 No\nWWW-Authenticate: Digest a=b\n\nbody")
    assert bare_lf.status == 401 and bare_lf.header("WWW-Authenticate") == "Digest a=b"


def test_first_of_repeated_headers_and_clear_errors():
    twice = http1.parse_response(b"HTTP/1.1 401 X\r\nWWW-Authenticate: Digest realm=\"a\"\r\n"
                                 b"WWW-Authenticate: Basic realm=\"b\"\r\n\r\n")
    assert twice.header("www-authenticate") == 'Digest realm="a"'
    with pytest.raises(http1.HttpGarbled, match="cut short: 3 of 10"):
        http1.parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    peeked = http1.parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
                                  partial_ok=True)
    assert peeked.body == b"abc"
    with pytest.raises(http1.HttpGarbled, match="not an HTTP answer"):
        http1.parse_response(b'{"STATUS":[{"STATUS":"S"}]}\x00\r\n\r\n')
    with pytest.raises(http1.HttpGarbled, match="empty reply"):
        http1.parse_response(b"")
    with pytest.raises(http1.HttpGarbled, match="bad chunk size"):
        http1.parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")


def test_requests_cannot_be_smuggled_through_text():
    request = http1.build_request("POST", "127.10.0.1:8080", "/cgi-bin/x.cgi",
                                  {"Authorization": "Digest a=b"}, b"{}")
    assert request.startswith(b"POST /cgi-bin/x.cgi HTTP/1.1\r\nHost: 127.10.0.1:8080\r\n")
    assert b"Connection: close\r\n" in request and request.endswith(b"Content-Length: 2\r\n\r\n{}")
    for bad in ({"path": "/a b"}, {"path": "/a\r\nX: y"}, {"headers": {"X": "a\r\nB: c"}},
                {"method": "GE T"}, {"path": "a"}):
        with pytest.raises(ValueError):
            http1.build_request(bad.get("method", "GET"), "h", bad.get("path", "/"),
                                bad.get("headers"))


# -- the HTTP client on real sockets -----------------------------------------------------------


async def test_chunked_answer_in_pieces_over_a_socket(serve):
    finished = asyncio.Event()
    # the connection stays open: the end of the chunked body must be enough
    port = await serve(holding(finished, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                               b"5\r\nweb", b"bo\r\n1\r\n!\r\n", b"0\r\n\r\n", http=True))
    response = await http1.request(Net(2, 1.0, 30.0), "127.0.0.1", port, "GET", "/x")
    finished.set()
    assert response.status == 200 and response.body == b"webbo!"


async def test_the_request_says_host_and_close(serve):
    seen: list[bytes] = []

    async def handler(reader, writer):
        seen.append(await read_request(reader))
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        writer.close()

    port = await serve(handler)
    response = await http1.request(Net(2, 1.0, 5.0), "127.0.0.1", port, "POST", "/a",
                                   headers={"X-Requested-With": "XMLHttpRequest"}, body=b"{}")
    assert response.status == 204 and response.body == b""
    assert seen[0].startswith(f"POST /a HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
    assert b"\r\nConnection: close\r\n" in seen[0] and seen[0].endswith(b"\r\n\r\n{}")


async def test_root_peek_stops_reading_a_large_page(serve):
    finished = asyncio.Event()
    # a page of 10 MB announced, 1,200 bytes sent, the rest never comes
    port = await serve(holding(finished, b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n"
                               + b"<html>" * 200, http=True))
    status, challenge, body = await get_root(Net(2, 1.0, 30.0), "127.0.0.1", port)
    finished.set()
    assert status == 200 and challenge == "" and body.startswith("<html>") and len(body) == 512


async def test_web_client_errors_for_reads_and_writes(serve):
    async def silent_after_request(reader, writer):
        await read_request(reader)
        writer.close()  # no answer at all

    async def garbage(reader, writer):
        await read_request(reader)
        writer.write(b"\x00\xffnot http at all\r\n\r\n")
        writer.close()

    net = Net(4, 1.0, 3.0)
    gone = WebClient(net, "root", "root", await serve(silent_after_request))
    with pytest.raises(OutcomeUnknownError, match="may or may not have been applied"):
        await gone.json("127.0.0.1", "/cgi-bin/set_miner_conf.cgi", {"a": 1}, write=True)
    with pytest.raises(DeviceError, match=r"/cgi-bin/get_miner_conf\.cgi"):
        await gone.json("127.0.0.1", "/cgi-bin/get_miner_conf.cgi")
    broken = WebClient(net, "root", "root", await serve(garbage))
    with pytest.raises(DeviceError, match="not an HTTP answer"):
        await broken.json("127.0.0.1", "/cgi-bin/get_system_info.cgi")
    refused = WebClient(net, "root", "root", free_port())
    with pytest.raises(DeviceUnreachable):  # never connected: certainly not applied
        await refused.json("127.0.0.1", "/cgi-bin/set_miner_conf.cgi", {"a": 1}, write=True)
    assert net.open_now == 0


async def test_web_client_answers_the_digest_challenge(serve):
    from webbo.plugins.inputs.bitmain_http.sim.digest_server import DigestServer

    server = DigestServer("antMiner Configuration")
    seen: list[bytes] = []

    async def handler(reader, writer):
        request = await read_request(reader)
        seen.append(request)
        auth = next((line.split(b":", 1)[1].strip().decode() for line in request.split(b"\r\n")
                     if line.lower().startswith(b"authorization:")), None)
        ok, _ = server.check(auth, request.split(b" ")[0].decode(), "root", "pw")
        if ok:
            body = b'{"macaddr":"AA:BB:CC:00:11:22"}'
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
        else:
            writer.write(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: "
                         + server.challenge().encode() + b"\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    port = await serve(handler)
    client = WebClient(Net(2, 1.0, 3.0), "root", "pw", port)
    assert await client.json("127.0.0.1", "/cgi-bin/get_system_info.cgi") == \
        {"macaddr": "AA:BB:CC:00:11:22"}
    assert len(seen) == 2  # challenged once, then answered ...
    assert await client.json("127.0.0.1", "/cgi-bin/get_system_info.cgi")
    assert len(seen) == 3  # ... and the challenge is reused pre-emptively


# -- kept connections and the port check's connections ------------------------------------------


def line_server(accepted: list[int], received: list[bytes], *, close_after: bool = False,
                answer: bool = True) -> Handler:
    """Answers each newline-ended request with ``ok <request>`` on the same connection
    (``close_after``: then closes, like a one-request API; ``answer``: False reads and hangs
    up without a word)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        while True:
            line = await reader.readline()
            if not line:
                break
            received.append(line)
            if not answer:
                break
            writer.write(b"ok " + line)
            await writer.drain()
            if close_after:
                break
        writer.close()

    return handler


def whole_line(buffer: bytearray) -> bool:
    return buffer.endswith(b"\n")


async def test_a_kept_connection_carries_the_next_reads(serve):
    accepted: list[int] = []
    received: list[bytes] = []
    port = await serve(line_server(accepted, received))
    net = Net(4, 1.0, 5.0)
    for n in range(3):
        reply = await net.exchange("127.0.0.1", port, b"r%d\n" % n, complete=whole_line,
                                   keep=True)
        assert reply == b"ok r%d\n" % n
    assert len(accepted) == 1 and net.reused == 2 and net.idle == 1
    assert net.open_now == 0 and net._slots.free == 4  # idle connections hold no slot
    await net.close()
    assert net.idle == 0


async def test_a_connection_the_device_closed_is_replaced_for_reads_only(serve):
    accepted: list[int] = []
    received: list[bytes] = []
    port = await serve(line_server(accepted, received, close_after=True))
    net = Net(4, 1.0, 5.0)
    assert await net.exchange("127.0.0.1", port, b"a\n", complete=whole_line,
                              keep=True) == b"ok a\n"
    await asyncio.sleep(0.05)  # the device hangs up after each answer (the mdk mock's way)
    assert await net.exchange("127.0.0.1", port, b"b\n", complete=whole_line,
                              keep=True) == b"ok b\n"
    assert len(accepted) == 2 and received == [b"a\n", b"b\n"]


async def test_the_port_check_connection_carries_the_first_question(serve):
    accepted: list[int] = []
    received: list[bytes] = []
    port = await serve(line_server(accepted, received, close_after=True))
    closed = free_port()
    net = Net(4, 1.0, 5.0)
    assert await net.open_ports("127.0.0.1", [port, closed], keep=True) == {port}
    assert await net.exchange("127.0.0.1", port, b"q\n", complete=whole_line) == b"ok q\n"
    assert len(accepted) == 1 and net.reused == 1
    # one nobody used is closed by drop_fresh: the device sees the connection end
    await net.open_ports("127.0.0.1", [port], keep=True)
    await asyncio.sleep(0.05)
    net.drop_fresh("127.0.0.1", [port])
    assert not net._fresh and len(accepted) == 2 and net.open_now == 0


async def test_a_write_on_a_connection_lost_before_any_answer_is_not_sent_twice(serve):
    accepted: list[int] = []
    received: list[bytes] = []
    port = await serve(line_server(accepted, received, answer=False))
    net = Net(4, 1.0, 5.0)
    await net.open_ports("127.0.0.1", [port], keep=True)
    with pytest.raises(DeviceError, match="lost before any answer"):
        await net.exchange("127.0.0.1", port, b"reboot\n", complete=whole_line)
    assert received == [b"reboot\n"]  # once: the device may have done it
    # a read is asked again on a new connection (here it gets nothing there either)
    await net.open_ports("127.0.0.1", [port], keep=True)
    assert await net.exchange("127.0.0.1", port, b"status\n", complete=whole_line,
                              keep=True) == b""
    assert received == [b"reboot\n", b"status\n", b"status\n"]


async def test_kept_connections_nobody_uses_are_given_back(serve):
    accepted: list[int] = []
    received: list[bytes] = []
    port = await serve(line_server(accepted, received))
    net = Net(4, 1.0, 5.0)
    await net.exchange("127.0.0.1", port, b"a\n", complete=whole_line, keep=True)
    assert net.close_idle(unused_for=3600) == 0 and net.idle == 1  # used a moment ago
    assert net.close_idle(unused_for=0) == 1 and net.idle == 0
    assert await net.exchange("127.0.0.1", port, b"b\n", complete=whole_line,
                              keep=True) == b"ok b\n"
    assert len(accepted) == 2
