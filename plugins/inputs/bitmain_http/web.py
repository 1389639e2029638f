"""The Antminer CGI web interface, as a client: digest auth, JSON bodies whatever the
content-type says, bounded sockets, and errors an operator can act on.

A request is one connection (the shared aiohttp session does not pool) inside one of the
agent's socket slots. Reads and writes differ on failure: a read that times out is just a
failed read (:class:`DeviceTimeout`), a write whose answer never came has an unknown effect
(:class:`OutcomeUnknownError`) and is never retried.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec

from webbo.agent.errors import DeviceError, OutcomeUnknownError
from webbo.agent.net import DeviceTimeout, DeviceUnreachable, Net
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

    def url(self, ip: str, path: str) -> str:
        return f"http://{ip}:{self.port}{path}" if self.port != 80 else f"http://{ip}{path}"

    async def request(self, ip: str, method: str, path: str, body: Any = None, *,
                      timeout: float | None = None, write: bool = False) -> bytes:
        """The body of an authorised request (one retry with a fresh challenge on 401)."""
        data = None if body is None else _encoder.encode(body)
        headers = dict(BROWSER_HEADERS) if data is not None else {}
        host = f"{ip}:{self.port}"
        limit = aiohttp.ClientTimeout(total=timeout or self.timeout or self.net.timeout,
                                      sock_connect=self.net.connect_timeout)
        for attempt in range(2):
            auth = self.digest.authorization(host, method, path)
            if auth is not None:
                headers["Authorization"] = auth
            sent = False
            try:
                async with self.net.slot():
                    async with self.net.http.request(method, self.url(ip, path), data=data,
                                                     headers=headers, timeout=limit,
                                                     allow_redirects=False) as response:
                        sent = True
                        if response.status == 401:
                            challenge = response.headers.get("WWW-Authenticate", "")
                            if attempt == 0 and self.digest.learn(host, challenge):
                                continue
                            self.digest.forget(host)
                            raise WebLoginRefused(f"{path}: web login refused (check username "
                                                  "and password for this group/range)")
                        content = await response.read()
                        if response.status >= 400:
                            raise DeviceError(f"{path}: HTTP {response.status}")
                        return content
            except aiohttp.ClientConnectorError as exc:
                raise DeviceUnreachable(f"{host}: {exc.os_error.strerror or exc}") from None
            except (TimeoutError, aiohttp.ServerTimeoutError):
                if write:
                    raise OutcomeUnknownError(f"{path}: no answer in time; the change may or "
                                              "may not have been applied") from None
                raise DeviceTimeout(f"{host}{path}: timed out") from None
            except (aiohttp.ClientError, OSError) as exc:
                if write and (sent or data is not None):
                    raise OutcomeUnknownError(f"{path}: connection lost ({exc}); the change may "
                                              "or may not have been applied") from None
                raise DeviceError(f"{host}{path}: {exc}") from None
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
    url = f"http://{ip}:{port}/" if port != 80 else f"http://{ip}/"
    try:
        async with net.slot():
            async with net.http.get(url, allow_redirects=False) as response:
                body = (await response.content.read(512)).decode("utf-8", "replace")
                return response.status, response.headers.get("WWW-Authenticate", ""), body
    except aiohttp.ClientConnectorError as exc:
        raise DeviceUnreachable(f"{ip}:{port}: {exc.os_error.strerror or exc}") from None
    except TimeoutError:
        raise DeviceTimeout(f"{ip}:{port}: GET / timed out") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise DeviceError(f"{ip}:{port}: GET / failed: {exc}") from None
