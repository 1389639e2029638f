"""The disk buffer on its own: round trips, restarts, a real kill -9, a cut tail, the size bound,
the line-protocol reader; and the memory ring's overflow reporting."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webbo.agent.core import overflow
from webbo.agent.core.buffer import MetricBuffer
from webbo.agent.core.disk_buffer import DiskBuffer
from webbo.agent.core.lines import parse_line
from webbo.agent.core.metric import Metric, UInt, to_lines
from webbo.agent.core.overflow import DropReporter
from webbo.agent.core.segments import RECORD, scan


def metric(i: int, **extra) -> Metric:
    return Metric("counter", {"series": "s", "room": "Зал 1"},
                  {"seq": i, "value": i * 0.5, "note": 'a "b", c\nd \\ e', **extra},
                  1_700_000_000_000_000_000 + i)


def open_buffer(folder: Path, max_bytes: int = 50_000_000, limit: int = 1_000_000) -> DiskBuffer:
    buffer = DiskBuffer(folder, max_bytes, limit=limit, flush_interval=1.0, label="test")
    buffer.start()
    return buffer


async def read_all(buffer: DiskBuffer, batch: int = 1000, ack: bool = True) -> list[Metric]:
    got: list[Metric] = []
    while True:
        metrics, last = await buffer.read(batch)
        if last < 0:
            return got
        got.extend(metrics)
        if not ack:
            return got
        buffer.ack(last)


async def test_round_trip_is_exact_in_both_flavours(tmp_path):
    originals = [metric(i) for i in range(5000)]
    originals.append(Metric("u", {}, {"big": UInt(2**64 - 1), "ok": True}, 7))
    originals.append(Metric("nan", {}, {"x": float("nan")}, 8))  # unwritable: kept, no line
    buffer = open_buffer(tmp_path)
    for m in originals:
        buffer.add(m)
    batch, last = await buffer.read(10_000)
    assert last == len(originals) - 1 and len(batch) == len(originals)
    for flavour in (True, False):
        assert to_lines(batch, flavour) == to_lines(originals, flavour)
    assert list(batch)[:5000] == originals[:5000]
    assert batch[5000].fields["big"] == 2**64 - 1 and isinstance(batch[5000].fields["big"], UInt)
    await buffer.close()


async def test_restart_keeps_unacknowledged_in_order(tmp_path):
    buffer = open_buffer(tmp_path)
    for i in range(10_000):
        buffer.add(metric(i))
    batch, last = await buffer.read(3000)
    assert buffer.ack(last) == 3000
    await buffer.read(3000)  # sent but not acknowledged: must come back
    await buffer.close()

    buffer = open_buffer(tmp_path)
    assert (await buffer.opened()).metrics == 7000
    assert len(buffer) == 7000
    got = await read_all(buffer)
    assert [m.fields["seq"] for m in got] == list(range(3000, 10_000))
    for i in range(10_000, 10_100):  # new metrics continue the sequence after a restart
        buffer.add(metric(i))
    batch, last = await buffer.read(1000)
    assert [m.fields["seq"] for m in batch] == list(range(10_000, 10_100))
    buffer.ack(last)
    await buffer.close()
    buffer = open_buffer(tmp_path)
    assert len(buffer) == 0 and (await buffer.opened()).metrics == 0
    assert len(list(tmp_path.glob("*.seg"))) <= 1  # acknowledged segments are deleted
    await buffer.close()


KILLED = textwrap.dedent("""
    import asyncio, os, signal, sys, time
    from pathlib import Path
    from webbo.agent.core.disk_buffer import DiskBuffer
    from webbo.agent.core.metric import Metric

    async def main():
        buffer = DiskBuffer(Path(sys.argv[1]), 50_000_000, limit=10**6, flush_interval=60.0)
        buffer.start()
        await buffer.opened()
        for i in range(20_000):
            buffer.add(Metric("k", {}, {"seq": i}, i))
        batch, last = await buffer.read(5000)
        buffer.ack(last)
        await asyncio.sleep(1.5)   # the once-a-second writer has run
        for i in range(20_000, 20_010):
            buffer.add(Metric("k", {}, {"seq": i}, i))   # pending: lost by the kill
        print("ready", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
""")


async def test_kill_9_loses_only_what_was_not_yet_written(tmp_path):
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", KILLED, str(tmp_path),
                                                stdout=subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == -signal.SIGKILL and out.strip() == b"ready"
    buffer = open_buffer(tmp_path)
    got = await read_all(buffer)
    assert [m.fields["seq"] for m in got] == list(range(5000, 20_000))
    await buffer.close()


async def test_a_tail_cut_mid_record_is_cut_logged_and_the_rest_kept(tmp_path):
    buffer = open_buffer(tmp_path)
    for i in range(5000):  # records of 2000, 2000 and 1000 metrics
        buffer.add(metric(i))
    await buffer.close()
    (segment,) = tmp_path.glob("*.seg")
    size = segment.stat().st_size
    os.truncate(segment, size - 100)  # power lost in the middle of the last record
    with structlog.testing.capture_logs() as logs:
        buffer = open_buffer(tmp_path)
        opened = await buffer.opened()
        await asyncio.sleep(0.05)
    assert len(opened.cut) == 1 and "record longer than the file" in opened.cut[0]
    assert any("damaged tail cut" in e["event"] for e in logs)
    got = await read_all(buffer)
    assert [m.fields["seq"] for m in got] == list(range(4000))
    buffer.add(metric(4000))  # writing goes on after the cut, with a good record
    assert [m.fields["seq"] for m in await read_all(buffer)] == [4000]
    await buffer.close()
    good, cut = scan(segment, repair=False)
    assert cut is None and good is not None


async def test_a_flipped_byte_fails_the_checksum(tmp_path):
    buffer = open_buffer(tmp_path)
    for i in range(4000):
        buffer.add(metric(i))
    await buffer.close()
    (segment,) = tmp_path.glob("*.seg")
    data = bytearray(segment.read_bytes())
    data[-10] ^= 0xFF
    segment.write_bytes(bytes(data))
    buffer = open_buffer(tmp_path)
    opened = await buffer.opened()
    assert "checksum mismatch" in opened.cut[0]
    assert len(await read_all(buffer)) == 2000
    await buffer.close()


async def test_size_bound_drops_oldest_segments_counted_exactly(tmp_path):
    buffer = open_buffer(tmp_path, max_bytes=1_000_000)
    drops: list[tuple[int, float | None]] = []
    buffer.on_drop = lambda n, held: drops.append((n, held))
    total = 60_000
    for i in range(total):
        buffer.add(metric(i))
        if i % 5000 == 4999:
            await buffer.read(1)  # lets the writer run
    await buffer.read(1)
    # (measured before reading: acknowledged segments are deleted by the buffer's thread)
    assert sum(p.stat().st_size for p in tmp_path.glob("*.seg")) <= 1_000_000
    kept = await read_all(buffer, batch=5000)
    seqs = [m.fields["seq"] for m in kept]
    assert buffer.dropped == sum(n for n, _ in drops) > 0
    assert len(seqs) + buffer.dropped == total
    assert seqs == list(range(buffer.dropped, total))  # the oldest went, none of the rest
    await buffer.close()


async def test_a_segment_dropped_during_a_write_that_then_succeeds_is_not_counted(tmp_path):
    buffer = open_buffer(tmp_path, max_bytes=1_000_000)
    for i in range(2000):
        buffer.add(metric(i))
    _, last = await buffer.read(2000)  # in flight ...
    for i in range(2000, 40_000):  # ... while the buffer overflows and drops its segment
        buffer.add(metric(i))
    await buffer._write_pending()
    await asyncio.sleep(0.05)
    assert buffer.dropped >= 2000
    before = buffer.dropped
    assert buffer.ack(last) == 2000  # the server took it after all
    assert buffer.dropped == before - 2000
    rest = await read_all(buffer, batch=5000)
    assert len(rest) + buffer.dropped + 2000 == 40_000
    await buffer.close()


async def test_another_process_holding_the_folder_is_refused(tmp_path):
    first = open_buffer(tmp_path)
    await first.opened()
    second = open_buffer(tmp_path)
    assert await second.opened() is None and "in use" in second.error
    await second.close()
    await first.close()


def test_memory_ring_reports_overflow_once_then_summaries(monkeypatch):
    monkeypatch.setattr(overflow, "SUMMARY_EVERY", 0.0)
    with structlog.testing.capture_logs() as logs:
        reporter = DropReporter(structlog.get_logger().bind(output="x"), "3 metrics in memory")
        ring = MetricBuffer(3)
        ring.on_drop = reporter.dropped
        for i in range(10):
            ring.add(metric(i))
        reporter.recovered()
    events = [e["event"] for e in logs]
    assert ring.dropped == 7
    assert events[0] == "output buffer full: dropping the oldest metrics"
    assert logs[0]["limit"] == "3 metrics in memory" and logs[0]["held_s"] is not None
    assert "output buffer still dropping" in events
    assert events[-1].startswith("output writing again") and logs[-1]["dropped"] == 7


def test_memory_ring_first_drop_is_logged_once_per_minute():
    with structlog.testing.capture_logs() as logs:
        reporter = DropReporter(structlog.get_logger(), "3 metrics in memory")
        ring = MetricBuffer(3)
        ring.on_drop = reporter.dropped
        for i in range(1000):
            ring.add(metric(i))
    assert [e["event"] for e in logs] == ["output buffer full: dropping the oldest metrics"]
    assert reporter.total == 997 and reporter.dropping


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1,
                max_size=10)
_values = st.one_of(st.integers(-2**63, 2**63 - 1), st.booleans(),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=20),
                    st.integers(0, 2**64 - 1).map(UInt))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.builds(Metric, _text, st.dictionaries(_text, _text, max_size=3),
                 st.dictionaries(_text, _values, min_size=1, max_size=4),
                 st.integers(0, 2**62)))
def test_parse_line_reads_back_what_line_writes(m):
    for flavour in (True, False):
        line = m.line(flavour)
        if line:
            assert parse_line(line).line(flavour) == line


def test_record_header_size():
    assert RECORD.size == 36
