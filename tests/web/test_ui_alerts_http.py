"""The Alerts page's forms over plain HTTP (a logged-in session with its CSRF token): a rule
added, refused with its key path when it names a range that does not exist, changed in place
and deleted (webbo.toml keeps its comments); a channel with a URL apprise cannot use refused,
a good one added and tested against a real webhook receiver, then deleted; a silence made and
ended; every step audited."""

from __future__ import annotations

import aiohttp
from alert_receivers import WebhookReceiver
from api_helpers import config_text, stack
from ui_helpers import PASSWORD, login, page_token

from webbo.agent.alerts.engine import AlertEngine


def jar() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                 timeout=aiohttp.ClientTimeout(total=60))


async def post(session: aiohttp.ClientSession, url: str, path: str, form: dict) -> tuple[
        int, str]:
    token = await page_token(session, url, "/alerts")
    async with session.post(url + path, data={"_csrf": token, **form},
                            allow_redirects=True) as answer:
        return answer.status, await answer.text()


async def test_rules_channels_and_silences_from_the_page(tmp_path, registry):
    hook = await WebhookReceiver().start()
    text = config_text(tmp_path / "state", [("Зал 1", "Стойка 5", "127.9.1.1", "127.9.1.9")])
    try:
        async with stack(tmp_path, registry, text) as s, jar() as session:
            s.web.store.set_password("miner", PASSWORD)
            assert (await login(session, s.url)).status == 303
            engine = s.agent.service(AlertEngine)
            async with session.get(s.url + "/alerts") as page:
                html = await page.text()
                assert page.status == 200 and "Всё в порядке" in html and "Правил нет" in html

            code, html = await post(session, s.url, "/alerts/rules/save", {
                "name": "chip-hot", "condition": "temp_chip_high", "threshold": "95",
                "for": "2m", "severity": "critical", "ranges": "Стойка 99", "enabled": "1"})
            assert code == 422
            assert "alerts.rules[0].ranges[0]: no range named" in html
            assert "chip-hot" in html  # the form keeps what was typed
            assert engine.rules == {}

            code, html = await post(session, s.url, "/alerts/rules/save", {
                "name": "chip-hot", "condition": "temp_chip_high", "threshold": "95",
                "for": "2m", "severity": "critical", "ranges": "Стойка 5", "enabled": "1"})
            assert code == 200 and "Сохранено" in html
            assert list(engine.rules) == ["chip-hot"]
            rule = engine.rules["chip-hot"].rule
            assert (rule.threshold, float(rule.for_), rule.ranges) == (95.0, 120.0, ["Стойка 5"])
            code, html = await post(session, s.url, "/alerts/rules/save", {
                "original": "chip-hot", "name": "chip-hot", "condition": "temp_chip_high",
                "threshold": "92,5", "for": "1m", "severity": "warning", "enabled": "1"})
            assert code == 200 and engine.rules["chip-hot"].rule.threshold == 92.5
            assert "# test config: comments must survive API edits" in s.config_path.read_text()

            code, html = await post(session, s.url, "/alerts/channels/save", {
                "name": "tg", "url": "telegram please", "min_severity": "info", "enabled": "1"})
            assert code == 422 and "alerts.channels[0].url" in html
            code, html = await post(session, s.url, "/alerts/channels/save", {
                "name": "hook", "url": hook.url, "min_severity": "info", "enabled": "1"})
            assert code == 200 and list(engine.notifier.channels) == ["hook"]
            code, html = await post(session, s.url, "/alerts/channels/test", {"name": "hook"})
            assert code == 200 and "Проверочное сообщение отправлено" in html
            assert [m.title for m in hook.messages] == ["Проверка канала оповещений"]
            code, html = await post(session, s.url, "/alerts/channels/delete", {"name": "hook"})
            assert code == 200 and engine.notifier.channels == {}

            code, html = await post(session, s.url, "/alerts/silence", {
                "ranges": "Стойка 5", "duration": "4h", "comment": "плановые работы"})
            assert code == 200 and "Тишина включена" in html and "плановые работы" in html
            [silence] = engine.silences.active()
            assert silence.ranges == ["Стойка 5"] and silence.created_by == "user:miner"
            code, html = await post(session, s.url, "/alerts/silence", {"duration": "1h"})
            assert code == 422 and "name what to silence" in html
            code, html = await post(session, s.url, "/alerts/silences/end", {"id": silence.id})
            assert code == 200 and engine.silences.active() == []

            code, html = await post(session, s.url, "/alerts/rules/delete", {"name": "chip-hot"})
            assert code == 200 and engine.rules == {}
            events = {(e.get("event"), e.get("method")) for e in s.agent.tasks.audit.read()}
            assert ("start", "alerts/rules/set") in events
            assert ("start", "alerts/channels/set") in events
            assert ("silence", None) in events and ("unsilence", None) in events
    finally:
        await hook.stop()
