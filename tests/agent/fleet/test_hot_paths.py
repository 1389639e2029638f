"""The per-miner hot paths kept byte for byte: the metrics of a reading (golden lines, field
order included), metrics that adopt their dicts, lenient numbers, the socket slots' order, and
the young-generation GC threshold the miner fleet sets."""

from __future__ import annotations

import asyncio
import gc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webbo.agent.core.metric import Metric
from webbo.agent.fleet.discovery import YOUNG_GC_THRESHOLD, roomier_young_generation
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.metrics import failure_metric, reading_metrics
from webbo.agent.fleet.model import (
    BoardReading,
    ErrorCode,
    LedStatus,
    PoolReading,
    Reading,
    WorkMode,
)
from webbo.agent.fleet.net import _Slots
from webbo.plugins.common.numbers import as_float, as_int

GOLDEN = [
    'miner,group=room\\ 1,mac=aa:bb:cc:00:11:22,make=Antminer,model=Antminer\\ S21,range=rack\\,2 '
    'ip="10.1.2.3",online=true,state="ok",hostname="Antminer",firmware="FR-1.12",'
    'hashrate_ths=200.123,hashrate_avg_ths=199.9,expected_hashrate_ths=200.0,power_w=3500.1,'
    'efficiency_jth=17.49,temp_board_max_c=65.5,temp_chip_max_c=80.0,fan_rpm_min=4900i,'
    'fan_rpm_max=5100i,fan_count=4i,uptime_s=3600i,work_mode="normal",led=0i,is_mining=true,'
    'accepted=10i,rejected=1i,hw_errors=3i,active_pool="stratum+tcp://pool:3333",error_count=1i,'
    'errors="fan:1: slow (since t0)" 1700000000000000000',
    'miner_board,board=0,group=room\\ 1,mac=aa:bb:cc:00:11:22,range=rack\\,2 hashrate_ths=66.7,'
    'temp_board_c=60.0,temp_chip_c=75.5,chips=108i,hw_errors=1i,frequency_mhz=490.0 '
    '1700000000000000000',
    'miner_pool,group=room\\ 1,index=0,mac=aa:bb:cc:00:11:22,range=rack\\,2 '
    'url="stratum+tcp://pool:3333",user="w.1",active=true,status="Alive",accepted=10i,'
    'rejected=1i 1700000000000000000',
    'miner_pool,group=room\\ 1,index=1,mac=aa:bb:cc:00:11:22,range=rack\\,2 '
    'url="stratum+tcp://b:3333",user="",active=false 1700000000000000000',
]


def device() -> Device:
    return Device(mac="aa:bb:cc:00:11:22", ip="10.1.2.3", driver="bitmain_http", make="Antminer",
                  model="Antminer S21", firmware="FR-1.12", hostname="Antminer", group="room 1",
                  range="rack,2")


def test_reading_metrics_lines_are_unchanged():
    reading = Reading(
        time_ns=1700000000000000000, hashrate_ths=200.12345, hashrate_avg_ths=199.9,
        expected_hashrate_ths=200.0, power_w=3500.06, temp_board_max_c=65.55,
        temp_chip_max_c=80.04, fans_rpm=[5000, 5100, 4900, 5050], uptime_s=3600,
        work_mode=WorkMode.NORMAL, led=LedStatus.NORMAL, is_mining=True, accepted=10, rejected=1,
        hw_errors=3,
        boards=[BoardReading(index=0, hashrate_ths=66.7001, temp_board_c=60.01,
                             temp_chip_c=75.55, chips=108, hw_errors=1, frequency_mhz=490.0),
                BoardReading(index=1)],  # nothing reported: no point
        pools=[PoolReading(index=0, url="stratum+tcp://pool:3333", user="w.1", status="Alive",
                           active=True, accepted=10, rejected=1),
               PoolReading(index=1, url="stratum+tcp://b:3333")],
        errors=[ErrorCode(code="fan:1", message="slow", time="t0")])
    metrics = reading_metrics(device(), reading)
    assert [m.line() for m in metrics] == GOLDEN
    assert [m.line(uint_support=True) for m in metrics] == GOLDEN
    assert metrics[0].fields["hashrate_ths"] == 200.123 and metrics[0].tags["range"] == "rack,2"


def test_failure_metric_line_is_unchanged():
    lost = device()
    lost.state, lost.failures, lost.error = "unreachable", 2, "10.1.2.3:4028: connection refused"
    assert failure_metric(lost, 1700000000000000001).line() == (
        'miner,group=room\\ 1,mac=aa:bb:cc:00:11:22,make=Antminer,model=Antminer\\ S21,'
        'range=rack\\,2 ip="10.1.2.3",online=false,state="unreachable",failures=2i,'
        'error="10.1.2.3:4028: connection refused" 1700000000000000001')


def test_packed_metrics_read_and_change_like_dict_metrics():
    packed = Metric.packed("m", ("b", "a"), ("2", "1"), ["x", "n"], [1.5, 3], 7)
    plain = Metric("m", {"b": "2", "a": "1"}, {"x": 1.5, "n": 3}, 7)
    assert packed.line() == plain.line() == "m,a=1,b=2 x=1.5,n=3i 7"
    assert packed == plain and repr(packed) == repr(plain)
    assert list(packed.fields) == ["x", "n"]  # field order kept
    same_keys = Metric.packed("m", ("b", "a"), ("3", "4"), ("x", "n"), (2.5, 4), 8)
    assert same_keys._keys is Metric.packed("m", ("b", "a"), ("", ""), ["x", "n"], [0, 0], 0)._keys
    same_keys.tags.setdefault("host", "h")  # what the accumulator does with input tags
    same_keys.fields["n"] = 5
    assert same_keys.line() == "m,a=4,b=3,host=h x=2.5,n=5i 8"
    renamed = Metric.packed("m", ("a",), ("1",), ("x",), (1.0,), 9)
    renamed.fields = {"y": True}
    assert renamed.fields == {"y": True} and renamed.tags == {"a": "1"}
    assert renamed.line() == "m,a=1 y=true 9"


@pytest.mark.parametrize(("text", "number"), [
    ("140258.58", 140258.58), (" 73 ", 73.0), ("45%", 45.0), ("12 GH/s", 12.0), ("1_000", 1000.0),
    ("inf", None), ("-nan", None), ("", None), ("  ", None), ("x", None), ("\u00a075\u2003", 75.0),
])
def test_numbers_from_strings(text, number):
    assert as_float(text) == number
    assert as_int(text) == (None if number is None else int(number))


async def test_slots_are_handed_out_in_order_and_skip_the_cancelled():
    slots = _Slots(1)
    await slots.acquire()
    order: list[int] = []

    async def take(n: int) -> None:
        await slots.acquire()
        order.append(n)
        slots.release()

    tasks = [asyncio.create_task(take(n)) for n in range(5)]
    await asyncio.sleep(0)
    tasks[1].cancel()
    slots.release()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert order == [0, 2, 3, 4] and slots.free == 1 and not slots.waiters


def test_young_generation_threshold_is_raised_only_from_below():
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        roomier_young_generation()
        assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, 10, 10)
        gc.set_threshold(500_000, 5, 5)  # someone chose more: kept
        roomier_young_generation()
        assert gc.get_threshold() == (500_000, 5, 5)
        gc.set_threshold(0)  # collection turned off by threshold: kept off
        roomier_young_generation()
        assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)


# -- the lines reading_metrics builds itself are the lines Metric would build -----------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_floats = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=64))
_ints = st.one_of(st.none(), st.integers(min_value=-(2**70), max_value=2**70))


@st.composite
def readings(draw) -> tuple[Device, Reading]:
    dev = Device(mac=draw(st.sampled_from(["aa:bb:cc:00:11:22", "", "x y,z=\\"])),
                 ip=draw(_text), driver="d", make=draw(_text), model=draw(_text),
                 firmware=draw(_text), hostname=draw(_text), group=draw(_text),
                 range=draw(_text))
    boards = [BoardReading(index=draw(st.integers(-3, 99)), hashrate_ths=draw(_floats),
                           temp_board_c=draw(_floats), chips=draw(_ints),
                           hw_errors=draw(_ints), frequency_mhz=draw(_floats))
              for _ in range(draw(st.integers(0, 3)))]
    pools = [PoolReading(index=draw(st.integers(0, 5)), url=draw(_text), user=draw(_text),
                         status=draw(_text), active=draw(st.booleans()),
                         accepted=draw(_ints), rejected=draw(_ints))
             for _ in range(draw(st.integers(0, 3)))]
    reading = Reading(
        time_ns=draw(st.integers(0, 2**62)), hashrate_ths=draw(_floats), power_w=draw(_floats),
        temp_chip_max_c=draw(_floats),
        fans_rpm=draw(st.lists(st.integers(0, 20000), max_size=4)),
        cooling=draw(st.sampled_from([None, "air", "hydro", "immersion"])),
        fan_psu_rpm=draw(_ints), uptime_s=draw(_ints), work_mode=draw(st.sampled_from(
            [None, *WorkMode])), led=draw(st.sampled_from([None, *LedStatus])),
        is_mining=draw(st.sampled_from([None, True, False])), accepted=draw(_ints),
        hostname=draw(st.one_of(st.none(), _text)), firmware=draw(st.one_of(st.none(), _text)),
        boards=boards, pools=pools,
        errors=[ErrorCode(code=draw(_text), message=draw(_text), time=draw(_text))
                for _ in range(draw(st.integers(0, 2)))])
    return dev, reading


@settings(max_examples=300, deadline=None)
@given(readings())
def test_ready_made_lines_are_what_metric_builds(case):
    dev, reading = case
    for made in reading_metrics(dev, reading):
        rebuilt = Metric(made.name, made.tags, made.fields, made.time)
        assert made.line() == rebuilt.line()
        assert made.line(uint_support=True) == rebuilt.line(uint_support=True)


def test_input_tags_make_the_line_again():
    reading = Reading(time_ns=5, hashrate_ths=1.0)
    made = reading_metrics(device(), reading)[0]
    assert made.line().startswith("miner,group=room\\ 1,mac=")
    made.add_tags({"site": "north", "mac": "ignored"})
    assert ",site=north " in made.line() and made.tags["mac"] == "aa:bb:cc:00:11:22"
    made.fields = {"x": 1.0}
    assert made.line().endswith(" x=1.0 5")


def test_stopped_fans_and_fanless_models():
    stopped = reading_metrics(device(), Reading(time_ns=1, fans_rpm=[5000, 0], cooling="air"))
    assert stopped[0].fields["fan_rpm_min"] == 0 and stopped[0].fields["fan_count"] == 2
    assert stopped[0].fields["cooling"] == "air"
    hydro = reading_metrics(device(), Reading(time_ns=1, cooling="hydro"))[0].fields
    assert hydro["fan_count"] == 0 and hydro["cooling"] == "hydro"
    assert "fan_rpm_min" not in hydro
    unknown = reading_metrics(device(), Reading(time_ns=1))[0].fields
    assert "fan_count" not in unknown and "cooling" not in unknown  # absent means unknown
