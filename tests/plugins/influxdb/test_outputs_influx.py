"""InfluxDB outputs against real servers: counts, outages, reloads during outages, 413 splits."""

from __future__ import annotations

import asyncio

import pytest
from servers import InfluxDB1, free_port
from waiting import wait_for

from webbo.agent.core.agent import Agent
from webbo.agent.core.config import load_config
from webbo.agent.core.errors import (
    BatchTooLargeError,
    PermanentWriteError,
    RetryableWriteError,
    error_for_status,
)


def write(tmp_path, text):
    path = tmp_path / "webbo.toml"
    path.write_text(text)
    return path


async def test_10000_metrics_through_influxdb_v1(tmp_path, registry, influx_db):
    server, db = influx_db
    path = write(tmp_path, f"""
[agent]
metric_batch_size = 1000
internal_metrics = false
[[inputs.counter]]
count = 10000
series = "v1"
[[outputs.influxdb]]
urls = ["{server.url}"]
database = "{db}"
""")
    ok, unsent = await Agent(registry, load_config(path, registry)).once()
    assert ok and unsent == 0
    assert server.count("counter", "seq", db) == 10000
    assert server.count("counter", "value", db) == 10000


async def test_10000_metrics_through_influxdb_v2(tmp_path, registry, victoria):
    path = write(tmp_path, f"""
[agent]
metric_batch_size = 1000
internal_metrics = false
[[inputs.counter]]
count = 10000
series = "v2"
measurement = "countv2"
[[outputs.influxdb_v2]]
url = "{victoria.url}"
token = "unused"
org = "farm"
bucket = "webbo"
""")
    ok, unsent = await Agent(registry, load_config(path, registry)).once()
    assert ok and unsent == 0
    assert victoria.count_samples('{__name__="countv2_seq"}') == 10000
    assert victoria.count_samples('{__name__="countv2_value"}') == 10000


async def test_outage_of_60s_with_a_reload_in_the_middle_loses_nothing(tmp_path, registry):
    """InfluxDB stopped for 60 s while the input keeps producing, a config reload during the
    outage replaces the output: every metric arrives, none twice."""
    (tmp_path / "influx").mkdir()
    server = InfluxDB1(tmp_path / "influx").start()
    db = "outage"
    path = write(tmp_path, f"""
[agent]
interval = "500ms"
flush_interval = "500ms"
metric_batch_size = 200
metric_buffer_limit = 100000
retry_max_backoff = "2s"
internal_metrics = false
[[inputs.counter]]
count = 20
series = "outage"
[[outputs.influxdb]]
urls = ["{server.url}"]
database = "{db}"
timeout = "2s"
""")
    agent = Agent(registry, load_config(path, registry))
    await agent.start(watch=False, signals=False)
    counter = agent.inputs[0]
    try:
        assert await wait_for(lambda: agent.outputs[0].stats.written >= 100)
        server.stop()
        produced_at_stop = counter.stats.metrics
        await asyncio.sleep(30)

        def mutate(doc):
            doc["outputs"]["influxdb"][0]["timeout"] = "3s"

        old_runner = agent.outputs[0]
        await agent.edits.apply(mutate)
        assert agent.outputs[0] is not old_runner  # replaced, buffer handed over
        assert len(agent.outputs[0].buffer) > 0
        await asyncio.sleep(30)
        buffered = len(agent.outputs[0].buffer)
        assert buffered > 1000  # kept producing for a minute
        server.start()
        assert await wait_for(lambda: len(agent.outputs[0].buffer) == 0, timeout=60)
    finally:
        await agent.stop(flush_timeout=20)
    produced = counter.stats.metrics
    try:
        count = server.count("counter", "seq", db)
        distinct = server.query('SELECT count(distinct("seq")) FROM "counter"', db)
        top = server.query('SELECT max("seq") FROM "counter"', db)
        assert produced > produced_at_stop + 1000
        assert count == produced, (count, produced)
        assert distinct[0]["values"][0][1] == count  # none twice
        assert top[0]["values"][0][1] == produced - 1  # none missing
    finally:
        server.stop()


async def test_output_down_at_start_buffers_then_delivers(tmp_path, registry, influx_db):
    server, db = influx_db
    dead = f"http://127.0.0.1:{free_port()}"
    path = write(tmp_path, f"""
[agent]
interval = "300ms"
flush_interval = "300ms"
retry_max_backoff = "1s"
internal_metrics = false
[[inputs.counter]]
count = 10
series = "late"
[[outputs.influxdb]]
urls = ["{dead}"]
database = "{db}"
timeout = "1s"
""")
    agent = Agent(registry, load_config(path, registry))
    await agent.start(watch=False, signals=False)
    try:
        assert await wait_for(lambda: agent.outputs[0].stats.write_errors >= 2)
        assert len(agent.outputs[0].buffer) >= 20

        def mutate(doc):
            doc["outputs"]["influxdb"][0]["urls"] = [dead, server.url]  # fail over to a live one

        await agent.edits.apply(mutate)
        assert await wait_for(lambda: server.count("counter", "seq", db) >= 20)
    finally:
        await agent.stop()


async def test_413_splits_the_batch(tmp_path, registry):
    server = InfluxDB1(tmp_path, max_body_size=20_000).start()
    try:
        path = write(tmp_path, f"""
[agent]
metric_batch_size = 5000
internal_metrics = false
[[inputs.counter]]
count = 3000
series = "big"
[[outputs.influxdb]]
urls = ["{server.url}"]
database = "split"
""")
        ok, unsent = await Agent(registry, load_config(path, registry)).once()
        assert ok and unsent == 0
        assert server.count("counter", "seq", "split") == 3000
    finally:
        server.stop()


async def test_once_reports_unsent_metrics(tmp_path, registry):
    path = write(tmp_path, f"""
[agent]
internal_metrics = false
[[inputs.counter]]
count = 5
[[outputs.influxdb]]
urls = ["http://127.0.0.1:{free_port()}"]
timeout = "500ms"
""")
    ok, unsent = await Agent(registry, load_config(path, registry)).once(flush_timeout=2)
    assert ok and unsent == 5


def test_error_classification():
    assert isinstance(error_for_status(413, "too big"), BatchTooLargeError)
    retry = error_for_status(429, "slow down", "7")
    assert isinstance(retry, RetryableWriteError) and retry.retry_after == 7
    assert isinstance(error_for_status(503, "busy"), RetryableWriteError)
    assert isinstance(error_for_status(401, "auth"), RetryableWriteError)
    bad = error_for_status(400, "unable to parse 'x': bad timestamp")
    assert isinstance(bad, PermanentWriteError) and "bad timestamp" in str(bad)


@pytest.mark.parametrize("encoding", ["gzip", "identity"])
async def test_gzip_and_basic_options(tmp_path, registry, influx_db, encoding):
    server, db = influx_db
    path = write(tmp_path, f"""
[agent]
internal_metrics = false
[[inputs.counter]]
count = 100
series = "gz{encoding}"
[[outputs.influxdb]]
urls = ["{server.url}"]
database = "{db}"
content_encoding = "{encoding}"
""")
    ok, unsent = await Agent(registry, load_config(path, registry)).once()
    assert ok and unsent == 0
    assert server.count("counter", "seq", db) == 100
