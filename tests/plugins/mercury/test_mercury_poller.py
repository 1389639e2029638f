"""The bus poller inside a running agent, against simulated meters on a real pty: several
meters per port, dead-meter back-off, every fault of the simulator, echo, password encodings,
session expiry, an adapter that vanishes and comes back, and reloads that leave other meters be."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import plugins_for_tests
import pytest
from waiting import wait_for

from webbo.agent.core.agent import Agent
from webbo.agent.core.config import load_config, to_json
from webbo.agent.core.contract import SimOptions
from webbo.agent.core.metric import Metric
from webbo.plugins.inputs.mercury.backend import device_config
from webbo.plugins.inputs.mercury.bus import MeterBuses
from webbo.plugins.inputs.mercury.link import NoAnswer
from webbo.plugins.inputs.mercury.sim import bus as simulator

DEMO = [{"serial_number": "32297700-17", "device_model": "230", "address": 1},
        {"serial_number": "43099131-20", "device_model": "230", "address": 131},
        {"serial_number": "47457598-22", "device_model": "230", "address": 98}]


def meter_table(port: str, meter: dict, **extra) -> str:
    lines = ["[[inputs.mercury]]", f'port = "{port}"',
             f'serial_number = "{meter["serial_number"]}"',
             f'device_model = "{meter["device_model"]}"', f'address = {meter["address"]}']
    for key, value in {**{k: v for k, v in meter.items() if k not in (
            "serial_number", "device_model", "address")}, **extra}.items():
        lines.append(f"{key} = {value!r}".replace("'", '"'))
    return "\n".join(lines) + "\n"


def config_text(tmp_path: Path, port: str, meters: list[dict], *, interval: str = "500ms",
                max_backoff: str = "3s", name: str = "m") -> str:
    head = f"""# meters under test
[agent]
interval = "{interval}"
flush_interval = "100ms"
internal_metrics = false
watch_config = false
[web]
state_dir = "{tmp_path / 'state'}"
[[outputs.memory]]
name = "{name}"
"""
    return head + "".join(meter_table(port, m, max_backoff=max_backoff) for m in meters)


@contextlib.asynccontextmanager
async def running(tmp_path, registry, port, meters, **kw):
    path = tmp_path / "webbo.toml"
    path.write_text(config_text(tmp_path, port, meters, **kw))
    agent = Agent(registry, load_config(path, registry))
    await agent.start(watch=False, signals=False)
    try:
        yield agent
    finally:
        await agent.stop(flush_timeout=2)


def points(name: str = "m", serial: str | None = None, online: bool | None = None
           ) -> list[Metric]:
    out = []
    for metric in plugins_for_tests.MemoryOutput.received.get(name, []):
        if metric.name != "meter":
            continue
        if serial is not None and metric.tags["serial"] != serial:
            continue
        if online is not None and metric.fields.get("online") is not online:
            continue
        out.append(metric)
    return out


def slot_of(agent: Agent, serial: str):
    buses: MeterBuses = agent.shared.get(MeterBuses)
    for bus in buses.buses.values():
        for slot in bus.slots.values():
            if slot.config.serial_number == serial:
                return slot
    raise KeyError(serial)


@pytest.fixture
async def demo_sim():
    sim = await simulator.start(0, SimOptions(extra={"meters": DEMO}))
    yield sim
    await sim.close()


async def test_three_meters_on_one_port_are_read_in_turn(tmp_path, registry, demo_sim):
    port = demo_sim.bus.path
    async with running(tmp_path, registry, port, DEMO) as agent:
        ok = await wait_for(lambda: all(len(points(serial=m["serial_number"], online=True)) >= 3
                                        for m in DEMO))
        assert ok, [slot_of(agent, m["serial_number"]).last_error for m in DEMO]
        buses = agent.shared.get(MeterBuses)
        assert list(buses.buses) == [port] and len(buses.buses[port].slots) == 3
        for m in DEMO:
            slot = slot_of(agent, m["serial_number"])
            assert slot.last_exchanges <= 10  # steady state: fast read + 5 energies = 6
            assert slot.state.fast_read is True
        link = buses.buses[port].link
        assert link.stats.timeouts == 0 and link.stats.bad_frames == 0
        status = agent.status()["mercury"]["ports"][0]
        assert to_json(agent.status())  # `webbo status` writes it as JSON
        assert {m["serial_number"] for m in status["meters"]} == {m["serial_number"] for m in DEMO}
    point = points(serial="32297700-17", online=True)[-1]
    assert point.tags == {"serial": "32297700-17", "model": "230", "port": port, "address": "1"}
    fields = point.fields
    for key in ("voltage_l1_v", "voltage_l3_v", "current_l2_a", "power_active_w",
                "power_active_l3_w", "power_reactive_var", "power_apparent_va", "power_factor",
                "frequency_hz", "energy_active_import_kwh", "energy_active_import_t1_kwh",
                "energy_reactive_import_kvarh", "energy_reactive_export_kvarh"):
        assert isinstance(fields[key], float), key
    # a one-direction Mercury 230 does not count export: absent, never 0
    assert "energy_active_export_kwh" not in fields
    assert not any(k.startswith("energy_active_export") for k in fields)
    sim_meter = demo_sim.meter("32297700-17")
    assert abs(fields["voltage_l1_v"] - sim_meter.physics.u[0]) < 5


async def test_a_dead_meter_backs_off_without_stalling_the_others(tmp_path, registry, demo_sim):
    dead = {"serial_number": "11111150-20", "device_model": "230", "address": 50}
    meters = [*DEMO[:2], dead]
    async with running(tmp_path, registry, demo_sim.bus.path, meters, interval="400ms",
                       max_backoff="2s") as agent:
        started = time.monotonic()
        await wait_for(lambda: time.monotonic() - started > 6, timeout=10)
        good = [slot_of(agent, m["serial_number"]) for m in DEMO[:2]]
        bad = slot_of(agent, dead["serial_number"])
        # ~15 readings each at 400 ms; allow a loaded machine plenty of slack
        assert all(s.readings >= 8 for s in good), [s.readings for s in good]
        # attempts at 0, 0.4, 1.2, 2.8, 4.8 (capped at 2 s) → about 5, certainly not 15
        assert 2 <= bad.failed <= 7, bad.failed
        assert bad.failures == bad.failed and bad.status == "error"
        assert "no answer to serial number from address 50" in bad.last_error
        assert bad.backoff() == 2.0
    failed = points(serial="11111150-20", online=False)
    assert failed and all("no answer" in f.fields["error"] for f in failed)


@pytest.mark.parametrize(("fault", "message"), [
    ("bad_crc", "bad CRC"),
    ("truncated", "cut short"),
    ("garbage", "garbled answer"),
    ("status2", "internal meter error (status 2)"),
    ("slow", "no answer"),
])
async def test_faults_fail_one_meter_and_it_recovers(tmp_path, registry, demo_sim, fault,
                                                     message):
    async with running(tmp_path, registry, demo_sim.bus.path, DEMO, interval="300ms",
                       max_backoff="600ms") as agent:
        victim = slot_of(agent, "43099131-20")
        others = [slot_of(agent, s) for s in ("32297700-17", "47457598-22")]
        assert await wait_for(lambda: victim.readings >= 1)
        demo_sim.meter("43099131-20").fault = fault
        assert await wait_for(lambda: victim.status == "error"), victim.last_error
        assert message in victim.last_error
        before = [s.readings for s in others]
        await wait_for(lambda: victim.failed >= 2)
        assert all(s.readings > b for s, b in zip(others, before, strict=True))
        assert all(s.status == "ok" for s in others)
        demo_sim.meter("43099131-20").fault = None
        assert await wait_for(lambda: victim.status == "ok", timeout=20), victim.last_error


async def test_an_echoing_adapter_is_tolerated(tmp_path, registry):
    sim = await simulator.start(0, SimOptions(extra={"meters": DEMO, "echo": True}))
    try:
        async with running(tmp_path, registry, sim.bus.path, DEMO) as agent:
            assert await wait_for(lambda: all(slot_of(agent, m["serial_number"]).readings >= 2
                                              for m in DEMO))
            link = agent.shared.get(MeterBuses).buses[sim.bus.path].link
            assert link.echoes is True and link.stats.echoes > 0
            values = slot_of(agent, "32297700-17").values
            # the echo of "08 16 40" is never read as a frequency of 5406.94 Hz
            assert 49 < values["frequency_hz"] < 51
    finally:
        await sim.close()


async def test_the_other_password_encoding_is_tried_and_reported(tmp_path, registry):
    meters = [{**DEMO[0], "password_encoding": "ascii"}]
    sim = await simulator.start(0, SimOptions(extra={"meters": meters}))
    try:
        async with running(tmp_path, registry, sim.bus.path, DEMO[:1]) as agent:
            slot = slot_of(agent, "32297700-17")
            assert await wait_for(lambda: slot.readings >= 1), slot.last_error
            assert slot.state.encoding == "ascii"
            assert any('password_encoding = "ascii"' in n for n in slot.state.notes)
            sim.meters[0].passwords[1] = b"999999"
            slot.state.forget_session()
            assert await wait_for(lambda: slot.status == "error")
            assert "refused the level 1 password" in slot.last_error
    finally:
        await sim.close()


async def test_another_meter_at_the_address_is_an_error(tmp_path, registry, demo_sim):
    wrong = {"serial_number": "12345678-20", "device_model": "230", "address": 131}
    async with running(tmp_path, registry, demo_sim.bus.path, [wrong]) as agent:
        slot = slot_of(agent, "12345678-20")
        assert await wait_for(lambda: slot.status == "error")
        assert "has serial number 43099131, not 12345678" in slot.last_error


async def test_an_expired_session_is_reopened(tmp_path, registry):
    sim = await simulator.start(0, SimOptions(extra={"meters": DEMO[:1],
                                                     "session_seconds": 0.3}))
    try:
        async with running(tmp_path, registry, sim.bus.path, DEMO[:1],
                           interval="500ms") as agent:
            slot = slot_of(agent, "32297700-17")
            assert await wait_for(lambda: slot.readings >= 4), slot.last_error
            assert slot.failed == 0
            # status 5 → open → the same request again: 6 + 2 exchanges
            assert slot.last_exchanges == 8
    finally:
        await sim.close()


async def test_single_phase_and_no_fast_read_meters(tmp_path, registry):
    meters = [{"serial_number": "20481234-21", "device_model": "204", "address": 34},
              {"serial_number": "23011111-19", "device_model": "231", "address": 111,
               "fast_read": False}]
    sim = await simulator.start(0, SimOptions(extra={"meters": meters}))
    try:
        config = [{k: v for k, v in m.items() if k != "fast_read"} for m in meters]
        async with running(tmp_path, registry, sim.bus.path, config) as agent:
            single = slot_of(agent, "20481234-21")
            group = slot_of(agent, "23011111-19")
            assert await wait_for(lambda: single.readings >= 2 and group.readings >= 2)
            assert single.last_exchanges == 12  # 7 single values + 5 energies
            assert group.last_exchanges == 12  # 7 grouped reads + 5 energies
            assert group.state.fast_read is False
            assert set(single.values) >= {"voltage_l1_v", "current_l1_a", "power_active_w",
                                          "power_factor", "frequency_hz"}
            assert not any("l2" in k or "l3" in k for k in single.values)
            assert "voltage_l3_v" in group.values and "angle_l1_l2_deg" not in group.values
    finally:
        await sim.close()


async def test_the_adapter_vanishes_and_comes_back(tmp_path, registry):
    link = tmp_path / "ttyUSB-meters"
    sim = await simulator.start(0, SimOptions(extra={"meters": DEMO[:2]}))
    os.symlink(sim.bus.path, link)
    try:
        async with running(tmp_path, registry, str(link), DEMO[:2], interval="300ms") as agent:
            first = slot_of(agent, "32297700-17")
            assert await wait_for(lambda: first.readings >= 2)
            await sim.close()  # unplugged: the pty disappears
            assert await wait_for(lambda: first.status == "error")
            bus = agent.shared.get(MeterBuses).buses[str(link)]
            assert await wait_for(lambda: "not present" in bus.port_error or
                                  "went away" in first.last_error)
            # plugged back in: a new pty, the stable name points at it again
            sim = await simulator.start(0, SimOptions(extra={"meters": DEMO[:2]}))
            os.unlink(link)
            os.symlink(sim.bus.path, link)
            count = first.readings
            assert await wait_for(lambda: first.readings > count + 1, timeout=30), \
                (first.last_error, bus.port_error)
            assert first.status == "ok" and slot_of(agent, "43099131-20").status == "ok"
    finally:
        await sim.close()


async def test_a_reload_of_one_meter_leaves_the_others_alone(tmp_path, registry, demo_sim):
    async with running(tmp_path, registry, demo_sim.bus.path, DEMO) as agent:
        keep = slot_of(agent, "32297700-17")
        bus = agent.shared.get(MeterBuses).buses[demo_sim.bus.path]
        assert await wait_for(lambda: keep.readings >= 2)

        def mutate(doc):
            doc["inputs"]["mercury"][1]["password_2"] = "333333"
            del doc["inputs"]["mercury"][2]

        await agent.edits.apply(mutate)
        assert slot_of(agent, "32297700-17") is keep  # same meter state, not restarted
        assert agent.shared.get(MeterBuses).buses[demo_sim.bus.path] is bus  # same task, port
        changed = slot_of(agent, "43099131-20")
        assert changed.config.password_2 == "333333"
        with pytest.raises(KeyError):
            slot_of(agent, "47457598-22")
        count = keep.readings
        assert await wait_for(lambda: keep.readings >= count + 2 and changed.readings >= 1)
        assert (tmp_path / "webbo.toml").read_text().startswith("# meters under test")


async def test_a_missing_port_fails_clearly_and_webbo_test_reads_once(tmp_path, registry,
                                                                      demo_sim):
    missing = {"serial_number": "32297700-17", "device_model": "230", "address": 1}
    path = tmp_path / "webbo.toml"
    path.write_text(config_text(tmp_path, "/dev/ttyNOPE-webbo", [missing]))
    agent = Agent(registry, load_config(path, registry), services=False)
    seen: list[Metric] = []
    assert not await agent.gather_all_once(seen.append)
    assert seen and seen[0].fields["online"] is False
    assert "not present" in seen[0].fields["error"]

    path.write_text(config_text(tmp_path, demo_sim.bus.path, DEMO[:1]))
    agent = Agent(registry, load_config(path, registry), services=False)
    seen = []
    assert await agent.gather_all_once(seen.append)
    assert [m.name for m in seen] == ["meter"] and seen[0].fields["online"] is True
    assert agent.shared.get(MeterBuses).buses == {}  # the port is closed again afterwards


async def test_an_echo_alone_is_no_answer(tmp_path, registry):
    """With an echoing adapter every request comes back, meter or not: the absent meter at
    address 50 must fail as "no answer", and the live test of a meter there must too."""
    sim = await simulator.start(0, SimOptions(extra={"meters": DEMO[:1], "echo": True}))
    absent = {"serial_number": "11111150-20", "device_model": "230", "address": 50}
    try:
        async with running(tmp_path, registry, sim.bus.path, [DEMO[0], absent]) as agent:
            slot = slot_of(agent, "11111150-20")
            assert await wait_for(lambda: slot.status == "error")
            assert "no answer" in slot.last_error
            assert "only the echo of the request came back" in slot.last_error
            assert await wait_for(lambda: slot_of(agent, "32297700-17").readings >= 1)
        config = device_config({"port": sim.bus.path, **absent})
        with pytest.raises(NoAnswer, match="only the echo of the request came back") as refused:
            await MeterBuses().probe(config)
        assert str(refused.value).count("echo") == 1  # said once, by the link or the hint
    finally:
        await sim.close()


async def test_a_line_where_nobody_answers_any_more_is_reopened(tmp_path, registry, demo_sim):
    async with running(tmp_path, registry, demo_sim.bus.path, DEMO[:2],
                       interval="200ms", max_backoff="200ms") as agent:
        link = agent.shared.get(MeterBuses).buses[demo_sim.bus.path].link
        assert await wait_for(lambda: slot_of(agent, "32297700-17").readings >= 1)
        assert link.stats.opens == 1
        for meter in demo_sim.meters:
            meter.fault = "silent"  # an adapter that hangs without an error looks like this
        assert await wait_for(lambda: link.stats.opens >= 2, timeout=30)
        for meter in demo_sim.meters:
            meter.fault = None
        slot = slot_of(agent, "32297700-17")
        assert await wait_for(lambda: slot.status == "ok", timeout=30)
