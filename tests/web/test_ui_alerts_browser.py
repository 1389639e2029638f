"""The Alerts page in a real browser (Debian's Chromium via Playwright): a silence made on the
page holds back the messages of the miner it names while its alert still shows, marked, on the
page; the header's badge counts what is not silenced; the Miners page filters on alerting
miners; ending the silence lets the message go. Simulated Antminers on 127.x, the webhook
receiver on loopback."""

from __future__ import annotations

import asyncio
import os

import pytest
from alert_receivers import WebhookReceiver, wait_until
from api_helpers import config_text, stack
from minerfarm import block, family
from playwright import async_api as playwright_api
from ui_helpers import CHROMIUM, CHROMIUM_ARGS, PASSWORD, SCREENSHOTS

from webbo.agent.alerts.engine import AlertEngine

pytestmark = pytest.mark.slow
HAVE_CHROMIUM = os.path.exists(CHROMIUM)
HTTP_PORT = 18084
TIMEOUT = 60_000


async def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"alerts-{name}.png"), full_page=True)


async def test_a_silence_made_on_the_page_holds_messages_back_and_shows(tmp_path, registry):
    assert HAVE_CHROMIUM, "Debian's chromium is missing (apt-get install chromium)"
    hook = await WebhookReceiver().start()
    net = block()
    ips = [f"{net}{i}" for i in range(1, 4)]
    inputs = f"""[[inputs.bitmain_http]]
web_port = {HTTP_PORT}

[alerts]
group_by = ["rule", "device"]
group_wait = "0.2s"
[[alerts.rules]]
name = "перегрев"
condition = "temp_chip_high"
threshold = 100
severity = "critical"
[[alerts.channels]]
name = "webhook"
url = "{hook.url}"
"""
    text = config_text(tmp_path / "state", [("Зал 1", "Стойка 5", ips[0], ips[-1])],
                       inputs=inputs)
    try:
        async with family(registry, "antminer", ips, http_port=HTTP_PORT,
                          models=["Antminer S19j Pro"]) as sim, \
                stack(tmp_path, registry, text) as s, \
                playwright_api.async_playwright() as pw:
            s.web.store.set_password("miner", PASSWORD)
            await s.wait_inventory(3)
            engine = s.agent.service(AlertEngine)
            silenced, loud = sim.by_ip[ips[0]], sim.by_ip[ips[1]]
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                               args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1366, "height": 900},
                                          locale="ru-RU")
            page.set_default_timeout(TIMEOUT)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            expect = playwright_api.expect
            expect.set_options(timeout=TIMEOUT)
            try:
                await page.goto(s.url + "/login")
                await page.get_by_label("Пароль").fill(PASSWORD)
                await page.get_by_role("button", name="Войти").click()
                await page.wait_for_url(s.url + "/miners")
                await page.get_by_role("link", name="Оповещения").click()
                await page.wait_for_url(s.url + "/alerts")
                await expect(page.locator("#no-alerts")).to_contain_text("Всё в порядке")

                # maintenance on one miner: silence it from the page
                form = page.locator("#new-silence")
                await form.get_by_text("Включить тишину", exact=True).first.click()
                await form.get_by_label("MAC-адреса майнеров").fill(silenced.mac.lower())
                await form.get_by_label("На сколько").select_option("4h")
                await form.get_by_label("Комментарий").fill("замена кулеров")
                await form.get_by_role("button", name="Включить тишину").click()
                await expect(page.locator("#al-message")).to_contain_text("Тишина включена")
                await expect(page.locator("#silences-table")).to_contain_text("замена кулеров")

                silenced.steer(heat_c=40)
                loud.steer(heat_c=40)
                await wait_until(lambda: len(engine.alerts("firing")) == 2, 60, "2 firing")
                await wait_until(lambda: len(hook.messages) >= 1, 30, "a message")
                await asyncio.sleep(1.5)
                assert len(hook.messages) == 1, [m.title for m in hook.messages]
                assert loud.ip in hook.messages[0].body
                assert silenced.ip not in hook.messages[0].body

                # both show on the page (live refresh), the silenced one marked
                rows = page.locator("#alerts-table tbody tr")
                await expect(rows).to_have_count(2)
                silenced_row = page.locator(f'tr[data-key="{silenced.mac.lower()}"]')
                await expect(silenced_row).to_contain_text("заглушено до")
                loud_row = page.locator(f'tr[data-key="{loud.mac.lower()}"]')
                await expect(loud_row).not_to_contain_text("заглушено")
                await expect(page.locator("#alerts-badge")).to_have_text("1")
                await shot(page, "01-silenced")

                # the Miners page filters on miners with alerts
                await page.goto(s.url + "/miners?state=alerting")
                await expect(page.locator("#rows tr")).to_have_count(2)
                await page.goto(s.url + "/alerts")

                # end the silence: the held-back message goes out
                await page.locator("#silences-table").get_by_role("button", name="Снять").click()
                await expect(page.locator("#al-message")).to_contain_text("Тишина снята")
                await wait_until(lambda: len(hook.messages) == 2, 30, "the held message")
                assert silenced.ip in hook.messages[1].body
                await expect(page.locator("#alerts-badge")).to_have_text("2")
                await shot(page, "02-unsilenced")
            finally:
                await browser.close()
            assert errors == [], errors
    finally:
        await hook.stop()
