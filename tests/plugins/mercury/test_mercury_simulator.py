"""The simulated Mercury meter speaks the reference's bytes: §13 exchanges, silence rules,
sessions, levels, energy arrays; and the pty bus carries several meters, echo and collisions."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import time

import pytest

from webbo.agent.core.contract import SimOptions
from webbo.plugins.inputs.mercury import protocol as p
from webbo.plugins.inputs.mercury.sim import bus as simulator
from webbo.plugins.inputs.mercury.sim.meter import MeterSpec, SimMeter


def hx(text: str) -> bytes:
    return bytes.fromhex(text)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def meter(**kw) -> tuple[SimMeter, Clock]:
    clock = Clock()
    spec = MeterSpec(**{"serial_number": "32297700-17", "device_model": "230", "address": 1,
                        "made": "15.03.2017", **kw})
    return SimMeter(spec, random.Random(7), clock=clock, session_seconds=240), clock


def ask(m: SimMeter, wire: str) -> str | None:
    reply = m.handle(hx(wire))
    return None if reply is None else p.describe(reply)


def test_reference_exchanges_byte_for_byte():
    m, _ = meter()
    assert ask(m, "01 00 00 20") == "01 00 00 20"  # test: identical to the request
    assert ask(m, "01 08 00 27 C0") == "01 20 1D 4D 00 0F 03 11 7F 79"  # no session needed
    assert ask(m, "01 08 12 A7 CD") == "01 05 C0 23"  # channel not open
    assert ask(m, "01 01 01 01 01 01 01 01 01 7A 11") == "01 00 00 20"  # open level 1
    assert ask(m, "01 08 12 A7 CD") == "01 B4 E3 C2 97 DF 58 00 3C"  # variant (doc bytes)
    assert ask(m, "01 02 81 E1") == "01 00 00 20"  # close
    assert ask(m, "01 08 16 11 4E 76") == "01 05 C0 23"


def test_level_rules_and_status_codes():
    m, _ = meter()
    assert ask(m, "01 01 01 01 01 01 01 01 01 7A 11") == "01 00 00 20"
    write = p.frame(hx("01 03 1F 01") + bytes([1] * 6) + bytes([3] * 6))
    assert p.describe(m.handle(write)) == "01 03 40 21"  # level 1 may not change passwords
    assert ask(m, "01 01 02 02 02 02 02 02 02 BD 97") == "01 00 00 20"  # level 2
    assert p.describe(m.handle(write)) == "01 00 00 20"
    assert p.describe(m.handle(p.frame(hx("01 09")))) == "01 01 C1 E0"  # unknown command
    assert p.describe(m.handle(p.frame(hx("01 08 16 F0")))) == "01 01 C1 E0"  # unknown BWRI
    # the new level-1 password is 333333 now
    m.handle(p.close_request(1).frame)
    assert ask(m, "01 01 01 01 01 01 01 01 01 7A 11") == "01 01 C1 E0"  # wrong password
    assert m.handle(p.open_request(1, 1, bytes([3] * 6)).frame) == hx("01 00 00 20")


def test_silence_rules():
    m, _ = meter()
    assert m.handle(hx("01 00 00 21")) is None  # bad CRC
    assert m.handle(p.frame(hx("02 00"))) is None  # foreign address
    assert m.handle(p.frame(hx("01 08 16"))) is None  # wrong length for 08 16
    assert m.handle(p.frame(hx("01 05 00 00 00"))) is None  # wrong length for 05
    m.handle(p.open_request(1, 1, bytes([1] * 6)).frame)
    assert m.handle(p.frame(hx("00 03 05 07"))) is None  # a write to address 0: silent
    assert m.address == 1
    # address 0 answers (with address byte 0)
    assert ask(m, "00 00 01 B0") == "00 00 01 B0"
    assert ask(m, "00 08 05 B6 03") == "00 00 01 B0 00"
    # broadcast executes, nobody answers
    assert m.handle(p.frame(hx("FE 03 05 07"))) is None
    assert m.address == 7
    assert m.handle(p.frame(hx("07 08 05"))) == p.frame(hx("07 00 07"))


def test_session_lasts_240s_and_each_request_refreshes_it():
    m, clock = meter()
    m.handle(p.open_request(1, 1, bytes([1] * 6)).frame)
    for _ in range(3):
        clock.now += 200
        assert len(m.handle(p.group_request(1, 0x11).frame)) == 12
    clock.now += 241
    assert m.handle(p.group_request(1, 0x11).frame) == hx("01 05 C0 23")


def test_ascii_password_meter():
    m, _ = meter(password_encoding="ascii")
    assert ask(m, "01 01 01 01 01 01 01 01 01 7A 11") == "01 01 C1 E0"
    assert ask(m, "01 01 01 31 31 31 31 31 31 24 FE") == "01 00 00 20"


def opened(**kw) -> tuple[SimMeter, Clock]:
    m, clock = meter(**kw)
    m.handle(p.open_request(1, 1, bytes([1] * 6)).frame)
    return m, clock


def data(m: SimMeter, request: p.Request) -> bytes:
    reply = m.handle(request.frame)
    assert reply is not None and p.crc_ok(reply)
    return reply[1:-2]


def test_energy_arrays_are_consistent():
    m, _ = opened()
    total = p.decode_energy(data(m, p.energy_request(1)))
    tariffs = [p.decode_energy(data(m, p.energy_request(1, t)), t) for t in (1, 2, 3, 4)]
    assert "energy_active_export_kwh" not in total  # one-direction 230: A- is FFFFFFFF
    assert total["energy_reactive_export_kvarh"] == 0.0  # R- counted, zero
    summed = sum(t[f"energy_active_import_t{i}_kwh"] for i, t in enumerate(tariffs, 1))
    assert round(summed, 3) == total["energy_active_import_kwh"]
    year = p.decode_energy(data(m, p.energy_request(1, 0, array=1)))
    day = p.decode_energy(data(m, p.energy_request(1, 0, array=4)))
    assert total["energy_active_import_kwh"] >= year["energy_active_import_kwh"] >= \
        day["energy_active_import_kwh"] >= 0
    at_year_start = p.decode_energy(data(m, p.energy_request(1, 0, array=9)))
    assert round(at_year_start["energy_active_import_kwh"] + year["energy_active_import_kwh"],
                 3) == pytest.approx(total["energy_active_import_kwh"], abs=0.002)
    month = data(m, p.energy_request(1, 0, array=3, month=1))
    assert len(month) == 16
    assert m.handle(p.energy_request(1, 0, array=3, month=0).frame) == hx("01 01 C1 E0")
    per_phase = data(m, p.energy_request(1, 0, array=6))
    assert len(per_phase) == 12
    assert sum(p.dec4(per_phase[i:i + 4]) for i in (0, 4, 8)) <= \
        total["energy_active_import_kwh"] * 1000


def test_model_dependent_answers():
    m, _ = opened(device_model="236")  # two directions
    assert "energy_active_export_kwh" in p.decode_energy(data(m, p.energy_request(1)))
    m, _ = opened(active_only=True)
    total = p.decode_energy(data(m, p.energy_request(1)))
    assert set(total) == {"energy_active_import_kwh"}
    assert m.handle(p.group_request(1, 0x04).frame) == hx("01 01 C1 E0")
    m, _ = opened(device_model="204")  # single phase: 08 11 only
    assert m.handle(p.group_request(1, 0x11).frame) == hx("01 01 C1 E0")
    assert m.handle(p.group_request(1, 0xA0).frame) == hx("01 01 C1 E0")
    assert "voltage_l1_v" in p.decode_single(0x11, data(m, p.single_request(1, 0x11)))
    assert m.handle(p.single_request(1, 0x12).frame) == hx("01 01 C1 E0")
    assert p.decode_variant(data(m, p.variant_request(1))).phases == 1
    m, _ = opened(fast_read=False)
    assert m.handle(p.group_request(1, 0xA0).frame) == hx("01 01 C1 E0")


def test_values_are_realistic_and_drift():
    wall = [time.time()]
    m = SimMeter(MeterSpec("32297700-17", "230", 1), random.Random(3), wall=lambda: wall[0])
    m.handle(p.open_request(1, 1, bytes([1] * 6)).frame)
    first = p.decode_fast_read(data(m, p.group_request(1, 0xA0)))
    e1 = p.decode_energy(data(m, p.energy_request(1)))["energy_active_import_kwh"]
    for key in ("voltage_l1_v", "voltage_l2_v", "voltage_l3_v"):
        assert 207 <= first[key] <= 253
    assert 49.9 <= first["frequency_hz"] <= 50.1
    assert 0.6 <= first["power_factor"] <= 1
    phases = sum(first[f"power_active_l{i}_w"] for i in (1, 2, 3))
    assert first["power_active_w"] == pytest.approx(phases, abs=0.05)
    assert first["power_apparent_l1_va"] == pytest.approx(
        first["voltage_l1_v"] * first["current_l1_a"], rel=0.01)
    wall[0] += 600  # ten minutes later
    m.session_deadline = float("inf")
    second = p.decode_fast_read(data(m, p.group_request(1, 0xA0)))
    e2 = p.decode_energy(data(m, p.energy_request(1)))["energy_active_import_kwh"]
    assert second["voltage_l1_v"] != first["voltage_l1_v"]
    expected_kwh = first["power_active_w"] * 600 / 3600 / 1000
    assert e2 - e1 == pytest.approx(expected_kwh, rel=0.05, abs=0.002)


# -- the pty bus ------------------------------------------------------------------------------

DEMO = [{"serial_number": "32297700-17", "device_model": "230", "address": 1},
        {"serial_number": "43099131-20", "device_model": "230", "address": 131},
        {"serial_number": "47457598-22", "device_model": "230", "address": 98}]


async def talk(path: str, payload: bytes, wait: float = 0.3) -> bytes:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        os.write(fd, payload)
        got = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            try:
                got += os.read(fd, 4096)
            except BlockingIOError:
                pass
        return got
    finally:
        os.close(fd)


async def test_demo_meters_on_one_pty():
    sim = await simulator.start(0, SimOptions(extra={"meters": DEMO}))
    try:
        assert [d["serial_number"] for d in sim.devices] == [m["serial_number"] for m in DEMO]
        assert {d["port"] for d in sim.devices} == {sim.bus.path}
        assert sim.bus.path.startswith("/dev/pts/")
        # two requests in one write are cut into two frames; each meter answers its own
        got = await talk(sim.bus.path, p.serial_request(131).frame + p.serial_request(98).frame)
        assert got == p.frame(b"\x83" + p.encode_serial(sim.meter("43099131-20").serial)) + \
            p.frame(b"\x62" + p.encode_serial(sim.meter("47457598-22").serial))
        # a foreign address: silence
        assert await talk(sim.bus.path, p.serial_request(5).frame) == b""
        # address 0 with three meters on the line: they all answer at once, a garbled frame
        collided = await talk(sim.bus.path, p.serial_request(0).frame)
        assert collided and not p.crc_ok(collided)
    finally:
        await sim.close()
    assert not await asyncio.to_thread(os.path.exists, sim.bus.path)


async def test_generated_meters_mixed_models_distinct_addresses():
    three = await simulator.start(3, SimOptions(seed=5))
    try:  # --meters 3 is the manual's test bench
        assert [(d["serial_number"], d["device_model"], d["address"]) for d in three.devices] \
            == [(m["serial_number"], m["device_model"], m["address"]) for m in DEMO]
    finally:
        await three.close()
    sim = await simulator.start(10, SimOptions(seed=5))
    try:
        models = {d["device_model"] for d in sim.devices}
        assert models == set(p.MODELS)
        addresses = [d["address"] for d in sim.devices]
        assert len(set(addresses)) == 10 and all(1 <= a <= 240 for a in addresses)
    finally:
        await sim.close()
    empty = await simulator.start(0, SimOptions())
    assert empty.devices == [] and empty.buses == []


async def test_echo_and_faults_on_the_wire():
    sim = await simulator.start(0, SimOptions(extra={"meters": DEMO[:1], "echo": True}))
    try:
        request = p.serial_request(1).frame
        got = await talk(sim.bus.path, request)
        assert got.startswith(request) and p.crc_ok(got[len(request):])
        sim.bus.echo = False
        m = sim.meter("32297700-17")
        m.fault = "bad_crc"
        assert not p.crc_ok(await talk(sim.bus.path, request))
        m.fault = "truncated"
        assert len(await talk(sim.bus.path, request)) == 8
        m.fault = "silent"
        assert await talk(sim.bus.path, request) == b""
        m.fault = None
        assert p.crc_ok(await talk(sim.bus.path, request))
    finally:
        await sim.close()


async def test_line_speed_emulation_takes_line_time():
    sim = await simulator.start(0, SimOptions(extra={
        "meters": DEMO[:1], "line_speed": True, "baudrate": 1200, "reply_delay": 0.0}))
    try:
        fd = os.open(sim.bus.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            started = time.monotonic()
            os.write(fd, p.serial_request(1).frame)
            got = b""
            while len(got) < 10 and time.monotonic() - started < 5:
                await asyncio.sleep(0.005)
                try:
                    got += os.read(fd, 100)
                except BlockingIOError:
                    pass
            took = time.monotonic() - started
        finally:
            os.close(fd)
        assert len(got) == 10
        assert took >= 15 * 10 / 1200  # 5 + 10 bytes of 10 bits at 1200 baud
    finally:
        await sim.close()


def test_bad_simulator_options_are_clear_errors():
    with pytest.raises(ValueError, match="unsupported model"):
        asyncio.run(simulator.start(0, SimOptions(extra={"meters": [
            {"serial_number": "32297700-17", "device_model": "200", "address": 1}]})))
    with pytest.raises(ValueError, match="two meters on one address"):
        asyncio.run(simulator.start(0, SimOptions(extra={"meters": [DEMO[0], DEMO[0]]})))
    with pytest.raises(ValueError, match="unknown keys"):
        asyncio.run(simulator.start(0, SimOptions(extra={"meters": [{**DEMO[0], "x": 1}]})))


def test_clock_is_bcd_of_now():
    m, _ = opened()
    clock = data(m, p.time_request(1))
    assert len(clock) == 8 and clock[7] == 1  # winter time flag
    decode = [int(f"{b:02x}") for b in clock[:7]]
    now = dt.datetime.now()
    assert decode[4:7] == [now.day, now.month, now.year % 100]
    assert decode[3] == now.isoweekday()
