"""Output ``influxdb``: InfluxDB 1.x through its v1 HTTP write API (``POST /write``).

* Creates the database at start unless ``skip_database_creation`` (and again if a write says
  the database is missing, e.g. after someone dropped it).
* Several ``urls`` fail over: a write goes to the URL that worked last; on a connection error,
  timeout or 5xx the next one is tried before the batch is reported as failed.
* Optional basic auth and gzip. Unsigned integers are written as integers unless
  ``influx_uint_support`` (InfluxDB 1.x rejects the ``u`` suffix).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from typing import Literal

import aiohttp
import msgspec

from webbo.agent.plugin import (
    ConfigError,
    Duration,
    Metric,
    OutputConfig,
    OutputType,
    PluginContext,
    RetryableWriteError,
    WriteError,
    error_for_status,
    hookimpl,
    to_lines,
)
from webbo.plugins.common.urls import check_http_urls


class InfluxDBConfig(OutputConfig):
    """``[[outputs.influxdb]]``."""

    urls: list[str] = msgspec.field(default_factory=lambda: ["http://127.0.0.1:8086"])
    database: str = "webbo"
    retention_policy: str = ""
    username: str = ""
    password: str = ""
    skip_database_creation: bool = False
    timeout: Duration = Duration(5.0)
    content_encoding: Literal["identity", "gzip"] = "identity"
    influx_uint_support: bool = False

    def check(self) -> Iterator[ConfigError]:
        yield from check_http_urls(self.urls)
        if not self.database:
            yield ConfigError("database", "must not be empty")
        if self.timeout <= 0:
            yield ConfigError("timeout", "must be longer than 0s")


class InfluxDBOutput:
    """Writes batches with one POST each; see the module docstring for the failure policy."""

    def __init__(self, config: InfluxDBConfig, context: PluginContext) -> None:
        self.config = config
        self.log = context.log
        self._session: aiohttp.ClientSession | None = None
        self._current = 0
        self._database_ready = config.skip_database_creation
        auth = None
        if config.username or config.password:
            auth = aiohttp.BasicAuth(config.username, config.password)
        self._auth = auth

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=float(self.config.timeout)),
                auth=self._auth,
            )
        return self._session

    async def connect(self) -> None:
        if not self.config.skip_database_creation:
            await self._create_database()

    async def _create_database(self) -> None:
        name = self.config.database.replace("\\", "\\\\").replace('"', '\\"')
        last: Exception | None = None
        for url in self._rotation():
            try:
                async with self._client().post(
                    url.rstrip("/") + "/query", data={"q": f'CREATE DATABASE "{name}"'}
                ) as resp:
                    body = await resp.text()
                    if resp.status // 100 == 2:
                        self._database_ready = True
                        return
                    last = RuntimeError(f"HTTP {resp.status}: {body.strip()[:300]}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = exc
        raise RuntimeError(f"cannot create database {self.config.database!r}: {last}")

    def _rotation(self) -> list[str]:
        urls = self.config.urls
        return urls[self._current:] + urls[: self._current]

    async def write(self, metrics: Sequence[Metric]) -> None:
        body = to_lines(metrics, self.config.influx_uint_support)
        if not body:
            return
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.config.content_encoding == "gzip":
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        params = {"db": self.config.database, "precision": "ns"}
        if self.config.retention_policy:
            params["rp"] = self.config.retention_policy
        errors: list[str] = []
        retryable: RetryableWriteError | None = None
        urls = self.config.urls
        for step in range(len(urls)):
            index = (self._current + step) % len(urls)
            try:
                await self._post(urls[index], params, headers, body)
            except RetryableWriteError as exc:
                errors.append(f"{urls[index]}: {exc}")
                retryable = retryable or exc
                continue
            self._current = index
            return
        raise RetryableWriteError("; ".join(errors), retryable.retry_after if retryable else None)

    async def _post(self, url: str, params: dict[str, str], headers: dict[str, str],
                    body: bytes) -> None:
        target = url.rstrip("/") + "/write"
        for attempt in (1, 2):
            try:
                async with self._client().post(target, params=params, data=body,
                                               headers=headers) as resp:
                    if resp.status // 100 == 2:
                        return
                    text = await resp.text()
                    retry_after = resp.headers.get("Retry-After")
            except TimeoutError:
                raise RetryableWriteError("timed out") from None
            except aiohttp.ClientError as exc:
                raise RetryableWriteError(str(exc) or type(exc).__name__) from None
            reason = _influx_error(text)
            if resp.status == 404 and "database not found" in reason and attempt == 1 \
                    and not self.config.skip_database_creation:
                try:
                    await self._create_database()
                except RuntimeError as exc:
                    raise RetryableWriteError(str(exc)) from None
                continue
            if resp.status == 404 and "database not found" in reason:
                # Someone has to create it (skip_database_creation); keep the data meanwhile.
                raise RetryableWriteError(reason)
            if resp.status == 400 and reason.startswith("partial write"):
                # The points the server could take are stored; the rest never will be.
                self.log.warning("partial write: some points were refused", reason=reason)
                return
            error: WriteError = error_for_status(resp.status, reason, retry_after)
            raise error
        raise RetryableWriteError("database not found after creating it")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _influx_error(text: str) -> str:
    try:
        data = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text.strip()
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return data["error"]
    return text.strip()


@hookimpl
def webbo_outputs() -> list[OutputType]:
    return [OutputType("influxdb", InfluxDBConfig, InfluxDBOutput,
                       "InfluxDB 1.x (v1 HTTP write API)")]


