"""Notification texts: Russian plural forms, English, the place, the links, the cut list."""

from __future__ import annotations

import pytest

from webbo.agent.alerts.conditions import CONDITIONS
from webbo.agent.alerts.config import RuleConfig
from webbo.agent.alerts.messages import headline, plural_ru, render
from webbo.agent.alerts.state import Alert


@pytest.mark.parametrize(("n", "form"), [(1, 0), (2, 1), (4, 1), (5, 2), (11, 2), (12, 2),
                                         (14, 2), (21, 0), (22, 1), (48, 2), (101, 0),
                                         (111, 2), (0, 2)])
def test_russian_plural_forms(n, form):
    assert plural_ru(n) == form


def test_headlines_agree_with_the_count():
    assert headline("miner_offline", "miner", 1, "ru", 60) == "1 майнер не отвечает"
    assert headline("miner_offline", "miner", 3, "ru", 60) == "3 майнера не отвечают"
    assert headline("miner_offline", "miner", 48, "ru", 60) == "48 майнеров не отвечают"
    assert headline("miner_offline", "miner", 21, "ru", 60) == "21 майнер не отвечает"
    assert headline("temp_chip_high", "miner", 2, "ru", 90) == (
        "2 майнера перегреты: чипы выше 90 °C")
    assert headline("meter_offline", "meter", 5, "ru", 60) == "5 счетчиков не отвечают"
    assert headline("miner_offline", "miner", 1, "en", 60) == "1 miner is not answering"
    assert headline("miner_offline", "miner", 48, "en", 60) == "48 miners are not answering"


def alerts(count: int) -> list[Alert]:
    return [Alert("offline", f"02:00:00:00:00:{i:02x}", "miner", "critical", 0.0, value=300.0,
                  labels={"ip": f"10.31.5.{i}", "model": "Antminer S19", "group": "Зал 1",
                          "range": "Стойка 5", "group_id": "g1", "range_id": "r5"})
            for i in range(1, count + 1)]


def test_one_message_for_a_rack_with_links_and_the_list_cut():
    rule = RuleConfig(name="offline", condition="miner_offline", severity="critical")
    message = render("firing", alerts(48), rule, CONDITIONS["miner_offline"], "ru",
                     ["rule", "range"], "http://10.31.0.2", 1.0)
    assert message.title == "[КРИТИЧНО] Зал 1 / Стойка 5: 48 майнеров не отвечают"
    assert message.notify_type == "failure"
    lines = message.body.splitlines()
    assert lines[0] == "10.31.5.1 02:00:00:00:00:01 Antminer S19 — 300 s"
    assert lines[1] == "  http://10.31.0.2/miners/02%3A00%3A00%3A00%3A00%3A01"
    assert "…и ещё 28" in message.body
    assert "Стойка в интерфейсе: http://10.31.0.2/miners?range=r5" in message.body
    assert lines[-1] == "Все оповещения: http://10.31.0.2/alerts"
    resolved = render("resolved", alerts(2), rule, CONDITIONS["miner_offline"], "en",
                      ["rule", "range"], "", 1.0)
    assert resolved.title == "Resolved: Зал 1 / Стойка 5: 2 miners are not answering"
    assert resolved.notify_type == "success" and "http" not in resolved.body


def test_a_rule_template_makes_the_device_line():
    rule = RuleConfig(name="hot", condition="temp_chip_high", message="{ip}: {value:.0f} °C")
    [alert] = alerts(1)
    message = render("repeat", [alert], rule, CONDITIONS["temp_chip_high"], "ru", ["rule"],
                     "", 1.0)
    assert message.title == (
        "[ВНИМАНИЕ] Всё ещё: Зал 1 / Стойка 5: 1 майнер перегрет: чипы выше 90 °C")
    assert message.body == "10.31.5.1: 300 °C"
