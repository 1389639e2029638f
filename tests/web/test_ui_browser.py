"""The web UI in a real browser: Debian's Chromium driven by Playwright against the real app on a
free loopback port, with simulated Antminers on 127.55.0.x and a simulated Mercury 230 on a
pseudo-terminal. This is the operator's walk through the manual (§2, §3.1):

log in → the Miners table is empty → Settings ▸ Miner settings: add a group and a range that
covers part of the farm (a typo first: the error shows next to the field) → Save → the miners of
that range appear → blink one and see its LED state change in the table → its page (boards,
pools, chart) → the rack map → Settings ▸ Meter settings: add the meter (a wrong address first:
the live test says why) → Meters shows its readings → Security: create an API key, copy it, use
it against the API, revoke it and see the API refuse it → English → log out.

Every page is saved as a screenshot under test-artifacts/screenshots/. Never downloads a browser:
it uses /usr/bin/chromium (contrib/dev/test.sh installs Debian's package).
"""

from __future__ import annotations

import asyncio
import os
import re
import time

import pytest
from api_helpers import config_text, stack, start_sims
from playwright import async_api as playwright_api
from ui_helpers import CHROMIUM, CHROMIUM_ARGS, PASSWORD, SCREENSHOTS

from webbo.agent.core.contract import SimOptions
from webbo.agent.core.plugins import default_registry

pytestmark = pytest.mark.slow
HAVE_CHROMIUM = os.path.exists(CHROMIUM)

FARM = [f"127.55.0.{i}" for i in range(1, 9)]
COVERED = FARM[:5]  # the range the operator adds covers part of the farm
HTTP_PORT = 18083
METER = {"serial_number": "43099131-20", "device_model": "230", "address": 42}
INPUTS = f"""[[inputs.bitmain_http]]
  web_port = {HTTP_PORT}
  settings_every = 1
"""
TIMEOUT = 90_000  # ms: a loaded 2-core machine


async def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def wait_until(predicate, timeout: float = 90.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_the_operator_walks_through_the_manual(tmp_path):
    assert HAVE_CHROMIUM, ("Debian's chromium is missing: contrib/dev/test.sh installs it "
                           "(apt-get install chromium); a browser is never downloaded")
    registry = default_registry()
    miners = await start_sims(registry, "antminer", FARM, http_port=HTTP_PORT,
                              models=["Antminer S19", "Antminer S21"], conf_delay=0.1,
                              reboot_seconds=1.0)
    meters = await registry.simulators["mercury"].start(0, SimOptions(extra={"meters": [METER]}))
    port = meters.devices[0]["port"]
    text = config_text(tmp_path / "state", [], inputs=INPUTS)
    try:
        async with stack(tmp_path, registry, text) as s, \
                playwright_api.async_playwright() as pw:
            s.web.store.set_password("miner", PASSWORD)
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                               args=CHROMIUM_ARGS)
            context = await browser.new_context(viewport={"width": 1366, "height": 768},
                                                locale="ru-RU")
            page = await context.new_page()
            page.set_default_timeout(TIMEOUT)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            # script errors only: "Failed to load resource" is the browser noting a page's own
            # 401/422 status (a wrong password, an invalid form), which the walk expects
            page.on("console", lambda m: errors.append(m.text) if m.type == "error"
                    and not m.text.startswith("Failed to load resource") else None)
            try:
                await walk(page, s, port)
            finally:
                await shot(page, "99-last-state")
                await browser.close()
            assert errors == [], errors
    finally:
        await miners.close()
        await meters.close()


async def walk(page, s, port: str) -> None:
    url = s.url
    expect = playwright_api.expect
    expect.set_options(timeout=TIMEOUT)

    # -- log in: any page sends to the login page first
    await page.goto(url + "/miners")
    assert "/login" in page.url
    await expect(page.get_by_role("heading", name="Вход")).to_be_visible()
    await shot(page, "01-login")
    await page.get_by_label("Пароль").fill("not the password")
    await page.get_by_role("button", name="Войти").click()
    await expect(page.get_by_role("alert")).to_contain_text("Неверное имя пользователя")
    await page.get_by_label("Пароль").fill(PASSWORD)
    await page.get_by_role("button", name="Войти").click()
    await page.wait_for_url(url + "/miners")

    # -- the Miners table is empty: no ranges yet
    await expect(page.locator("#rows")).to_contain_text("Диапазоны IP-адресов ещё не заданы")
    await shot(page, "02-miners-empty")

    # -- Settings ▸ Miner settings, with the keyboard-usable menu
    await page.get_by_text("Настройки", exact=True).click()
    await page.get_by_role("link", name="Настройки майнеров").click()
    await page.wait_for_url(url + "/settings/miners")
    await page.get_by_role("button", name="Добавить группу").click()
    await page.get_by_label("Название группы").fill("Зал 1")
    await page.get_by_label("Название диапазона 1").fill("Стойка 1")
    await page.get_by_label("Первый адрес 1").fill(COVERED[0])
    await page.get_by_label("Последний адрес 1").fill("127.55.0.500")
    await page.get_by_role("button", name="Сохранить", exact=True).click()
    last = page.get_by_label("Последний адрес 1")
    await expect(last).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#err-g0\\.r0\\.last")).to_contain_text("не IPv4-адрес")
    await shot(page, "03-settings-miners-error")
    await last.fill(COVERED[-1])
    await page.get_by_role("button", name="Сохранить", exact=True).click()
    await expect(page.locator("p.alert.ok")).to_contain_text("Сохранено: 1 группа, 1 диапазон")
    await shot(page, "04-settings-miners-saved")

    # -- the sweep starts: the Miners page fills (only the covered part of the farm)
    await page.get_by_role("link", name="Майнеры", exact=True).first.click()
    await page.wait_for_url(url + "/miners")
    rows = page.locator("#rows tr[data-mac]")
    await expect(rows).to_have_count(len(COVERED), timeout=TIMEOUT)
    await expect(page.locator("#rows .badge.s-ok")).to_have_count(len(COVERED), timeout=TIMEOUT)
    shown = await page.locator("#rows td.ip a").all_inner_texts()
    assert sorted(shown) == sorted(COVERED)
    await shot(page, "05-miners")

    # -- search narrows the table without a reload
    await page.get_by_role("searchbox", name="Поиск").fill(COVERED[1])
    await expect(rows).to_have_count(1)
    await page.get_by_role("searchbox", name="Поиск").fill("")
    await expect(rows).to_have_count(len(COVERED))

    # -- blink one and see its LED state change in the table
    target = COVERED[1]
    mac = s.fleet.inventory.at(target).mac
    row = page.locator(f'#rows tr[data-mac="{mac}"]')
    await expect(row.locator(".led.off")).to_be_visible()
    await row.get_by_role("checkbox").check()
    await expect(page.locator("#selcount")).to_have_text("Выбрано: 1")
    await page.locator("#actionbar").get_by_role("button", name="Включить мигание").click()
    dialog = page.locator("dialog#confirm")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("Включить мигание светодиодов на 1 майнере?")
    await shot(page, "06-miners-confirm")
    await dialog.get_by_role("button", name="Включить мигание").click()
    results = page.locator("#results")
    await expect(results).to_have_attribute("data-status", "success")
    await expect(results).to_contain_text("успешно 1, с ошибкой 0")
    await expect(results.locator("tbody tr")).to_contain_text(mac)
    await expect(row.locator(".led.on")).to_be_visible(timeout=TIMEOUT)
    await shot(page, "07-miners-led-blinking")

    # -- the miner's page: boards, pools, chart of the recent past
    await row.get_by_role("link", name=target).click()
    await page.wait_for_url(url + f"/miners/{mac}")
    await expect(page.get_by_role("heading", name="Платы")).to_be_visible()
    await expect(page.locator("section[aria-labelledby=pools-title] tbody tr")).not_to_have_count(0)
    await expect(page.locator("svg.chart path.line.hash")).to_have_count(1, timeout=TIMEOUT)
    await expect(page.locator("#live")).to_contain_text("мигает")
    await page.get_by_role("button", name="Выключить мигание").click()
    await page.locator("dialog#confirm").get_by_role("button", name="Выключить мигание").click()
    await expect(page.locator("#results")).to_have_attribute("data-status", "success")
    await expect(page.locator("#live .led.off")).to_be_visible(timeout=TIMEOUT)
    await shot(page, "08-miner")

    # -- the rack map: one tile per miner, grouped room → rack, click → the miner
    await page.get_by_role("link", name="Карта стоек").click()
    await page.wait_for_url(url + "/map")
    tiles = page.locator("#map a.tile")
    await expect(tiles).to_have_count(len(COVERED))
    await expect(page.locator("#map")).to_contain_text("Стойка 1")
    await shot(page, "09-map-temperature")
    await page.get_by_label("хешрейту от ожидаемого").check()
    await expect(page).to_have_url(url + "/map?color=hash")
    await expect(page.locator("#map .legend")).to_contain_text("≥ 95%")
    await shot(page, "10-map-hashrate")
    await tiles.first.click()
    await page.wait_for_url(url + "/miners/*")

    # -- Settings ▸ Meter settings: the live test decides
    await page.get_by_text("Настройки", exact=True).click()
    await page.get_by_role("link", name="Настройки счетчиков").click()
    await page.wait_for_url(url + "/settings/meters")
    await page.get_by_role("button", name="Обновить порты").click()
    await expect(page.locator("#port-hint")).to_contain_text(
        re.compile("Найдено портов:|Порты не найдены"))
    await page.get_by_label("Порт", exact=True).fill(port)
    await page.get_by_label("Модель").select_option("230")
    await page.get_by_label("Серийный номер").fill(METER["serial_number"])
    await page.get_by_role("button", name="Добавить устройство").click()
    await expect(page.locator("p.alert.error")).to_contain_text("Счетчик не добавлен")
    await expect(page.locator("p.alert.error")).to_contain_text("по заводскому адресу")
    await shot(page, "11-settings-meters-not-answering")
    await page.get_by_label("Адрес", exact=True).fill(str(METER["address"]))
    await page.get_by_text("Настройки порта").click()
    await expect(page.get_by_label("Скорость, бод")).to_have_value("9600")
    await page.get_by_role("button", name="Добавить устройство").click()
    await expect(page.locator("p.alert.ok")).to_contain_text(
        "Счетчик 43099131-20 отвечает и добавлен")
    table = page.locator("section[aria-labelledby=list-title] tbody tr")
    await expect(table).to_have_count(1)
    await expect(table).to_contain_text("43099131-20")
    await shot(page, "12-settings-meters")

    # -- Meters: the readings arrive
    await page.get_by_role("link", name="Счетчики", exact=True).click()
    await page.wait_for_url(url + "/meters")
    meter_row = page.locator('tr[data-serial="43099131-20"]')
    await expect(meter_row.locator(".badge.m-ok")).to_be_visible(timeout=TIMEOUT)
    cells = await meter_row.locator("td.num").all_inner_texts()
    assert cells[0] != "—" and float(cells[0].replace(",", ".").replace("\u202f", "")) > 100
    await shot(page, "13-meters")

    # -- Security: create a key, copy it, use it, revoke it
    await page.locator("details.usermenu > summary").click()
    await page.get_by_role("link", name="Безопасность").click()
    await page.wait_for_url(url + "/security")
    await page.get_by_label("Назначение ключа").fill("playwright")
    await page.get_by_role("button", name="Создать ключ доступа").click()
    key = await page.locator("#new-key").input_value()
    assert key.startswith("wbk.")
    await page.get_by_role("button", name="Копировать").click()
    await expect(page.locator("#toast")).to_have_text("Скопировано")
    await shot(page, "14-security-new-key")
    headers = {"X-Api-Key": key, "Content-Type": "application/json"}
    status, answer = await s.raw("/api/mining/get-network", "{}", headers)
    assert status == 200 and answer["payload"]["ip_range_groups"][0]["name"] == "Зал 1"
    await page.goto(url + "/security")  # shown once: gone when the page is opened again
    assert await page.locator("#new-key").count() == 0
    key_row = page.locator("table.keys tbody tr", has_text="playwright")
    await expect(key_row).to_contain_text("назад")  # last used: just now
    page.once("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await key_row.get_by_role("button", name="Отозвать playwright").click()
    await expect(page.locator("p.alert.ok")).to_contain_text("отозван")
    await expect(page.locator("table.keys tbody tr", has_text="playwright")).to_have_count(0)
    status, answer = await s.raw("/api/mining/get-network", "{}", headers)
    assert (status, answer) == (401, {"success": False, "payload": "invalid API key"})
    await shot(page, "15-security")

    # -- English, then log out
    await page.get_by_role("link", name="EN", exact=True).click()
    await expect(page.get_by_role("heading", name="Security", exact=True)).to_be_visible()
    await page.goto(url + "/miners")
    await expect(page.get_by_role("heading", name="Miners")).to_be_visible()
    await shot(page, "16-miners-english")
    await page.locator("details.usermenu > summary").click()
    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url(url + "/login")
    await page.goto(url + "/meters")
    assert "/login" in page.url


# -- every address of the ranges has a visible state ------------------------------------------

STATES_FARM = [f"127.57.0.{i}" for i in (1, 2, 3, 4, 5, 7)]  # .6 and .8-.10: nothing there


async def test_every_address_shows_its_state_in_the_api_and_the_page(tmp_path):
    """A farm with every fault kind: each address of the range has its right state in
    /api/mining/miners/get and on the Miners page and the rack map, and the header counts add
    up to the range size (an operator must not take a sick farm for a healthy one)."""
    assert HAVE_CHROMIUM, "Debian's chromium is missing: contrib/dev/test.sh installs it"
    registry = default_registry()
    miners = await start_sims(registry, "antminer", STATES_FARM, http_port=HTTP_PORT,
                              slow_delay=3.0)
    sims = {d.ip: d for d in miners.sims}
    sims["127.57.0.4"].fault = "silent"   # accepts, then says nothing: timeout
    sims["127.57.0.5"].fault = "garbage"  # answers what no driver knows: unrecognised
    sims["127.57.0.7"].fault = "slow"     # answers after 3 s, past the 1 s limit: timeout
    text = config_text(tmp_path / "state", [("зал", "стойка", "127.57.0.1", "127.57.0.10")],
                       inputs=INPUTS, agent='timeout = "1s"')
    want = {"ok": 2, "error": 1, "timeout": 2, "unrecognised": 1, "silent": 4}
    try:
        async with stack(tmp_path, registry, text) as s, \
                playwright_api.async_playwright() as pw:
            await s.wait_inventory(3)
            sims["127.57.0.2"].fault = "garbage"  # a known miner starts answering garbage

            async def settled() -> bool:
                got = await s.ok("/api/mining/miners/get", {})
                counts = {k: v for k, v in got["counts"].items() if v}
                return counts == want

            await wait_until(settled, what=f"counts {want}")
            answer = await s.ok("/api/mining/miners/get", {})
            assert sum(answer["counts"].values()) == 10
            failing = [m for m in answer["miners"] if m["state"] == "error"]
            assert [m["ip"] for m in failing] == ["127.57.0.2"] and failing[0]["failing_since"]
            assert {(a["ip"], a["state"]) for a in answer["addresses"]} == {
                ("127.57.0.4", "timeout"), ("127.57.0.5", "unrecognised"),
                ("127.57.0.7", "timeout")}
            silent = await s.ok("/api/mining/miners/get", {"state": "silent"})
            assert [a["ip"] for a in silent["addresses"]] == [
                "127.57.0.6", "127.57.0.8", "127.57.0.9", "127.57.0.10"]
            assert all(a["until"] for a in silent["addresses"])

            s.web.store.set_password("miner", PASSWORD)
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                               args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(locale="ru-RU")
                page.set_default_timeout(TIMEOUT)
                expect = playwright_api.expect
                await page.goto(s.url + "/miners")
                await page.get_by_label("Пароль").fill(PASSWORD)
                await page.get_by_role("button", name="Войти").click()
                await page.wait_for_url(s.url + "/miners")
                summary = page.locator("#summary")
                await expect(summary).to_contain_text("10 адресов")
                for label, count in (("в работе", 2), ("ошибка", 1), ("таймаут", 2),
                                     ("не распознан", 1), ("молчит", 4)):
                    await expect(summary.locator("a.chip", has_text=label)).to_contain_text(
                        str(count))
                rows = page.locator("#rows tr")
                await expect(rows.filter(has_text="127.57.0.5")).to_contain_text("не распознан")
                await expect(rows.filter(has_text="127.57.0.7")).to_contain_text("таймаут")
                await shot(page, "20-miners-every-state")
                await summary.locator("a.chip", has_text="молчит").click()
                await expect(page.locator("#rows tr.addr")).to_have_count(4)
                await expect(page.locator("#rows")).to_contain_text("повтор в")
                await shot(page, "21-miners-silent")
                await page.goto(s.url + "/map")
                await expect(page.locator("ul.tiles .tile.l-addr")).to_have_count(3)
                await expect(page.locator(".rack")).to_contain_text("ещё 4")
                await shot(page, "22-map-every-state")
            finally:
                await browser.close()
    finally:
        await miners.close()
