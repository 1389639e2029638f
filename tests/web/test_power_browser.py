"""Энергия in a real browser (Debian's Chromium, Playwright) against the real app and a small
simulated farm whose meter measures its miners: the feeds page refreshes itself, a budget set
in the form makes the controller shed (the page shows the budget's source and the miners
going to sleep or reduced), the feed's page draws its chart and lists its miners, going back to
the schedule restores. No script or CSP error on the way. Screenshots under
test-artifacts/screenshots/power-*.png."""

from __future__ import annotations

import os

import pytest
from playwright import async_api as playwright_api
from powerfarm import power_farm, settled
from ui_helpers import CHROMIUM, CHROMIUM_ARGS, PASSWORD, SCREENSHOTS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]
TIMEOUT = 90_000
HAVE_CHROMIUM = os.path.exists(CHROMIUM)


async def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"power-{name}.png"), full_page=True)


async def test_the_operator_lowers_a_feeds_budget_in_the_browser(tmp_path, registry):
    assert HAVE_CHROMIUM, "Debian's chromium is missing (contrib/dev/test.sh installs it)"
    async with power_farm(tmp_path, registry, miners=16, feeds=2, speed=6.0,
                          families=["antminer", "whatsminer", "mercury"]) as pf, \
            playwright_api.async_playwright() as pw:
        await settled(pf, 16)
        pf.stack.web.store.set_password("miner", PASSWORD)
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=CHROMIUM_ARGS)
        page = await (await browser.new_context(viewport={"width": 1366, "height": 900},
                                                locale="ru-RU")).new_page()
        page.set_default_timeout(TIMEOUT)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error"
                and not m.text.startswith("Failed to load resource") else None)
        expect = playwright_api.expect
        expect.set_options(timeout=TIMEOUT)
        url = pf.stack.url
        try:
            await page.goto(url + "/login")
            await page.get_by_label("Пароль").fill(PASSWORD)
            await page.get_by_role("button", name="Войти").click()
            await page.wait_for_url(url + "/miners")
            await page.get_by_role("link", name="Энергия").click()
            await page.wait_for_url(url + "/power")
            await expect(page.get_by_role("heading", name="Энергия")).to_be_visible()
            row = page.locator('tr[data-feed="Ввод 1"]')
            await expect(row).to_contain_text("конфигурация")
            await shot(page, "01-feeds")

            measured = (await pf.status("Ввод 1"))["measured_kw"]
            budget = f"{measured * 0.6:.1f}".replace(".", ",")
            form = page.locator("form.budgetform").first
            await form.get_by_label("Бюджет, кВт").fill(budget)
            await form.get_by_role("button", name="Установить").click()
            await expect(page.locator("p.alert")).to_contain_text("Бюджет ввода Ввод 1")
            # the live table follows: the API's budget, then miners leave full power
            await expect(row).to_contain_text("вручную / API")
            await expect(row.locator("td").nth(7)).not_to_have_text("0")
            await shot(page, "02-shedding")

            await row.get_by_role("link", name="Ввод 1").click()
            await expect(page.locator("svg.chart.power")).to_be_visible()
            await expect(page.get_by_role("heading", name="Источники бюджета")).to_be_visible()
            await expect(page.get_by_role("heading", name="Майнеры ввода")).to_be_visible()
            await expect(page.locator("#feedlive")).to_contain_text("снижен контроллером")
            await shot(page, "03-feed")
            await page.get_by_role("button", name="Вернуться к расписанию").click()
            await expect(page.locator("p.alert")).to_contain_text("по расписанию")
            await expect(page.locator("#feedlive")).to_contain_text("конфигурация")
            await shot(page, "04-back-to-schedule")

            await page.goto(url + "/settings/power")
            await expect(page.get_by_role("heading", name="Настройки энергии")).to_be_visible()
            await shot(page, "05-settings")
        finally:
            await browser.close()
        assert errors == [], errors
