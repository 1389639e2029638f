"""Output ``influxdb_v2``: InfluxDB 2.x/3.x (and anything speaking ``/api/v2/write``, such as
VictoriaMetrics) through influxdb-client's async write API."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import aiohttp
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.client.write_api import WritePrecision
from influxdb_client.rest import ApiException

from webbo.agent.plugin import (
    ConfigError,
    Duration,
    Metric,
    OutputConfig,
    OutputType,
    PluginContext,
    RetryableWriteError,
    error_for_status,
    hookimpl,
    to_lines,
)
from webbo.plugins.common.urls import check_http_urls


class InfluxDBv2Config(OutputConfig):
    """``[[outputs.influxdb_v2]]``."""

    url: str = "http://127.0.0.1:8086"
    token: str = ""
    org: str = ""
    bucket: str = "webbo"
    timeout: Duration = Duration(5.0)
    gzip: bool = False

    def check(self) -> Iterator[ConfigError]:
        for error in check_http_urls([self.url], "url"):
            yield ConfigError("url", error.reason)
        if not self.bucket:
            yield ConfigError("bucket", "must not be empty")
        if self.timeout <= 0:
            yield ConfigError("timeout", "must be longer than 0s")


class InfluxDBv2Output:
    def __init__(self, config: InfluxDBv2Config, context: PluginContext) -> None:
        self.config = config
        self._client: InfluxDBClientAsync | None = None

    def _api(self) -> InfluxDBClientAsync:
        if self._client is None:
            self._client = InfluxDBClientAsync(
                url=self.config.url,
                token=self.config.token,
                org=self.config.org,
                timeout=int(float(self.config.timeout) * 1000),
                enable_gzip=self.config.gzip,
            )
        return self._client

    async def connect(self) -> None:
        self._api()

    async def write(self, metrics: Sequence[Metric]) -> None:
        body = to_lines(metrics, uint_support=True)
        if not body:
            return
        try:
            await self._api().write_api().write(
                bucket=self.config.bucket,
                org=self.config.org,
                record=body,
                write_precision=WritePrecision.NS,
            )
        except ApiException as exc:
            headers = exc.headers or {}
            retry_after = headers.get("Retry-After") if hasattr(headers, "get") else None
            raise error_for_status(int(exc.status or 0), str(exc.body or exc.reason or ""),
                                   retry_after) from None
        except TimeoutError:
            raise RetryableWriteError("timed out") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise RetryableWriteError(str(exc) or type(exc).__name__) from None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


@hookimpl
def webbo_outputs() -> list[OutputType]:
    return [OutputType("influxdb_v2", InfluxDBv2Config, InfluxDBv2Output,
                       "InfluxDB 2.x/3.x (v2 write API, influxdb-client)")]
