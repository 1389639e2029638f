"""The disk buffer inside the agent, against a real InfluxDB 1.x: reloads (URL change, switching
kinds), restarts, a cut segment, and an overflow that is counted exactly and said out loud."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest
import structlog
from servers import InfluxDB1, free_port
from waiting import wait_for

from webbo.agent.core import overflow
from webbo.agent.core.agent import Agent
from webbo.agent.core.config import load_config
from webbo.agent.core.disk_buffer import DiskBuffer
from webbo.agent.core.segments import scan


def write(path, text):
    path.write_text(text)
    return path


def config(tmp_path, url, db, *, series, buffer="disk", extra="", agent="", count=50):
    return f"""
[agent]
interval = "200ms"
flush_interval = "500ms"
metric_batch_size = 500
retry_max_backoff = "1s"
internal_metrics = false
watch_config = false
{agent}
[web]
enabled = false
state_dir = "{tmp_path / 'state'}"
[[inputs.counter]]
count = {count}
series = "{series}"
[[outputs.influxdb]]
urls = ["{url}"]
database = "{db}"
timeout = "1s"
buffer = "{buffer}"
{extra}
"""


def seqs(server, db, series):
    rows = server.rows(f"SELECT seq FROM counter WHERE \"series\" = '{series}'", db)
    return sorted(r["seq"] for r in rows)


async def test_reload_to_a_new_url_keeps_the_disk_buffer(tmp_path, registry, influx_db):
    server, db = influx_db
    dead = f"http://127.0.0.1:{free_port()}"
    path = write(tmp_path / "webbo.toml", config(tmp_path, dead, db, series="move"))
    agent = Agent(registry, load_config(path, registry))
    await agent.start(watch=False, signals=False)
    counter = agent.inputs[0]
    try:
        runner = agent.outputs[0]
        assert isinstance(runner.buffer, DiskBuffer)
        folder = runner.buffer.directory
        assert folder == tmp_path / "state" / "buffers" / "influxdb-0"
        assert await wait_for(lambda: len(runner.buffer) >= 1000)
        assert any(folder.glob("*.seg"))

        def mutate(doc):
            doc["outputs"]["influxdb"][0]["urls"] = [server.url]

        old_buffer = runner.buffer
        await agent.edits.apply(mutate)
        assert agent.outputs[0] is not runner and agent.outputs[0].buffer is old_buffer
        await asyncio.sleep(1)
    finally:
        await agent.inputs[0].stop()
        await wait_for(lambda: len(agent.outputs[0].buffer) == 0, timeout=20)
        await agent.stop()
    produced = counter.stats.metrics
    assert seqs(server, db, "move") == list(range(produced))


async def test_restart_with_another_url_sends_what_the_last_run_kept(tmp_path, registry,
                                                                     influx_db):
    server, db = influx_db
    dead = f"http://127.0.0.1:{free_port()}"
    path = write(tmp_path / "webbo.toml", config(tmp_path, dead, db, series="restart"))
    first = Agent(registry, load_config(path, registry))
    await first.start(watch=False, signals=False)
    assert await wait_for(lambda: len(first.outputs[0].buffer) >= 1000)
    await first.stop(flush_timeout=1)
    path = write(tmp_path / "webbo.toml", config(tmp_path, server.url, db, series="restart"))
    second = Agent(registry, load_config(path, registry))
    await second.start(watch=False, signals=False)
    await asyncio.sleep(1)
    await second.inputs[0].stop()
    assert await wait_for(lambda: len(second.outputs[0].buffer) == 0, timeout=20)
    await second.stop()
    got = seqs(server, db, "restart")
    # the counter's sequence is shared by both runs (one test process): every one, once
    assert got == list(range(len(got))) and len(got) > 1000


async def test_a_segment_cut_mid_record_the_agent_logs_it_and_sends_the_rest(
        tmp_path, registry, influx_db):
    server, db = influx_db
    dead = f"http://127.0.0.1:{free_port()}"
    path = write(tmp_path / "webbo.toml", config(tmp_path, dead, db, series="cut", count=500))
    first = Agent(registry, load_config(path, registry))
    await first.start(watch=False, signals=False)
    assert await wait_for(lambda: len(first.outputs[0].buffer) >= 10_000)
    await first.stop(flush_timeout=0)
    folder = tmp_path / "state" / "buffers" / "influxdb-0"
    last = sorted(folder.glob("*.seg"))[-1]
    os.truncate(last, last.stat().st_size - 77)  # power lost mid-write
    (tmp_path / "probe").mkdir()
    probe = tmp_path / "probe" / last.name
    shutil.copy(last, probe)
    good, cut = scan(probe, repair=False)
    assert cut is not None and good is not None
    kept = good.next_seq  # one segment or several: everything before the cut
    path = write(tmp_path / "webbo.toml",
                 config(tmp_path, server.url, db, series="after-cut", count=1))
    with structlog.testing.capture_logs() as logs:
        second = Agent(registry, load_config(path, registry))
        await second.start(watch=False, signals=False)
        try:
            assert await wait_for(lambda: server.count("counter", "seq", db) >= kept, 30)
        finally:
            await second.stop()
    cuts = [e for e in logs if e["event"].startswith("disk buffer: damaged tail cut")]
    assert len(cuts) == 1 and last.name in cuts[0]["cut"]
    assert seqs(server, db, "cut") == list(range(kept))


@pytest.mark.parametrize("kind", ["memory", "disk"])
async def test_an_outage_longer_than_the_buffer_drops_the_oldest_counted_and_said(
        tmp_path, registry, monkeypatch, kind):
    """A buffer bounded below the outage: the oldest are dropped, the count is exact, the
    warning is logged once and the summaries follow (the minute shortened to 1 s here)."""
    monkeypatch.setattr(overflow, "SUMMARY_EVERY", 1.0)
    (tmp_path / "influx").mkdir()
    server = InfluxDB1(tmp_path / "influx").start()
    db = "overflow"
    bound = 'buffer_max_bytes = "1MB"' if kind == "disk" else "metric_buffer_limit = 8000"
    path = write(tmp_path / "webbo.toml",
                 config(tmp_path, server.url, db, series=f"over{kind}", buffer=kind,
                        extra=bound, count=1000))
    with structlog.testing.capture_logs() as logs:
        agent = Agent(registry, load_config(path, registry))
        await agent.start(watch=False, signals=False)
        counter, runner = agent.inputs[0], agent.outputs[0]
        try:
            assert await wait_for(lambda: runner.stats.written >= 2000)
            server.stop()
            assert await wait_for(lambda: runner.buffer.dropped > 0, 30)
            await asyncio.sleep(3.5)  # drops go on: a summary a second
            status = agent.status()["outputs"][0]
            assert status["dropping"] and status["metrics_dropped"] > 0
            server.start()
            await asyncio.sleep(1)
            await counter.stop()
            assert await wait_for(lambda: len(runner.buffer) == 0, 30)
        finally:
            await agent.stop()
    produced = counter.stats.metrics
    dropped = runner.buffer.dropped
    got = seqs(server, db, f"over{kind}")
    server.stop()
    assert len(got) + dropped == produced and dropped > 0
    assert len(set(got)) == len(got)
    missing = sorted(set(range(produced)) - set(got))
    # The oldest went. The only ones older than a dropped one that arrive are batches already
    # on their way when their part of the buffer was dropped (delivered, so not counted).
    delivered_among = [s for s in got if missing[0] < s < missing[-1]]
    assert len(delivered_among) <= 4 * 500, delivered_among[:5]
    assert missing[-1] < produced - 1000  # the newest were kept
    events = [e["event"] for e in logs if e.get("output") == runner.inst.label]
    assert events.count("output buffer full: dropping the oldest metrics") == 1
    assert events.count("output buffer still dropping") >= 2
    first = next(e for e in logs if e["event"] == "output buffer full: dropping the oldest "
                 "metrics")
    assert first["held_s"] > 0 and ("MB" in first["limit"] or "metrics" in first["limit"])
    assert any(e["event"].startswith("output writing again") and e["dropped"] == dropped
               for e in logs)


async def test_switching_buffer_kinds_on_reload_keeps_everything(tmp_path, registry, influx_db):
    server, db = influx_db
    dead = f"http://127.0.0.1:{free_port()}"
    path = write(tmp_path / "webbo.toml",
                 config(tmp_path, dead, db, series="switch", buffer="memory"))
    agent = Agent(registry, load_config(path, registry))
    await agent.start(watch=False, signals=False)
    counter = agent.inputs[0]
    try:
        assert await wait_for(lambda: len(agent.outputs[0].buffer) >= 500)

        def to_disk(doc):
            doc["outputs"]["influxdb"][0]["buffer"] = "disk"

        await agent.edits.apply(to_disk)
        assert isinstance(agent.outputs[0].buffer, DiskBuffer)
        assert await wait_for(lambda: len(agent.outputs[0].buffer) >= 1500)

        def to_memory_and_live(doc):
            doc["outputs"]["influxdb"][0]["buffer"] = "memory"
            doc["outputs"]["influxdb"][0]["urls"] = [server.url]

        await agent.edits.apply(to_memory_and_live)
        assert not isinstance(agent.outputs[0].buffer, DiskBuffer)
        await asyncio.sleep(1)
    finally:
        await counter.stop()
        await wait_for(lambda: len(agent.outputs[0].buffer) == 0, timeout=20)
        await agent.stop()
    assert seqs(server, db, "switch") == list(range(counter.stats.metrics))


def test_backoff_never_exceeds_the_flush_interval_unless_the_server_asks(tmp_path, registry):
    path = write(tmp_path / "webbo.toml",
                 config(tmp_path, "http://127.0.0.1:9", "x", series="b")
                 .replace('flush_interval = "500ms"', 'flush_interval = "2s"')
                 .replace('retry_max_backoff = "1s"', 'retry_max_backoff = "30s"'))
    agent = Agent(registry, load_config(path, registry))
    runner = agent._make_output(agent.config.outputs[0], agent.config)
    waits = []
    for failures in range(1, 12):
        runner._failures = failures
        waits.append(runner._backoff())
    assert waits[0] == 0.5 and max(waits) == 2.0
    runner._retry_after = 7.0
    assert runner._backoff() == 7.0  # Retry-After is honoured


async def test_a_disk_that_fails_under_the_buffer_gives_way_to_memory(tmp_path, registry,
                                                                      influx_db):
    """The buffer's folder disappears (a disk that fails): the output says so, switches to a
    memory ring and keeps writing; polling never stops."""
    server, db = influx_db
    path = write(tmp_path / "webbo.toml",
                 config(tmp_path, server.url, db, series="vanish", count=500,
                        extra='buffer_max_bytes = "1MB"'))
    with structlog.testing.capture_logs() as logs:
        agent = Agent(registry, load_config(path, registry))
        await agent.start(watch=False, signals=False)
        try:
            runner = agent.outputs[0]
            assert await wait_for(lambda: runner.stats.written >= 2000)
            folder = runner.buffer.directory
            await asyncio.to_thread(shutil.rmtree, folder)
            assert await wait_for(lambda: not isinstance(agent.outputs[0].buffer, DiskBuffer),
                                  30)
            written = agent.outputs[0].stats.written
            assert await wait_for(lambda: agent.outputs[0].stats.written >= written + 3000, 30)
        finally:
            await agent.stop()
    assert any(e["event"] == "disk buffer unusable; buffering in memory instead" for e in logs)
    got = seqs(server, db, "vanish")
    assert len(got) == len(set(got)) and len(got) >= 5000
