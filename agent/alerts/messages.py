"""The words of notifications, in Russian (the default) and English, with plural forms right.

A group of alerts becomes one message: the title says where and how many ("Зал 1 / Стойка 5:
48 майнеров не отвечают"), the body lists the devices (the first :data:`MAX_LINES`, then how
many more) with a link to each in the UI, and a link to the rack and to the alerts page.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

__all__ = ["MAX_LINES", "Message", "device_line", "plural_ru", "render"]

MAX_LINES = 20

NOUNS = {
    "miner": (("майнер", "майнера", "майнеров"), ("miner", "miners")),
    "meter": (("счетчик", "счетчика", "счетчиков"), ("meter", "meters")),
    "reported": (("объект", "объекта", "объектов"), ("item", "items")),
}

# condition → ((ru for one, ru for many), (en for one, en for many)); {th} is the threshold.
PREDICATES: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "miner_offline": (("не отвечает", "не отвечают"),
                      ("is not answering", "are not answering")),
    "miner_failing": (("отвечает с ошибками", "отвечают с ошибками"),
                      ("answers with errors", "answer with errors")),
    "temp_chip_high": (("перегрет: чипы выше {th} °C", "перегреты: чипы выше {th} °C"),
                       ("overheats: chips above {th} °C", "overheat: chips above {th} °C")),
    "temp_board_high": (("перегрет: платы выше {th} °C", "перегреты: платы выше {th} °C"),
                        ("overheats: boards above {th} °C", "overheat: boards above {th} °C")),
    "hashrate_low": (("хэширует не больше {th} % от нормы",
                      "хэшируют не больше {th} % от нормы"),
                     ("hashes at {th} % of expected or less",
                      "hash at {th} % of expected or less")),
    "fan_low": (("с остановленным или медленным вентилятором",
                 "с остановленным или медленным вентилятором"),
                ("has a stopped or slow fan", "have a stopped or slow fan")),
    "board_dead": (("с отказавшей хэш-платой", "с отказавшей хэш-платой"),
                   ("has a dead hash board", "have a dead hash board")),
    "pool_none": (("без активного пула", "без активного пула"),
                  ("has no active pool", "have no active pool")),
    "rejected_high": (("с долей отклонённых шар выше {th} %",
                       "с долей отклонённых шар выше {th} %"),
                      ("has over {th} % rejected shares", "have over {th} % rejected shares")),
    "miner_rebooted": (("перезагрузился", "перезагрузились"), ("rebooted", "rebooted")),
    "work_mode_mismatch": (("не в заданном режиме работы", "не в заданном режиме работы"),
                           ("is not in the work mode set", "are not in the work mode set")),
    "meter_offline": (("не отвечает", "не отвечают"),
                      ("is not answering", "are not answering")),
    "voltage_out_of_band": (("— напряжение фазы вне {band} В", "— напряжение фазы вне {band} В"),
                            ("— a phase voltage outside {band} V",
                             "— a phase voltage outside {band} V")),
    "phase_lost": (("— пропала фаза", "— пропала фаза"), ("— a phase is lost",
                                                         "— a phase is lost")),
    "feed_over_budget": (("— мощность выше лимита", "— мощность выше лимита"),
                         ("— power over the budget", "— power over the budget")),
    "meter_stale": (("— нет свежих показаний счетчика", "— нет свежих показаний счетчика"),
                    ("— no fresh meter reading", "— no fresh meter reading")),
}

WORDS = {
    "ru": {"firing": "", "repeat": "Всё ещё: ", "resolved": "Восстановлено: ",
           "more": "…и ещё {n}", "open": "Открыть", "alerts": "Все оповещения",
           "rack": "Стойка в интерфейсе", "severity": {"info": "ИНФО", "warning": "ВНИМАНИЕ",
                                                      "critical": "КРИТИЧНО"},
           "farm": "Ферма", "test_title": "Проверка канала оповещений",
           "test_body": "Это проверочное сообщение WebboMonitor: канал «{name}» работает."},
    "en": {"firing": "", "repeat": "Still: ", "resolved": "Resolved: ",
           "more": "…and {n} more", "open": "Open", "alerts": "All alerts",
           "rack": "The rack in the UI", "severity": {"info": "INFO", "warning": "WARNING",
                                                     "critical": "CRITICAL"},
           "farm": "Farm", "test_title": "Alert channel test",
           "test_body": "This is a WebboMonitor test message: channel \"{name}\" works."},
}


def plural_ru(n: int) -> int:
    """Index of the Russian plural form: 0 (1, 21, 101), 1 (2-4, 22-24), 2 (0, 5-20, 25-30)."""
    if n % 10 == 1 and n % 100 != 11:
        return 0
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return 1
    return 2


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f}" if abs(value - round(value)) < 0.05 or abs(value) >= 100 else (
        f"{value:.1f}")


def headline(condition: str, kind: str, count: int, lang: str, th: float | None,
             band: str = "") -> str:
    """"48 майнеров не отвечают" / "1 miner is not answering"."""
    nouns_ru, nouns_en = NOUNS.get(kind, NOUNS["reported"])
    preds = PREDICATES.get(condition, (("— оповещение", "— оповещение"),
                                       ("— alert", "— alert")))
    if lang == "ru":
        form = plural_ru(count)
        noun, pred = nouns_ru[form], preds[0][0 if form == 0 else 1]
    else:
        noun = nouns_en[0 if count == 1 else 1]
        pred = preds[1][0 if count == 1 else 1]
    return f"{count} {noun} {pred.format(th=_num(th), band=band)}"


def device_line(alert: Any, rule: Any, lang: str, unit: str, ui_url: str) -> str:
    """One device of a message: the rule's template, else ``ip mac model — value unit``."""
    labels = alert.labels
    values = {"rule": alert.rule, "key": alert.key, "summary": alert.summary,
              "value": alert.value if alert.value is not None else float("nan"),
              "threshold": getattr(rule, "threshold", None) or 0.0, "ip": "", "mac": "",
              "model": "", "group": "", "range": "", "serial": ""}
    values.update({k: v for k, v in labels.items() if k in values})
    template = getattr(rule, "message", "")
    if template:
        try:
            text = string.Formatter().vformat(template, (), values)
        except (KeyError, ValueError, IndexError, AttributeError, TypeError):
            text = template
    elif alert.kind == "miner":
        parts = [labels.get("ip") or "", alert.key, labels.get("model") or ""]
        text = " ".join(p for p in parts if p)
        if alert.value is not None and unit:
            text += f" — {_num(alert.value)} {unit}"
    elif alert.summary:
        text = f"{alert.key}: {alert.summary}"
    else:
        text = alert.key
        if alert.value is not None and unit:
            text += f" — {_num(alert.value)} {unit}"
    if ui_url and alert.kind == "miner":
        text += f"\n  {ui_url}/miners/{quote(alert.key)}"
    return text


class Message:
    """A rendered notification: title, body and apprise's notify type."""

    __slots__ = ("body", "created", "group", "kind", "notify_type", "rule", "severity", "title")

    def __init__(self, title: str, body: str, notify_type: str, severity: str, rule: str,
                 group: str, kind: str, created: float) -> None:
        self.title = title
        self.body = body
        self.notify_type = notify_type
        self.severity = severity
        self.rule = rule
        self.group = group
        self.kind = kind
        self.created = created


def place_of(alerts: Sequence[Any], group_by: Sequence[str], lang: str) -> str:
    """"Зал 1 / Стойка 5" when every alert of the group shares it, else the farm."""
    first = alerts[0].labels
    parts = []
    if "device" in group_by and len(alerts) == 1 and alerts[0].kind != "miner":
        return alerts[0].key
    for key in ("group", "range"):
        value = first.get(key, "")
        if value and all(a.labels.get(key, "") == value for a in alerts):
            parts.append(value)
    if not parts and len(alerts) == 1 and alerts[0].kind == "miner":
        ip = first.get("ip") or alerts[0].key
        return ip
    return " / ".join(parts) if parts else WORDS[lang]["farm"]


def render(kind: str, alerts: Sequence[Any], rule: Any, condition: Any, lang: str,
           group_by: Sequence[str], ui_url: str, created: float) -> Message:
    """The message for ``alerts`` (one rule, one group) turning ``kind``: firing, repeat or
    resolved."""
    words = WORDS.get(lang, WORDS["ru"])
    place = place_of(alerts, group_by, lang)
    th = getattr(rule, "threshold", None)
    th = condition.threshold if th is None else th
    low = condition.low if getattr(rule, "low", None) is None else rule.low
    high = condition.high if getattr(rule, "high", None) is None else rule.high
    band = f"{_num(low)}–{_num(high)}"
    if condition.kind == "reported" and len(alerts) == 1 and alerts[0].summary:
        head = alerts[0].summary
        place = alerts[0].labels.get("name") or alerts[0].key
    else:
        head = headline(condition.name, condition.kind, len(alerts), lang, th, band)
    severity = words["severity"].get(rule.severity, rule.severity.upper())
    title = f"{words[kind]}{place}: {head}"
    if kind != "resolved":
        title = f"[{severity}] {title}"
    lines = [device_line(a, rule, lang, condition.unit, ui_url) for a in alerts[:MAX_LINES]]
    if len(alerts) > MAX_LINES:
        lines.append(words["more"].format(n=len(alerts) - MAX_LINES))
    if ui_url:
        range_id = alerts[0].labels.get("range_id", "")
        if range_id and all(a.labels.get("range_id") == range_id for a in alerts):
            lines.append(f"{words['rack']}: {ui_url}/miners?range={quote(range_id)}")
        lines.append(f"{words['alerts']}: {ui_url}/alerts")
    notify_type = ("success" if kind == "resolved" else
                   "failure" if rule.severity == "critical" else
                   "warning" if rule.severity == "warning" else "info")
    return Message(title, "\n".join(lines), notify_type, rule.severity, rule.name, place, kind,
                   created)


def test_message(name: str, lang: str, created: float) -> Message:
    words = WORDS.get(lang, WORDS["ru"])
    return Message(words["test_title"], words["test_body"].format(name=name), "info", "info",
                   "", "", "test", created)
