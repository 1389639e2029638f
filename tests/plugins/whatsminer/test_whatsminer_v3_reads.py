"""API v3 reads in one exchange on the kept connection, and the firmwares that do not allow it:
one that closes the connection after each answer (as the vendor's mock does) and one that
answers only the first of requests sent together. Real loopback servers."""

from __future__ import annotations

import asyncio
import json

import pytest

from webbo.agent.fleet.net import Net
from webbo.plugins.inputs.whatsminer.api_v3 import V3Api, read_request
from webbo.plugins.inputs.whatsminer.wire import frame

pytestmark = pytest.mark.timeout(60)

REQUESTS = [read_request("get.miner.status", "summary+pools+edevs"),
            read_request("get.device.info")]


def v3_server(accepted: list[int], *, close_after_each: bool = False,
              first_only: bool = False):
    """``first_only``: a firmware that reads what arrived at once and answers only the first
    request in it (requests sent together lose all but the first; one at a time all work)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            size = int.from_bytes(chunk[:4], "little")
            bodies = [chunk[4:4 + size]]
            rest = chunk[4 + size:]
            while not first_only and len(rest) >= 4:
                size = int.from_bytes(rest[:4], "little")
                bodies.append(rest[4:4 + size])
                rest = rest[4 + size:]
            for raw in bodies:
                body = json.loads(raw)
                reply = {"code": 0, "when": 1, "msg": {"asked": body.get("param", "")},
                         "desc": body["cmd"]}
                writer.write(frame(json.dumps(reply).encode()))
            await writer.drain()
            if close_after_each:
                break
        writer.close()

    return handler


async def start(handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("kind", ["keeps", "closes", "first_only"])
async def test_reads_in_one_exchange_or_one_at_a_time(kind):
    accepted: list[int] = []
    server, port = await start(v3_server(accepted, close_after_each=kind == "closes",
                                         first_only=kind == "first_only"))
    try:
        api = V3Api(Net(8, 1.0, 0.5), port=port, timeout=0.5)
        for _ in range(3):  # three polls
            replies = await api.reads("127.0.0.1", REQUESTS)
            assert replies["get.miner.status"]["msg"] == {"asked": "summary+pools+edevs"}
            assert replies["get.device.info"]["msg"] == {"asked": ""}
        if kind == "keeps":  # one connection, one exchange per poll
            assert len(accepted) == 1 and api.net.reused == 2
        elif kind == "closes":  # one exchange per poll, on a new connection each time
            assert len(accepted) == 3
        if kind == "first_only":  # remembered: asked one request at a time from then on
            assert "127.0.0.1" in api.one_by_one
        else:
            assert "127.0.0.1" not in api.one_by_one
    finally:
        server.close()
        await server.wait_closed()
