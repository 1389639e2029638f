"""No parser crashes on any input: property tests (hypothesis) on every parser of the cgminer
and bitmain_http inputs, and round trips of the repairs against the quirks simulators emit."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webbo.agent.fleet.model import normalise_mac
from webbo.agent.fleet.scan import parse_target
from webbo.plugins.common.numbers import as_float, to_ths
from webbo.plugins.common.rpc4028 import client as rpc
from webbo.plugins.common.rpc4028.parse import (
    parse_bmminer_stats,
    parse_devs,
    parse_pools,
    parse_summary,
    reading_from,
)
from webbo.plugins.common.rpc4028.sim_server import QUIRKS, RpcDevice
from webbo.plugins.inputs.bitmain_http.control import browser_conf, pools_of
from webbo.plugins.inputs.bitmain_http.digest import parse_challenge, parse_params
from webbo.plugins.inputs.bitmain_http.driver import reading_from_cgi, work_mode_of
from webbo.plugins.inputs.bitmain_http.sim.digest_server import DigestServer
from webbo.plugins.inputs.cgminer.driver import model_of

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                 max_size=6),
    max_leaves=20,
)
KEYS = ["SUMMARY", "STATS", "POOLS", "DEVS", "VERSION", "DEVDETAILS", "STATUS", "GHS 5s",
        "MHS av", "chain_acn1", "chain_rate1", "temp_pcb1", "fan1", "rate_unit", "URL", "POOL",
        "Stratum Active", "chain", "fan", "status", "rate_5s", "Type", "PROD", "MAC",
        "bitmain-work-mode", "pools", "fan_num", "fan2", "fan5", "MHS 15m", "GHS 1m"]
shaped = st.recursive(
    json_values,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner,
                                                                 max_size=8),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_decode_never_crashes_on_bytes(raw):
    try:
        reply = rpc.decode(raw)
    except rpc.GarbledReply:
        return
    assert isinstance(reply, dict)


@settings(max_examples=300, deadline=None)
@given(shaped)
def test_reply_parsers_never_crash(value):
    parse_summary(value)
    parse_bmminer_stats(value)
    parse_devs(value)
    parse_pools(value)
    model_of(value if isinstance(value, dict) else {}, value)
    reading_from({"summary": value, "stats": value, "pools": value, "devs": value})
    if isinstance(value, dict):
        reading_from_cgi(value, value, value)
        work_mode_of(value)
        pools_of(value)
        browser_conf(value)
        rpc.status_of(value)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_header_and_text_parsers_never_crash(text):
    parse_params(text)
    parse_challenge(text)
    normalise_mac(text)
    as_float(text)
    try:
        parse_target(text)
    except ValueError:
        pass
    DigestServer("antMiner Configuration").check(text, "GET", "root", "root")


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=6),
       st.sets(st.sampled_from([q for q in QUIRKS if q not in ("no_multi", "strings")])))
def test_repairs_undo_every_quirk(body, quirks):
    device = RpcDevice("127.0.0.1", "aa:bb:cc:dd:ee:ff", quirks=quirks)
    reply = {"STATUS": [{"STATUS": "S", "Msg": "x"}], "LIST": [body, body], "id": 1}
    wire = device._wire(reply)
    decoded = rpc.decode(wire)
    assert decoded["LIST"][0].keys() == body.keys() or "newlines" in quirks


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), st.integers(-2, 20), st.text(max_size=3)),
       st.dictionaries(st.integers(1, 16), st.one_of(st.none(), st.integers(-10, 9000),
                                                    st.text(max_size=4)), max_size=16))
def test_bitmain_fans_keep_stopped_ones_and_never_invent_any(fan_num, speeds):
    stats = {"STATS": [{}, {"fan_num": fan_num, **{f"fan{i}": v for i, v in speeds.items()}}]}
    fans = parse_bmminer_stats(stats).get("fans_rpm", [])
    assert all(isinstance(f, int) and f >= 0 for f in fans)
    count = as_float(fan_num)
    if count is not None and 0 <= count <= 16:
        assert len(fans) <= count
    else:  # without fan_num a 0 cannot be told from an empty slot: only turning fans
        assert all(f > 0 for f in fans)


def test_bitmain_fans_by_firmware():
    def fans(block):
        return parse_bmminer_stats({"STATS": [{}, block]})["fans_rpm"]

    assert fans({"fan_num": 4, "fan1": 6000, "fan2": 0, "fan3": 5040, "fan4": 5040}) == [
        6000, 0, 5040, 5040]  # S19 with a dead fan
    assert fans({"fan_num": 2, "fan1": 0, "fan2": 0, "fan3": 0, "fan4": 0, "fan5": 4200,
                 "fan6": 0}) == [4200, 0]  # S9 numbering, a dead fan
    assert fans({"fan_num": 0}) == []  # hydro
    assert fans({"fan1": 6000, "fan2": 0}) == [6000]  # no fan_num: a 0 may be an empty slot


@pytest.mark.parametrize(("value", "unit", "ths"), [
    ("140258.58", "GH", 140.25858), (125000000.0, "MH/s", 125.0), (1.5, "TH", 1.5),
    ("0", "GH/s", 0.0), ("", "GH", None), ("abc", "GH", None), (5, "bogus", None),
])
def test_units(value, unit, ths):
    got = to_ths(value, unit)
    assert got == (pytest.approx(ths) if ths is not None else None)


def test_truncated_reply_without_nul_is_a_failure_not_data():
    whole = msgspec.json.encode({"STATUS": [{"STATUS": "S"}], "SUMMARY": [{"GHS 5s": 1}]})
    with pytest.raises(rpc.GarbledReply, match="cut short"):
        rpc.decode(whole[:30])
    # btminer's overflowing buffer: cut, but NUL-terminated → repaired
    assert rpc.decode(whole[:-3] + b",\x00")["STATUS"]


@pytest.mark.parametrize(("text", "span"), [
    ("127.3.0.1-127.3.0.9", ("127.3.0.1", "127.3.0.9")),
    ("127.3.0.1-20", ("127.3.0.1", "127.3.0.20")),
    ("127.3.0.0/30", ("127.3.0.0", "127.3.0.3")),
    ("127.3.0.5", ("127.3.0.5", "127.3.0.5")),
])
def test_scan_targets(text, span):
    assert parse_target(text) == span


@pytest.mark.parametrize("text", ["127.3.0.9-127.3.0.1", "nope", "::1-::2", "1.2.3.4/40"])
def test_bad_scan_targets(text):
    with pytest.raises(ValueError):
        parse_target(text)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200) | st.builds(
    lambda c, p: msgspec.json.encode({"command": c, "parameter": p}),
    st.sampled_from(["version", "summary+stats+pools", "addpool", "removepool", "switchpool",
                     "poolpriority", "stats", "pools+devs", "x+", "+"]) | st.text(max_size=20),
    st.none() | st.text(max_size=30)))
def test_simulated_rpc_servers_never_crash(raw):
    """The simulators parse requests too: any bytes get a cgminer answer, never an exception."""
    from webbo.plugins.inputs.bitmain_http.sim.antminer import MODELS, SimAntminer
    from webbo.plugins.inputs.cgminer.sim.device import GenericCgminer

    for device in (SimAntminer("127.0.0.1", MODELS["Antminer S21"], seed=1),
                   GenericCgminer("127.0.0.2", "avalon", seed=1)):
        reply = device.answer(raw)
        assert reply.endswith(b"\x00") and rpc.decode(reply)
