"""The web UI's pure parts: the miners' history ring, the chart, the table's query, the ranges
editor's form handling and error mapping, sessions and CSRF tokens, and the translations."""

from __future__ import annotations

import math
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ui_helpers import fake_devices

from webbo.agent.core.config import ConfigError, ConfigErrors
from webbo.agent.core.network import network_items
from webbo.agent.fleet.history import MinerHistory
from webbo.web.state import StateStore
from webbo.web.ui.chart import chart_svg, nice_ticks
from webbo.web.ui.fleet_view import SORTS, MinerQuery, run_query, select
from webbo.web.ui.i18n import TEXT, lang_of, translator
from webbo.web.ui.miner_pages import ActionRequest, page_window, plan, pool_host
from webbo.web.ui.network_pages import (
    apply_op,
    describe,
    field_key,
    map_errors,
    parse_network_form,
)
from webbo.web.ui.render import fmt_duration, fmt_num, missing_texts
from webbo.web.ui.session import Sessions

# -- history ---------------------------------------------------------------------------------------


def test_history_keeps_the_newest_points_in_order_and_replaces_too_close_ones():
    history = MinerHistory(points=4, step=10)
    for k in range(6):
        history.record("m", 10.0 + k, 50.0, None, now=1000 + 20 * k)
    series = history.series("m")
    assert [p.time for p in series] == [1040, 1060, 1080, 1100]
    assert [p.hashrate_ths for p in series] == [12.0, 13.0, 14.0, 15.0]
    assert all(p.temp_chip_max_c is None for p in series)
    history.record("m", 99.0, None, 70.0, now=1105)  # 5 s later: replaces the newest
    assert [(p.time, p.hashrate_ths, p.temp_board_max_c) for p in history.series("m")][-1] == (
        1105, 99.0, None)
    assert len(history.series("m")) == 4
    assert history.series("m", since=1070) == history.series("m")[2:]
    assert history.series("unknown") == []


def test_history_is_bounded_in_miners():
    history = MinerHistory(points=3, step=1, max_miners=2)
    for mac in ("a", "b", "c"):
        history.record(mac, 1.0, 1.0, 1.0, now=1)
    assert len(history) == 2 and history.series("a") == []


async def test_the_fleet_records_a_point_after_each_successful_poll(tmp_path):
    """A real sweep of a simulated Antminer: each successful poll adds (or, within ``step``,
    replaces) the newest point; a failed poll adds nothing."""
    from minerfarm import block, config_text, family, make_agent, sweep

    from webbo.agent.core.plugins import default_registry

    registry = default_registry()
    ip = block() + "7"
    async with family(registry, "antminer", [ip], http_port=18084) as sim:
        agent = make_agent(registry, config_text(ip, ip, tmp_path / "state",
                                                 bitmain="web_port = 18084"))
        fleet = await sweep(agent)
        device = fleet.inventory.at(ip)
        assert device is not None and device.state == "ok"
        fleet.history.step = 0.0  # keep every poll as its own point
        await sweep(agent)
        points = fleet.history.series(device.mac)
        assert len(points) == 2
        assert points[-1].hashrate_ths == pytest.approx(device.reading.hashrate_ths, rel=1e-6)
        assert points[-1].temp_chip_max_c == pytest.approx(device.reading.temp_chip_max_c,
                                                           rel=1e-6)
        sim.by_ip[ip].fault = "garbage"
        await sweep(agent)
        assert device.state == "error" and len(fleet.history.series(device.mac)) == 2
        await fleet.close()


# -- chart ---------------------------------------------------------------------------------------


def test_chart_breaks_lines_at_gaps_and_labels_its_series():
    history = MinerHistory(points=10, step=1)
    now = time.time()
    for k, value in enumerate([100.0, None, 110.0, 111.0]):
        history.record("m", value, 60.0 + k, 75.0, now=now - 300 + 60 * k)
    svg = str(chart_svg(history.series("m"), 120.0, {"hashrate": "H", "expected": "E",
                                                      "board": "B", "chip": "C"}, "t<itle"))
    assert svg.startswith('<svg class="chart"') and svg.endswith("</svg>")
    assert 'aria-label="t&lt;itle"' in svg
    hash_path = re.search(r'<path class="line hash" d="([^"]+)"', svg).group(1)
    assert hash_path.count("M") == 2  # the missing point splits the line
    assert 'class="expected"' in svg and ">E<" in svg
    assert "nan" not in svg.lower()


@given(st.floats(-1e6, 1e6), st.floats(0, 1e6))
def test_ticks_cover_the_range(lo, width):
    ticks = nice_ticks(lo, lo + width)
    assert ticks[0] <= lo + 1e-6 and ticks[-1] >= lo + width - 1e-6 * max(1, abs(lo))
    assert len(ticks) <= 20 and all(math.isfinite(t) for t in ticks)


# -- the table's query ---------------------------------------------------------------------------


DEVICES = fake_devices(1200, seed=5)


@pytest.mark.parametrize("sort", sorted(SORTS))
@pytest.mark.parametrize("desc", [False, True])
def test_every_sort_orders_and_keeps_devices_without_the_value_last(sort, desc):
    chosen = select(DEVICES, MinerQuery(sort=sort, desc=desc))
    assert sorted(d.mac for d in chosen) == sorted(d.mac for d in DEVICES)
    keys = [SORTS[sort](d) for d in chosen]
    have = [k for k in keys if k is not None]
    assert keys[:len(have)] == have
    assert have == sorted(have, reverse=desc)


def test_pages_cover_everything_once():
    macs = []
    for page in range(1, 25):
        macs += [d.mac for d in run_query(DEVICES, MinerQuery(page=page, size=50)).devices]
    assert macs == [d.mac for d in select(DEVICES, MinerQuery())]
    last = run_query(DEVICES, MinerQuery(page=1000, size=500))
    assert last.query.page == 3 and len(last.devices) == 200


def test_query_string_parsing_is_forgiving_and_round_trips():
    query = MinerQuery.parse({"q": " s21 ", "sort": "temp", "dir": "desc", "page": "2",
                              "size": "100", "state": "error", "group": "g1"})
    assert query == MinerQuery(q="s21", group="g1", state="error", sort="temp", desc=True,
                               page=2, size=100)
    assert MinerQuery.parse(query.params()) == query
    assert MinerQuery.parse({}).params() == {}
    assert MinerQuery.parse({"sort": "x", "size": "3", "page": "zz", "state": "?"}) == MinerQuery()


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["q", "group", "range", "state", "sort", "dir", "page",
                                        "size", "x"]), st.text(max_size=30)))
def test_any_query_string_gives_a_valid_page(params):
    page = run_query(DEVICES[:200], MinerQuery.parse(params))
    assert 1 <= page.query.page <= page.pages
    assert len(page.devices) <= page.query.size


def test_summary_counts_and_sums_what_matches():
    page = run_query(DEVICES, MinerQuery(group="room 2"))
    room = [d for d in DEVICES if d.group == "room 2"]
    assert page.total == len(room) and sum(page.counts.values()) == len(room)
    ok = [d for d in room if d.state == "ok"]
    assert math.isclose(page.hashrate_ths, sum(d.reading.hashrate_ths for d in ok))
    assert page.power_known == len(ok)


def test_page_window_and_pool_host():
    assert page_window(1, 1) == [1]
    assert page_window(5, 20) == [1, None, 3, 4, 5, 6, 7, None, 20]
    assert page_window(2, 4) == [1, 2, 3, 4]
    assert pool_host("stratum+tcp://btc.pool.example:3333") == "btc.pool.example:3333"
    assert pool_host("btc.example:1") == "btc.example:1" and pool_host(None) == "—"


def test_action_requests_become_controller_calls():
    assert plan(ActionRequest(action="led_on", macs=["x"])).params == {"status": 1}
    assert plan(ActionRequest(action="work_mode", macs=["x"], mode="sleep")).params == {
        "mode": "sleep"}
    from webbo.web.ui.miner_pages import PoolSlot

    planned = plan(ActionRequest(action="pools", macs=["x"], pools=[
        None, PoolSlot(address=" stratum+tcp://p:1 ", worker="w", suffix_type="ip"), None]))
    assert planned.pools[0] is None and planned.pools[1].address == "stratum+tcp://p:1"
    for bad in (ActionRequest(action="work_mode", macs=["x"]),
                ActionRequest(action="pools", macs=["x"], pools=[None, None]),
                ActionRequest(action="pools", macs=["x"], pools=[
                    PoolSlot(address="", worker="w"), None, None])):
        with pytest.raises(Exception, match=r"mode|pools|pool 1"):
            plan(bad)


# -- the ranges editor ---------------------------------------------------------------------------


FORM = {"groups": "2", "g0.name": "Зал", "g0.uuid": "", "g0.ranges": "1", "g0.r0.name": "A",
        "g0.r0.uuid": "", "g0.r0.first": " 10.0.0.1 ", "g0.r0.last": "10.0.0.9",
        "g1.name": "Склад", "g1.uuid": "2a67feee-08f0-4ce1-89cd-7f8282bd1369", "g1.ranges": "0"}


def test_form_parsing_and_the_editor_buttons():
    groups = parse_network_form(FORM)
    assert groups[0]["ip_ranges"][0]["first"] == "10.0.0.1" and groups[1]["ip_ranges"] == []
    assert apply_op(groups, "add_range:1") == "g1.r0.name"
    assert len(groups[1]["ip_ranges"]) == 1
    assert apply_op(groups, "add_group") == "g2.name" and len(groups) == 3
    apply_op(groups, "del_range:0:0")
    assert groups[0]["ip_ranges"] == []
    apply_op(groups, "del_group:0")
    assert [g["name"] for g in groups] == ["Склад", ""]
    for nonsense in ("del_group:99", "del_range:0", "add_range:x", "explode", "del_range:0:9"):
        apply_op(groups, nonsense)  # ignored
    assert len(groups) == 2
    items = network_items(parse_network_form(FORM))
    assert items[1]["uuid"] == "2a67feee-08f0-4ce1-89cd-7f8282bd1369"
    assert re.match(r"^[0-9a-f-]{36}$", items[0]["ip_ranges"][0]["uuid"])


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=12), st.text(max_size=12)), st.text(max_size=20))
def test_any_posted_form_parses_and_any_button_applies(form, op):
    groups = parse_network_form(form)
    apply_op(groups, op)
    network_items(groups)


def test_config_errors_land_next_to_their_fields():
    error = ConfigErrors([
        ConfigError("network.ip_range_groups[0].ip_ranges[1].last",
                    "not an IPv4 address: '10.0.0.300'"),
        ConfigError("network.ip_range_groups[0].ip_ranges[0].last", "10.0.0.1 is before first "
                    "10.0.0.5"),
        ConfigError("network.ip_range_groups[1].ip_ranges[0]",
                    'range "b" 10.0.0.1-10.0.0.9 (network.ip_range_groups[1].ip_ranges[0]) '
                    'overlaps range "a" 10.0.0.1-10.0.0.9 '
                    '(network.ip_range_groups[0].ip_ranges[0])'),
        ConfigError("network.ip_range_groups[2].uuid", "not a UUID4: 'x'"),
        ConfigError("network", "the ranges hold 9 addresses, more than agent.max_addresses = 1"),
    ])
    fields, general = map_errors(error, "ru")
    assert fields["g0.r1.last"] == "не IPv4-адрес: '10.0.0.300'"
    assert fields["g0.r0.last"] == "10.0.0.1 раньше первого адреса 10.0.0.5"
    assert fields["g1.r0"] == 'пересекается с диапазоном range "a" 10.0.0.1-10.0.0.9 ' \
                              "(группа 1, диапазон 1)"
    assert fields["g2"] == "not a UUID4: 'x'"
    assert general == ["network: the ranges hold 9 addresses, more than agent.max_addresses = 1"]
    assert field_key("network.ip_range_groups[3].name") == "g3.name"
    assert field_key("network.nonsense") == ""
    assert describe("not an IPv4 address: 'x'", "en") == "not an IPv4 address: 'x'"


# -- sessions and CSRF ---------------------------------------------------------------------------


def test_sessions_are_signed_expire_and_end(tmp_path):
    store = StateStore(tmp_path)
    store.set_password("miner", "password1")
    sessions = Sessions(store, ttl=60)
    session = sessions.create("miner", now=time.time())
    cookie = sessions.cookie_value(session)
    assert sessions.from_cookie(cookie) is session
    sid, _, mac = cookie.partition(".")
    assert sessions.from_cookie(f"{sid}.{_other_last(mac)}") is None  # forged signature
    assert sessions.from_cookie(sid) is None and sessions.from_cookie("") is None
    assert sessions.from_cookie(cookie, now=time.time() + 61) is None  # expired, and removed
    assert sessions.from_cookie(cookie) is None
    again = sessions.create("miner")
    token = sessions.csrf_token(again)
    assert sessions.csrf_ok(again, token) and not sessions.csrf_ok(again, _other_last(token))
    assert not sessions.csrf_ok(again, None)
    assert not sessions.csrf_ok(sessions.create("miner"), token)  # per session
    time.sleep(0.01)
    store.set_password("miner", "password2")  # a password change ends older sessions
    assert sessions.from_cookie(sessions.cookie_value(again)) is None


def test_session_table_is_bounded(tmp_path, monkeypatch):
    import webbo.web.ui.session as module

    monkeypatch.setattr(module, "MAX_SESSIONS", 3)
    sessions = Sessions(StateStore(tmp_path), ttl=60)
    made = [sessions.create("miner") for _ in range(5)]
    assert len(sessions) == 3 and made[0].id not in sessions._by_id


# -- words and formats ---------------------------------------------------------------------------


def test_every_text_the_templates_use_exists_in_both_languages():
    assert missing_texts() == set()
    for key, (ru, en) in TEXT.items():
        assert ru and en, key
        assert set(re.findall(r"\{(\w+)\}", ru)) == set(re.findall(r"\{(\w+)\}", en)), key
    assert translator("en")("nav.miners") == "Miners"
    assert translator("ru")("nav.miners") == "Майнеры"
    assert translator("xx")("miners.selected", n=3) == "Выбрано: 3"
    assert lang_of("en", "ru") == "en" and lang_of(None, "en") == "en"
    assert lang_of("de", None) == "ru"


def test_the_manual_labels_are_used():
    ru = {key: pair[0] for key, pair in TEXT.items()}
    for key, label in (("nav.miners", "Майнеры"), ("nav.meters", "Счетчики"),
                       ("nav.settings", "Настройки"), ("nav.settings_miners", "Настройки майнеров"),
                       ("nav.settings_meters", "Настройки счетчиков"),
                       ("nav.security", "Безопасность"), ("net.add_group", "Добавить группу"),
                       ("net.del_group", "Удалить группу"), ("net.add_range", "Добавить диапазон"),
                       ("net.del_range", "Удалить диапазон"), ("common.save", "Сохранить"),
                       ("msettings.refresh", "Обновить порты"),
                       ("msettings.add", "Добавить устройство")):
        assert ru[key] == label


def test_number_and_duration_formats():
    assert fmt_num(12345.678, 1, "ru") == "12\u202f345,7"
    assert fmt_num(12345.678, 1, "en") == "12,345.7"
    assert fmt_num(None) == "—" and fmt_num(float("nan")) == "—"
    assert fmt_duration(93784, "ru") == "1д 2ч" and fmt_duration(59, "en") == "59 s"
    assert fmt_duration(3700, "en") == "1h 1min" and fmt_duration(None) == "—"


def _other_last(text: str) -> str:
    """``text`` with a different last character (a forged token or signature)."""
    return text[:-1] + ("B" if text.endswith("A") else "A")


def test_counted_words_take_the_right_russian_form():
    from webbo.web.ui.i18n import translator

    ru, en = translator("ru"), translator("en")
    assert [ru("map.count", n=n) for n in (1, 3, 5, 11, 21, 22, 112)] == [
        "1 майнер", "3 майнера", "5 майнеров", "11 майнеров", "21 майнер", "22 майнера",
        "112 майнеров"]
    assert ru("act.confirm.led_on", n=1).startswith("Включить мигание светодиодов на 1 майнере")
    assert ru("act.confirm.led_on", n=5).endswith("на 5 майнерах?")
    assert [en("map.count", n=n) for n in (1, 2)] == ["1 miner", "2 miners"]


def test_the_errors_an_operator_meets_read_in_russian():
    from webbo.web.ui.errors import translate_error

    cases = {
        "expected int <= 240": "ожидается целое число не больше 240",
        "must be 1..240 (or 0), not 300": "должен быть от 1 до 240 (или 0), а не 300",
        "set_work_mode: not supported by Antminer S9 (low_power)":
            "set_work_mode: не поддерживается на Antminer S9 (low_power)",
        "outcome unknown: set_pools: no answer": "результат неизвестен",
        "meter 43099131-20 does not answer on /dev/ttyUSB0 at its factory address (131, 31)":
            "не отвечает на /dev/ttyUSB0 по заводскому адресу (131, 31)",
        "required key is missing": "обязательное поле не заполнено",
    }
    for english, russian in cases.items():
        assert russian in translate_error(english, "ru"), english
        assert translate_error(english, "en") == english
