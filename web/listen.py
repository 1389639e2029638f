"""Listening sockets and uvicorn servers on the agent's own event loop (the web server and the
metrics server both use them).

The socket is bound here (not by uvicorn) so that a taken port is a clear error at start instead
of uvicorn's ``sys.exit``; uvicorn's signal handling is off: ``webbo run`` owns SIGINT/SIGTERM.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from litestar import Litestar

__all__ = ["bind", "parse_listen", "quiet_server"]


def parse_listen(listen: str) -> tuple[str, int]:
    """``"HOST:PORT"`` (``"[::]:80"`` for IPv6) → (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f'expected "HOST:PORT", got {listen!r}')
    return host.strip("[]"), int(port)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (raises OSError with the reason, e.g. address in use)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the agent handles signals


def quiet_server(app: Litestar) -> uvicorn.Server:
    """A uvicorn server for ``app`` on the agent's loop: no signal handling of its own, no
    access log, no lifespan."""
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False,
                            server_header=False, date_header=True, timeout_graceful_shutdown=5)
    return _Server(config)


