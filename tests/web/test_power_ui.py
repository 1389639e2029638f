"""Энергия in the web UI, over HTTP against the real server and a small simulated farm: the
feeds page (budget and source, measured and estimated kW, miners by state), a feed's page
(chart, sources, plan, miners with estimates marked), setting a budget and going back to the
schedule, and Settings ▸ Энергия refusing a bad feed with the reason while the file stays."""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp
import pytest
from powerfarm import power_farm, settled
from ui_helpers import PASSWORD, login, token_in

from webbo.web.ui.i18n import TEXT

pytestmark = [pytest.mark.timeout(300)]


async def page(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as answer:
        assert answer.status == 200, (url, answer.status)
        return await answer.text()


async def post(session: aiohttp.ClientSession, url: str, form: dict) -> tuple[int, str, str]:
    async with session.post(url, data=form, allow_redirects=False) as answer:
        return answer.status, answer.headers.get("Location", ""), await answer.text()


def test_every_power_text_has_both_languages():
    for key, (ru, en) in TEXT.items():
        if key.startswith(("power.", "psettings.")):
            assert ru and en and ru != key, key


async def test_power_pages(tmp_path, registry):
    async with power_farm(tmp_path, registry, miners=8, feeds=2, speed=6.0, mode="dry-run",
                          families=["antminer", "whatsminer", "mercury"]) as pf:
        await settled(pf, 8)
        pf.stack.web.store.set_password("miner", PASSWORD)
        url = pf.stack.url
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            assert (await login(s, url)).status == 303
            listing = await page(s, f"{url}/power")
            assert "Энергия" in listing and "Ввод 1" in listing and "Ввод 2" in listing
            assert "конфигурация" in listing and "пробный режим" in listing
            assert 'data-live="/ui/power/cards"' in listing
            live = await page(s, f"{url}/ui/power/cards")
            assert re.search(r"≈ \d", live)  # the estimate is shown as one
            english = await page(s, f"{url}/power?lang=en")
            assert "Measured, kW" in english and "dry run" in english
            await page(s, f"{url}/power?lang=ru")

            feed = await page(s, f"{url}/power/feed?name=Ввод%201")
            assert '<svg class="chart power"' in feed and "Источники бюджета" in feed
            assert "Майнеры ввода" in feed and "Оценка по таблице моделей" in feed
            async with s.get(f"{url}/power/feed?name=nope") as missing:
                assert missing.status == 404

            # a budget from the form, until a time; then back to the schedule
            token = token_in(feed)
            until = time.strftime("%Y-%m-%dT%H:%M", time.localtime(time.time() + 3600))
            code, where, _ = await post(s, f"{url}/power/budget", {
                "_csrf": token, "name": "Ввод 1", "budget_kw": "12,5", "until": until,
                "from": "feed"})
            assert code == 303 and where.startswith("/power/feed?name=") and "done=budget" in where
            status = await pf.status("Ввод 1")
            for _ in range(100):
                if status["budget_source"] == "api":
                    break
                await asyncio.sleep(0.1)
                status = await pf.status("Ввод 1")
            assert status["budget_kw"] == 12.5
            done = await page(s, url + where)
            assert "Бюджет ввода Ввод 1 установлен" in done
            code, _, body = await post(s, f"{url}/power/budget", {
                "_csrf": token, "name": "Ввод 1", "budget_kw": "-3"})
            assert code == 422 and "a budget cannot be below zero" in body
            code, where, _ = await post(s, f"{url}/power/schedule", {
                "_csrf": token, "name": "Ввод 1"})
            assert code == 303 and "done=schedule" in where
            entries = pf.agent.tasks.audit.read(limit=100)
            assert any(e.get("method") == "power/set-budget" and e["who"] == "user:miner"
                       for e in entries)

            # Settings ▸ Энергия: a bad feed is refused with the reason; the file stays
            settings = await page(s, f"{url}/settings/power?edit=Ввод%202")
            assert "Изменить ввод Ввод 2" in settings and "43099131-20" in settings
            before = pf.stack.config_path.read_text()
            form = {"_csrf": token_in(settings), "original": "Ввод 2", "name": "Ввод 2",
                    "budget_kw": "900", "limit_kw": "600", "base_load_kw": "0", "mode": "",
                    "strike_price": "", "price_floor_kw": "", "schedule": "",
                    "meters": "43099131-20", "groups": "Зал 2"}
            code, _, body = await post(s, f"{url}/settings/power/feed", form)
            assert code == 422 and "Не принято" in body and "budget_kw" in body
            code, _, body = await post(s, f"{url}/settings/power/feed",
                                       dict(form, budget_kw="100", groups="Зал 1"))
            assert code == 422 and "overlap" in body
            code, _, body = await post(s, f"{url}/settings/power/feed",
                                       dict(form, budget_kw="100", schedule="8-11 50"))
            assert code == 422 and "schedule[0].start" in body
            assert pf.stack.config_path.read_text() == before
            code, where, _ = await post(s, f"{url}/settings/power/feed", dict(
                form, budget_kw="100", limit_kw="150",
                schedule="08:00-11:00 80 mon,tue пик\n23:00-07:00 120"))
            assert code == 303 and "done=saved" in where, where
            saved = pf.agent.config.section(type(pf.agent.services["power"].section)).feed(
                "Ввод 2")
            assert saved.budget_kw == 100 and saved.limit_kw == 150
            assert [(w.start, w.end, w.budget_kw, w.days, w.name) for w in saved.schedule] == [
                ("08:00", "11:00", 80.0, ["mon", "tue"], "пик"),
                ("23:00", "07:00", 120.0, [], "")]
            assert "# test config" in pf.stack.config_path.read_text()
            code, where, _ = await post(s, f"{url}/settings/power/mode", {
                "_csrf": token, "mode": "off"})
            assert code == 303 and pf.agent.services["power"].section.mode == "off"
