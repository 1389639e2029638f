"""The Antminer CGI web interface, as a client: digest auth, JSON bodies whatever the
content-type says, bounded sockets, and errors an operator can act on.

A request is one connection (``http_request`` of :mod:`webbo.agent.plugin`, on the fleet's
``Net``: a socket slot, the agent's connect and reply timeouts). Reads and writes differ on
failure: a read that times out is just a failed read (:class:`DeviceTimeout`), a write whose
answer never came has an unknown effect (:class:`OutcomeUnknownError`) and is never retried. A
write whose connection could not even be opened (:class:`DeviceUnreachable`) was not applied.
"""

from __future__ import annotations

from typing import Any

import msgspec

from webbo.agent.plugin import (
    DeviceError,
    DeviceTimeout,
    DeviceUnreachable,
    HttpGarbled,
    Net,
    OutcomeUnknownError,
    http_request,
)
from webbo.plugins.inputs.bitmain_http.digest import DigestClient

__all__ = ["WebClient", "WebLoginRefused"]

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()
BROWSER_HEADERS = {"Content-Type": "text/plain;charset=UTF-8",
                   "X-Requested-With": "XMLHttpRequest"}


class WebLoginRefused(DeviceError):
    """The device refused our credentials."""


class WebClient:
    def __init__(self, net: Net, username: str, password: str, port: int = 80,
                 timeout: float | None = None) -> None:
        self.net = net
        self.port = port
        self.timeout = timeout
        self.digest = DigestClient(username, password)

    async def request(self, ip: str, method: str, path: str, body: Any = None, *,
                      timeout: float | None = None, write: bool = False) -> bytes:
        """The body of an authorised request (one retry with a fresh challenge on 401)."""
        data = None if body is None else _encoder.encode(body)
        headers = dict(BROWSER_HEADERS) if data is not None else {}
        host = f"{ip}:{self.port}"
        limit = timeout or self.timeout or self.net.timeout
        for attempt in range(2):
            auth = self.digest.authorization(host, method, path)
            if auth is not None:
                headers["Authorization"] = auth
            try:
                response = await http_request(self.net, ip, self.port, method, path,
                                               headers=headers, body=data, timeout=limit)
            except DeviceUnreachable:
                raise  # never connected: nothing was sent
            except DeviceTimeout:
                if write:
                    raise OutcomeUnknownError(f"{path}: no answer in time; the change may or "
                                              "may not have been applied") from None
                raise DeviceTimeout(f"{host}{path}: timed out") from None
            except DeviceError as exc:
                answered = isinstance(exc, HttpGarbled)
                if write and (answered or data is not None):
                    raise OutcomeUnknownError(f"{path}: connection lost ({exc}); the change may "
                                              "or may not have been applied") from None
                raise DeviceError(f"{host}{path}: {exc}") from None
            if response.status == 401:
                challenge = response.header("WWW-Authenticate")
                if attempt == 0 and self.digest.learn(host, challenge):
                    continue
                self.digest.forget(host)
                raise WebLoginRefused(f"{path}: web login refused (check username "
                                      "and password for this group/range)")
            if response.status >= 400:
                raise DeviceError(f"{path}: HTTP {response.status}")
            return response.body
        raise WebLoginRefused(f"{path}: web login refused")

    async def json(self, ip: str, path: str, body: Any = None, *,
                   timeout: float | None = None, write: bool = False) -> dict[str, Any]:
        """GET (or POST ``body``) and decode the JSON answer (Bitmain sends it as text/html)."""
        raw = await self.request(ip, "GET" if body is None else "POST", path, body,
                                 timeout=timeout, write=write)
        try:
            data = _decoder.decode(raw.strip())
        except msgspec.DecodeError:
            text = raw[:120].decode("utf-8", "replace")
            raise DeviceError(f"{path}: unreadable answer {text!r}") from None
        if not isinstance(data, dict):
            raise DeviceError(f"{path}: answer is not a JSON object")
        return data


async def get_root(net: Net, ip: str, port: int) -> tuple[int, str, str]:
    """``GET /`` without credentials: (status, WWW-Authenticate, start of the body)."""
    try:
        response = await http_request(net, ip, port, "GET", "/", peek=512)
    except DeviceUnreachable:
        raise
    except DeviceTimeout:
        raise DeviceTimeout(f"{ip}:{port}: GET / timed out") from None
    except DeviceError as exc:
        raise DeviceError(f"{ip}:{port}: GET / failed: {exc}") from None
    body = response.body[:512].decode("utf-8", "replace")
    return response.status, response.header("WWW-Authenticate"), body
