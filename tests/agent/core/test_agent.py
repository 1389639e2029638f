"""The loop: intervals, overruns, failing gathers, reload (file, SIGHUP, edit), self-metrics."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from plugins_for_tests import MemoryOutput, SlowInput
from waiting import wait_for

from webbo.agent.core.agent import Agent
from webbo.agent.core.config import ConfigError, load_config

BASE = """
[agent]
interval = "200ms"
flush_interval = "200ms"
metric_batch_size = 50
[web]
state_dir = "state"
"""


def write(tmp_path, body: str):
    path = tmp_path / "webbo.toml"
    path.write_text(BASE + body)
    return path


def names(metrics):
    return {m.name for m in metrics}


async def test_metrics_flow_and_self_metrics(tmp_path, registry):
    path = write(tmp_path, """
[[inputs.counter]]
count = 5
[[outputs.memory]]
name = "out"
""")
    agent = Agent(registry, load_config(path, registry))
    await agent.start(watch=False, signals=False)
    try:
        assert await wait_for(lambda: len([m for m in MemoryOutput.received["out"]
                                           if m.name == "counter"]) >= 20)
        assert await wait_for(lambda: "webbo_internal" in names(MemoryOutput.received["out"]))
    finally:
        await agent.stop()
    internal = [m for m in MemoryOutput.received["out"] if m.name == "webbo_internal"]
    per_input = [m for m in internal if m.tags.get("input") == "counter"]
    per_output = [m for m in internal if m.tags.get("output") == "memory"]
    assert per_input and per_output
    assert {"gather_time_s", "gather_errors", "metrics_gathered", "overruns"} <= set(
        per_input[-1].fields)
    assert {"buffer_size", "metrics_dropped", "metrics_written", "write_errors",
            "write_time_s"} <= set(per_output[-1].fields)


async def test_failing_gather_is_counted_and_others_go_on(tmp_path, registry):
    path = write(tmp_path, """
[[inputs.boom]]
[[inputs.counter]]
count = 1
[[outputs.memory]]
name = "out"
""")
    agent = Agent(registry, load_config(path, registry))
    await agent.start(watch=False, signals=False)
    try:
        boom = next(r for r in agent.inputs if r.name == "boom")
        assert await wait_for(lambda: boom.stats.errors >= 3)
        assert await wait_for(lambda: len(MemoryOutput.received["out"]) >= 3)
        assert "boom" in boom.stats.last_error
    finally:
        await agent.stop()


async def test_overrun_is_counted_never_stacked(tmp_path, registry):
    SlowInput.started = 0
    path = write(tmp_path, """
[[inputs.slow]]
seconds = "1s"
[[outputs.memory]]
name = "out"
""")
    agent = Agent(registry, load_config(path, registry))
    await agent.start(watch=False, signals=False)
    try:
        await asyncio.sleep(1.5)
        slow = agent.inputs[0]
        assert SlowInput.started == 2  # at t=0 and at the first tick after 1 s
        assert slow.stats.overruns >= 3
    finally:
        await agent.stop()


async def test_reload_restarts_only_what_changed(tmp_path, registry):
    path = write(tmp_path, """
[[inputs.counter]]
alias = "a"
series = "a"
[[inputs.counter]]
alias = "b"
series = "b"
[[outputs.memory]]
name = "out"
""")
    agent = Agent(registry, load_config(path, registry))
    await agent.start(watch=False, signals=False)
    try:
        before = {r.alias: r for r in agent.inputs}
        output_before = agent.outputs[0]

        def mutate(doc):
            doc["inputs"]["counter"][1]["count"] = 3

        await agent.edits.apply(mutate)
        after = {r.alias: r for r in agent.inputs}
        assert after["a"] is before["a"]
        assert after["b"] is not before["b"]
        assert after["b"].input.config.count == 3
        assert agent.outputs[0] is output_before
        assert agent.reload_state.count == 1
    finally:
        await agent.stop()


async def test_invalid_edit_is_refused_and_old_config_keeps_running(tmp_path, registry):
    path = write(tmp_path, """
[[inputs.counter]]
[[outputs.memory]]
name = "out"
""")
    agent = Agent(registry, load_config(path, registry))
    await agent.start(watch=False, signals=False)
    try:
        before_text = path.read_bytes()
        runner = agent.inputs[0]

        def mutate(doc):
            doc["inputs"]["counter"][0]["count"] = "many"

        with pytest.raises(ConfigError, match=r"inputs.counter\[0\].count: expected int, got str"):
            await agent.edits.apply(mutate)
        assert path.read_bytes() == before_text
        assert agent.inputs[0] is runner
        seen = len(MemoryOutput.received["out"])
        assert await wait_for(lambda: len(MemoryOutput.received["out"]) > seen)
    finally:
        await agent.stop()


async def test_file_change_reload_and_refusal(tmp_path, registry):
    path = write(tmp_path, """
[[inputs.counter]]
[[outputs.memory]]
name = "out"
""")
    agent = Agent(registry, load_config(path, registry))
    await agent.start(watch=True, signals=False)
    try:
        good = path.read_text()
        path.write_text(good + "\n[[inputs.counter]]\nseries = \"second\"\n")
        assert await wait_for(lambda: len(agent.inputs) == 2)
        path.write_text(good + "\n[agent.oops]\n")
        assert await wait_for(lambda: agent.reload_state.last_error is not None)
        assert "unknown key" in agent.reload_state.last_error or "agent" in \
            agent.reload_state.last_error
        assert len(agent.inputs) == 2  # the running config stays
        path.write_text(good)
        assert await wait_for(lambda: len(agent.inputs) == 1 and
                              agent.reload_state.last_error is None)
    finally:
        await agent.stop()


async def test_sighup_reloads(tmp_path, registry):
    path = write(tmp_path, """
[[inputs.counter]]
[[outputs.memory]]
name = "out"
""")
    agent = Agent(registry, load_config(path, registry))
    await agent.start(watch=False, signals=True)
    try:
        path.write_text(path.read_text() + "\n[[inputs.counter]]\nseries = \"hup\"\n")
        os.kill(os.getpid(), signal.SIGHUP)
        assert await wait_for(lambda: agent.reload_state.count == 1 and len(agent.inputs) == 2)
    finally:
        await agent.stop()


async def test_buffer_overflow_drops_oldest_and_counts(tmp_path, registry):
    from webbo.agent.core.buffer import MetricBuffer
    from webbo.agent.core.metric import Metric

    buffer = MetricBuffer(3)
    for i in range(5):
        buffer.add(Metric("m", {}, {"i": i}, i))
    batch, last = await buffer.read(10)
    assert [m.fields["i"] for m in batch] == [2, 3, 4]
    assert buffer.dropped == 2
    buffer.add(Metric("m", {}, {"i": 5}, 5))  # overflow while "writing": drops 2
    assert buffer.dropped == 3
    assert buffer.ack(last) == 2  # only 3 and 4 were still there
    assert buffer.dropped == 2  # 2 was dropped from the ring, yet the write delivered it
    assert [m.fields["i"] for m in buffer.peek(10)[0]] == [5]
    batch, last = await buffer.read(10)
    buffer.add(Metric("m", {}, {"i": 6}, 6))
    buffer.add(Metric("m", {}, {"i": 7}, 7))
    buffer.add(Metric("m", {}, {"i": 8}, 8))  # drops 5, in flight; this write fails
    assert buffer.dropped == 3
    batch, last = await buffer.read(10)  # the retry: 5 is gone for good
    assert [m.fields["i"] for m in batch] == [6, 7, 8] and buffer.ack(last) == 3
    assert buffer.dropped == 3
