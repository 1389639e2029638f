"""Metric and line protocol: exact escaping, and a property test through a real InfluxDB."""

from __future__ import annotations

import asyncio
import math
import os
import re
import string

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webbo.agent.core.config import Config
from webbo.agent.core.contract import PluginContext
from webbo.agent.core.metric import Metric, UInt, to_lines
from webbo.plugins.outputs.influxdb import InfluxDBConfig, InfluxDBOutput


def test_simple_line():
    m = Metric("miner", {"mac": "aa:bb", "group": "room 1"}, {"hashrate_ths": 110.5, "online": True,
               "uptime_s": 10, "ip": "127.0.0.1"}, 123)
    assert m.line() == ('miner,group=room\\ 1,mac=aa:bb hashrate_ths=110.5,online=true,'
                        'uptime_s=10i,ip="127.0.0.1" 123')


def test_escaping_rules():
    m = Metric("a b,c=d", {"k,e y=": "v a,l=ue"}, {"f i,e=ld": 'say "hi" \\ now\nnext'}, 1)
    assert m.line() == ('a\\ b\\,c=d,k\\,e\\ y\\==v\\ a\\,l\\=ue '
                        'f\\ i\\,e\\=ld="say \\"hi\\" \\\\ now\nnext" 1')


def test_unwritable_parts_are_mapped_not_sent_broken():
    m = Metric("m", {"empty": "", "nl": "a\nb", "trail": "x\\"}, {"nan": math.nan, "inf": math.inf,
               "ok": 1.0}, 5)
    assert m.line() == "m,nl=a\\nb,trail=x ok=1.0 5"
    assert Metric("m", {}, {"nan": math.nan}, 1).line() == ""
    assert Metric("#comment", {}, {"f": 1}, 1).line() == ""


def test_backslash_before_a_separator_is_dropped_not_sent_broken(influx_db):
    server, db = influx_db
    m = Metric("m\\ x\\", {"t\\": "v\\,w", "k": "a\\\\b"}, {"X\\=A": True, "y\\": 1}, 7)
    assert m.line() == "m\\ x,k=a\\\\b,t=v\\,w X\\=A=true,y=1i 7"
    server.create_database(db)
    asyncio.run(_write_once(server.url, db, m))
    rows = server.rows('SELECT * FROM /.*/', db)
    assert rows == [{"time": 7, "X=A": True, "y": 1, "k": "a\\\\b", "t": "v,w",
                     "_measurement": "m x"}]


async def _write_once(url: str, db: str, metric: Metric) -> None:
    output = InfluxDBOutput(InfluxDBConfig(urls=[url], database=db),
                            PluginContext(Config(), None, structlog.get_logger()))  # type: ignore[arg-type]
    try:
        await output.write([metric])
    finally:
        await output.close()


def test_integer_kinds():
    m = Metric("m", {}, {"i": -5, "u": UInt(2**64 - 1), "b": False}, 1)
    assert m.line() == f"m i=-5i,u={2**63 - 1}i,b=false 1"
    assert m.line(uint_support=True) == f"m i=-5i,u={2**64 - 1}u,b=false 1"
    with pytest.raises(ValueError):
        UInt(-1)
    assert to_lines([m, Metric("x", {}, {}, 1)]) == f"m i=-5i,u={2**63 - 1}i,b=false 1".encode()


# -- property test against a real InfluxDB 1.x ------------------------------------------------

# What the line protocol can carry exactly: no control characters in names/keys/tag values, no
# backslash before a separator or at the end, no empty tag value, no leading '#', and not
# InfluxDB's reserved "time".
_BACKSLASH_BEFORE_SEPARATOR = re.compile(r'\\(?=[,= "]|$)')
_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x00"),
    min_size=1, max_size=12,
).filter(lambda s: not _BACKSLASH_BEFORE_SEPARATOR.search(s) and s.strip() == s
         and s != "time" and not s.startswith("#"))
_field_value = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            min_size=1, max_size=30),
)


@st.composite
def metrics(draw: st.DrawFn) -> Metric:
    name = draw(_text)
    tag_keys = draw(st.lists(_text, max_size=3, unique=True))
    field_keys = draw(st.lists(_text.filter(lambda k: k not in tag_keys), min_size=1,
                               max_size=4, unique=True))
    tags = {k: draw(_text) for k in tag_keys}
    fields = {k: draw(_field_value) for k in field_keys}
    ts = draw(st.integers(min_value=0, max_value=2**62))
    return Metric(name, tags, fields, ts)


@pytest.mark.slow
def test_line_protocol_round_trips_through_influxdb(influx_db):
    server, db = influx_db
    counter = {"n": 0}

    @settings(max_examples=int(os.environ.get("WEBBO_HYPOTHESIS_EXAMPLES", "200")), deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(metrics())
    def check(metric: Metric) -> None:
        counter["n"] += 1
        # A fresh measurement namespace per example: type conflicts between examples are
        # InfluxDB's rule, not ours.
        server.query(f'DROP DATABASE "{db}"')
        server.create_database(db)
        asyncio.run(_write_once(server.url, db, metric))
        series = server.query('SELECT * FROM /.*/', db)
        assert len(series) == 1, series
        got = series[0]
        assert got["name"] == metric.name
        row = dict(zip(got["columns"], got["values"][0], strict=True))
        assert row.pop("time") == metric.time
        for key, value in metric.tags.items():
            assert row.pop(key) == value
        for key, value in metric.fields.items():
            stored = row.pop(key)
            if isinstance(value, float):
                assert isinstance(stored, float) and stored == value
            else:
                assert type(stored) is type(value) and stored == value
        assert all(v is None for v in row.values()), row

    check()
    assert counter["n"] >= 10


def test_printable_ascii_names_survive():
    # Every printable ASCII character in every position is either escaped or harmless.
    for ch in string.printable.strip():
        if ch == "\\":
            continue
        m = Metric(f"m{ch}x", {f"t{ch}": f"v{ch}"}, {f"f{ch}": f"s{ch}"}, 1)
        assert m.line().count(" ") - m.line().count("\\ ") == 2
