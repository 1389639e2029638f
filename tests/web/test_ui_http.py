"""The web UI over plain HTTP against the real server: no page without a login, cookie flags,
CSRF refusals, the login rate limit, sessions ending on logout and password change, the
Miners table's server-side search/sort/filter/pages at thousands of miners, and the ranges
editor's validation. (The browser tests in test_ui_browser.py drive the same pages in Chromium.)
"""

from __future__ import annotations

import json
import re
from http.cookies import SimpleCookie

import aiohttp
import pytest
import pytest_asyncio
from api_helpers import Stack, config_text, stack
from ui_helpers import PASSWORD, fake_devices, fill, login, page_token, token_in
from yarl import URL

from webbo.agent.core.plugins import default_registry
from webbo.web.ui.fleet_view import MinerQuery, select

pytestmark = pytest.mark.asyncio(loop_scope="module")

PUBLIC = re.compile(r"^/(login|static|healthz)(/|$)")
COUNT = 3000


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site(tmp_path_factory):
    """A running agent and web server with 3,000 made-up miners in its inventory (no ranges:
    nothing is swept, the inventory stays as filled)."""
    registry = default_registry()
    tmp = tmp_path_factory.mktemp("ui")
    text = config_text(tmp / "state", [], web='login_attempts = 3\nlogin_window = "60s"')
    async with stack(tmp, registry, text) as s:
        s.web.store.set_password("miner", PASSWORD)
        s.web.store.set_password("operator", PASSWORD)
        fill(s.fleet, fake_devices(COUNT))
        yield s


def jar() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                 timeout=aiohttp.ClientTimeout(total=60))


async def logged_in(s: Stack) -> aiohttp.ClientSession:
    session = jar()
    answer = await login(session, s.url)
    assert answer.status == 303 and answer.headers["Location"] == "/miners"
    return session


# -- no page without a login ---------------------------------------------------------------------


async def test_every_route_but_login_static_and_healthz_needs_authentication(site: Stack):
    """Enumerate every route the app registers (API and UI) and call it without a session or
    key, then with a forged session cookie: nothing but the login page, static assets and
    /healthz answers (/metrics wants a bearer token or an API key: tests/web/test_prometheus.py)."""
    checked = 0
    async with jar() as session:
        for route in site.web.app.routes:
            if PUBLIC.match(route.path):
                continue
            path = re.sub(r"\{[^}]+\}", "x", route.path)
            for method in sorted(route.methods - {"OPTIONS"}):
                for cookie in (None, "forged.session"):
                    headers = {"Content-Type": "application/json"}
                    if cookie:
                        headers["Cookie"] = f"webbo_session={cookie}"
                    async with session.request(method, site.url + path, data="{}",
                                               headers=headers, allow_redirects=False) as resp:
                        body = await resp.read()
                    where = (method, path, resp.status)
                    if path.startswith("/api") or path == "/metrics":  # a key (or token) only
                        assert resp.status == 401, where
                    elif method in ("GET", "HEAD") and not path.startswith("/ui/"):
                        assert resp.status == 303, where
                        assert resp.headers["Location"].startswith("/login"), where
                    else:
                        assert resp.status == 401, where
                        if method != "HEAD":
                            assert json.loads(body)["error"] == "login required", where
                    checked += 1
    assert checked >= 60


async def test_redirect_to_login_keeps_where_the_operator_was_going(site: Stack):
    async with jar() as session:
        async with session.get(site.url + "/map?color=hash", allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == "/login?next=%2Fmap%3Fcolor%3Dhash"
        async with session.get(site.url + "/", allow_redirects=False) as resp:
            assert resp.headers["Location"] == "/login"
        async with session.get(site.url + "/login?next=//evil.example/") as resp:
            assert 'name="next" value="/miners"' in await resp.text()


async def test_public_parts_are_only_the_login_page_static_and_healthz(site: Stack):
    async with jar() as session:
        for path, kind in (("/login", "text/html"), ("/static/app.css", "text/css"),
                           ("/static/app.js", "javascript"), ("/static/miners.js", "javascript"),
                           ("/static/favicon.svg", "image/svg"), ("/healthz", "text/plain")):
            async with session.get(site.url + path) as resp:
                assert resp.status == 200, path
                assert kind in resp.headers["Content-Type"], path
        async with session.get(site.url + "/static/../web.json") as resp:
            assert resp.status == 404


# -- cookies, sessions, CSRF -------------------------------------------------------------------


async def test_session_cookie_flags_and_page_headers(site: Stack):
    async with jar() as session:
        answer = await login(session, site.url)
        raw = [v for v in answer.headers.getall("Set-Cookie") if v.startswith("webbo_session=")]
        assert len(raw) == 1
        cookie = SimpleCookie(raw[0])["webbo_session"]
        assert cookie["httponly"] is True
        assert cookie["samesite"].lower() == "lax"
        assert cookie["path"] == "/"
        assert int(cookie["max-age"]) == 12 * 3600  # [web] session_ttl
        assert not cookie["secure"]  # plain http on loopback
        async with session.get(site.url + "/miners") as resp:
            assert resp.status == 200
            csp = resp.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert resp.headers["X-Frame-Options"] == "DENY"
            assert resp.headers["Cache-Control"] == "no-store"
            page = await resp.text()
        # every asset the page loads is served by the app itself
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
        assert {"/static/app.css", "/static/app.js", "/static/miners.js"} <= set(assets)
        assert [u for u in re.findall(r'(?:src|href)="([^"]+)"', page) if "//" in u] == []


async def test_posts_without_the_csrf_token_or_from_another_site_are_refused(site: Stack):
    async with await logged_in(site) as session:
        token = await page_token(session, site.url)
        before = len(site.web.store.data.api_keys)
        for data, headers in (({"name": "x"}, {}),
                              ({"name": "x", "_csrf": "wrong"}, {}),
                              ({"name": "x", "_csrf": token}, {"Origin": "http://evil.example"})):
            async with session.post(site.url + "/security/keys", data=data, headers=headers,
                                    allow_redirects=False) as resp:
                assert resp.status == 403, (data, headers)
                assert "Запрос отклонён" in await resp.text()
        assert len(site.web.store.data.api_keys) == before
        # the pages' JSON calls need the token in the header
        body = json.dumps({"action": "led_on", "macs": ["02:56:00:00:00:01"]})
        async with session.post(site.url + "/ui/miners/actions", data=body,
                                headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 403
        # and with the token everything works
        async with session.post(site.url + "/security/keys",
                                data={"name": "ok", "_csrf": token}) as resp:
            assert resp.status == 200 and "wbk." in await resp.text()
        assert len(site.web.store.data.api_keys) == before + 1


async def test_the_login_form_itself_needs_its_token(site: Stack):
    async with jar() as session:
        form = {"username": "miner", "password": PASSWORD}
        async with session.post(site.url + "/login", data=form, allow_redirects=False) as resp:
            assert resp.status == 403
            assert not [v for v in resp.headers.getall("Set-Cookie", [])
                        if v.startswith("webbo_session=") and "Max-Age=0" not in v]


async def test_logout_ends_the_session_on_the_server(site: Stack):
    session = await logged_in(site)
    async with session:
        cookie = session.cookie_jar.filter_cookies(URL(site.url))["webbo_session"].value
        token = await page_token(session, site.url)
        async with session.post(site.url + "/logout", data={"_csrf": token},
                                allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/login"
    async with jar() as other:  # the old cookie, replayed, is worthless now
        async with other.get(site.url + "/miners", headers={"Cookie": f"webbo_session={cookie}"},
                             allow_redirects=False) as resp:
            assert resp.status == 303


async def test_wrong_passwords_are_rate_limited(site: Stack):
    async with jar() as session:
        for _ in range(3):
            answer = await login(session, site.url, "operator", "wrong password")
            assert answer.status == 401
        answer = await login(session, site.url, "operator", PASSWORD)  # right, but locked out
        assert answer.status == 429
        assert not [v for v in answer.headers.getall("Set-Cookie", [])
                    if v.startswith("webbo_session=")]
    async with jar() as session:  # another user from the same address is not locked out
        assert (await login(session, site.url)).status == 303


async def test_changing_the_password_ends_the_other_sessions(site: Stack):
    store = site.web.store
    store.set_password("changer", PASSWORD)
    first, second = jar(), jar()
    async with first, second:
        assert (await login(first, site.url, "changer")).status == 303
        assert (await login(second, site.url, "changer")).status == 303
        token = await page_token(first, site.url)
        form = {"_csrf": token, "current": "not it", "new": "a new password", "repeat": "x"}
        async with first.post(site.url + "/security/password", data=form) as resp:
            assert resp.status == 422
            text = await resp.text()
            assert "Текущий пароль неверен" in text and "Пароли не совпадают" in text
        form.update(current=PASSWORD, repeat="a new password")
        async with first.post(site.url + "/security/password", data=form) as resp:
            assert resp.status == 200 and "Пароль изменён" in await resp.text()
        async with first.get(site.url + "/miners", allow_redirects=False) as resp:
            assert resp.status == 200  # this session got a fresh cookie
        async with second.get(site.url + "/miners", allow_redirects=False) as resp:
            assert resp.status == 303  # the other one ended
        assert (await login(second, site.url, "changer", "a new password")).status == 303


# -- the Miners table at thousands -------------------------------------------------------------


async def rows(session: aiohttp.ClientSession, s: Stack, **params: str) -> dict:
    async with session.get(s.url + "/ui/miners/rows", params=params) as resp:
        assert resp.status == 200
        return await resp.json()


async def test_pages_sort_and_filters_are_server_side_and_correct(site: Stack):
    devices = site.fleet.inventory.devices()
    async with await logged_in(site) as session:
        first = await rows(session, site)
        assert first["total"] == COUNT and first["pages"] == COUNT // 50
        assert len(first["macs"]) == 50
        assert first["rows"].count("<tr data-mac=") == 50
        # pages: by IP, contiguous, nothing lost or repeated
        seen = []
        for page in (1, 2, 60):
            answer = await rows(session, site, page=str(page), size="50")
            seen += answer["macs"]
        by_ip = [d.mac for d in select(devices, MinerQuery())]
        assert seen == by_ip[:100] + by_ip[2950:3000]
        # a page past the end shows the last one
        assert (await rows(session, site, page="999"))["page"] == 60
        # sort by hashrate share, descending: ordered, miners without a reading last
        answer = await rows(session, site, sort="ratio", dir="desc", size="500", page="6")
        chosen = select(devices, MinerQuery(sort="ratio", desc=True))
        assert answer["macs"] == [d.mac for d in chosen[2500:3000]]
        ratios = [d.reading.hashrate_ths / d.reading.expected_hashrate_ths
                  for d in chosen if d.reading is not None]
        assert ratios == sorted(ratios, reverse=True)
        assert all(d.reading is None for d in chosen[len(ratios):])
        # filters combine: group, range, state and a search
        answer = await rows(session, site, group="room 1", state="ok", size="500")
        want = [d for d in devices if d.group == "room 1" and d.state == "ok"]
        assert answer["total"] == len(want) > 0
        answer = await rows(session, site, range="r2.3", size="500")
        assert answer["total"] == sum(1 for d in devices if d.range_id == "r2.3") > 0
        answer = await rows(session, site, q="127.56.3. s21")
        want = [d for d in devices if d.ip.startswith("127.56.3.") and "S21" in d.model]
        assert answer["total"] == len(want) > 0
        answer = await rows(session, site, state="offline")
        assert answer["total"] == sum(1 for d in devices if d.state in ("unreachable", "error"))
        # the summary counts what matches, the pager offers the right pages
        answer = await rows(session, site, state="error")
        assert f"<b>{answer['total']}</b>" in answer["summary"]
        # nonsense in the query string falls back to defaults instead of failing
        answer = await rows(session, site, sort="'; drop", size="7", page="-3", state="zzz")
        assert answer["total"] == COUNT and answer["page"] == 1 and len(answer["macs"]) == 50


async def test_the_miners_page_renders_the_first_page_without_scripts(site: Stack):
    async with await logged_in(site) as session:
        async with session.get(site.url + "/miners", params={"sort": "temp", "dir": "desc",
                                                             "state": "ok"}) as resp:
            page = await resp.text()
        assert page.count("<tr data-mac=") == 50
        assert 'aria-sort="descending"' in page
        hottest = select(site.fleet.inventory.devices(),
                         MinerQuery(sort="temp", desc=True, state="ok"))[0]
        assert re.search(r'<tr data-mac="([^"]+)"', page).group(1) == hottest.mac


async def test_select_every_matching_miner_acts_on_the_filter(site: Stack):
    async with await logged_in(site) as session:
        token = await page_token(session, site.url, "/miners")
        body = {"action": "led_on", "filter": {"q": "127.56.0.1", "state": "ok"}}
        async with session.post(site.url + "/ui/miners/actions", data=json.dumps(body),
                                headers={"Content-Type": "application/json",
                                         "X-CSRF-Token": token}) as resp:
            answer = await resp.json()
            assert resp.status == 200, answer
        want = [d for d in site.fleet.inventory.devices()
                if "127.56.0.1" in d.ip and d.state == "ok"]
        assert answer["devices"] == len(want) > 1
        while True:
            async with session.get(site.url + f"/ui/tasks/{answer['task_id']}") as resp:
                task = await resp.json()
            if task["status"] != "pending":
                break
        # the made-up miners have no driver: each says so, keyed by MAC
        assert task["status"] == "success"
        assert task["html"].count("<tr class=\"failed\">") == len(want)
        for bad in ({"action": "work_mode", "macs": [want[0].mac]},
                    {"action": "pools", "macs": [want[0].mac], "pools": [None, None, None]},
                    {"action": "led_on", "macs": []}, {"action": "explode", "macs": []}):
            async with session.post(site.url + "/ui/miners/actions", data=json.dumps(bad),
                                    headers={"Content-Type": "application/json",
                                             "X-CSRF-Token": token}) as resp:
                assert resp.status == 422, bad
                assert (await resp.json())["error"]


async def test_english_switch_is_remembered(site: Stack):
    async with await logged_in(site) as session:
        async with session.get(site.url + "/miners?lang=en") as resp:
            assert ">Miners<" in await resp.text()
        async with session.get(site.url + "/map") as resp:
            text = await resp.text()
            assert "Rack map" in text and "Карта стоек" not in text
        async with session.get(site.url + "/map?lang=ru") as resp:
            assert "Карта стоек" in await resp.text()


async def test_a_miner_page_and_an_unknown_one(site: Stack):
    device = next(d for d in site.fleet.inventory.devices() if d.reading and d.reading.errors)
    site.fleet.history.record(device.mac, 90.0, 60.0, 80.0, now=1_000)
    site.fleet.history.record(device.mac, 95.0, 61.0, 82.0, now=1_100)
    async with await logged_in(site) as session:
        async with session.get(f"{site.url}/miners/{device.mac}") as resp:
            page = await resp.text()
            assert resp.status == 200
        assert device.ip in page and "R:1" in page and "<svg class=\"chart\"" in page
        async with session.get(f"{site.url}/miners/02:56:ff:ff:ff:ff") as resp:
            assert resp.status == 404 and "не найден" in await resp.text()


# -- the ranges editor -------------------------------------------------------------------------


async def test_ranges_editor_round_trips_validates_and_saves(tmp_path):
    registry = default_registry()
    async with stack(tmp_path, registry, config_text(tmp_path / "state", [])) as s:
        s.web.store.set_password("miner", PASSWORD)
        async with await logged_in(s) as session:
            token = await page_token(session, s.url, "/settings/miners")
            form = {"_csrf": token, "groups": "0", "op": "add_group"}
            async with session.post(s.url + "/settings/miners", data=form) as resp:
                page = await resp.text()
                assert 'name="g0.name"' in page and 'name="g0.r0.first"' in page
            form = {"_csrf": token, "groups": "1", "g0.name": "Зал", "g0.uuid": "",
                    "g0.ranges": "1", "g0.r0.name": "A", "g0.r0.uuid": "",
                    "g0.r0.first": "127.57.0.1", "g0.r0.last": "127.57.0.300", "op": "add_range:0"}
            async with session.post(s.url + "/settings/miners", data=form) as resp:
                page = await resp.text()
                assert 'value="127.57.0.300"' in page and 'name="g0.r1.first"' in page
            form.update({"g0.ranges": "2", "g0.r1.name": "B", "g0.r1.uuid": "",
                         "g0.r1.first": "127.57.0.9", "g0.r1.last": "127.57.0.2", "op": "save"})
            async with session.post(s.url + "/settings/miners", data=form) as resp:
                assert resp.status == 422
                page = await resp.text()
            assert 'id="err-g0.r0.last"' in page and "не IPv4-адрес: &#39;127.57.0.300&#39;" in page
            assert 'id="err-g0.r1.last"' in page and "раньше первого адреса" in page
            assert s.agent.config.network.ip_range_groups == []
            form.update({"g0.r0.last": "127.57.0.10", "g0.r1.first": "127.57.0.20",
                         "g0.r1.last": "127.57.0.5"})
            form["g0.r1.first"], form["g0.r1.last"] = "127.57.0.5", "127.57.0.12"
            async with session.post(s.url + "/settings/miners", data=form) as resp:
                page = await resp.text()
                assert resp.status == 422 and "пересекается с диапазоном" in page
                assert "группа 1, диапазон 1" in page
            form["g0.r1.first"], form["g0.r1.last"] = "127.57.0.11", "127.57.0.12"
            async with session.post(s.url + "/settings/miners", data=form,
                                    allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/settings/miners?saved=1"
            groups = s.agent.config.network.ip_range_groups
            assert [(g.name, [(r.name, r.first, r.last) for r in g.ip_ranges]) for g in groups] == [
                ("Зал", [("A", "127.57.0.1", "127.57.0.10"), ("B", "127.57.0.11", "127.57.0.12")])]
            text = s.config_path.read_text("utf-8")
            assert "# test config: comments must survive API edits" in text
            async with session.get(s.url + "/settings/miners?saved=1") as resp:
                page = await resp.text()
                assert "Сохранено: 1 группа, 2 диапазона, 12 адресов" in page
                assert f'value="{groups[0].uuid}"' in page
            audit = s.agent.services["control"].audit.read(limit=5)
            assert any(e.get("method") == "set-network" and e.get("who") == "user:miner"
                       for e in audit)
            # deleting the group and saving empties [network]
            token = token_in(page)
            form = {"_csrf": token, "groups": "1", "g0.name": "Зал", "g0.uuid": groups[0].uuid,
                    "g0.ranges": "0", "op": "del_group:0"}
            async with session.post(s.url + "/settings/miners", data=form) as resp:
                page = await resp.text()
                assert 'name="g0.name"' not in page and "Есть несохранённые изменения" in page
            async with session.post(s.url + "/settings/miners",
                                    data={"_csrf": token, "groups": "0", "op": "save"}) as resp:
                assert resp.status == 200
            assert s.agent.config.network.ip_range_groups == []
