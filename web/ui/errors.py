"""The agent's error messages in the page's language.

Errors are made in English by the code that finds them (config checks, device drivers, the meter
backend), where a log and the API want one stable wording. A Russian page must not show
"device.address: expected int <= 240", so the wordings an operator meets on the pages are
translated here, phrase by phrase; a message no pattern knows is shown as it is (it stays
readable, and a test lists the common ones).
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["translate_error"]

_TYPES = {"int": "целое число", "float": "число", "str": "строка", "bool": "да/нет",
          "array": "список", "list": "список", "object": "таблица", "table": "таблица",
          "null": "пусто"}


def _kind(name: str) -> str:
    return _TYPES.get(name.strip("`"), name)


Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str]]

_RULES: list[Rule] = [(re.compile(p, re.I), f) for p, f in (
    (r"expected `?(\w+)`? ?<= ?(-?\d+)", lambda m: f"ожидается {_kind(m[1])} не больше {m[2]}"),
    (r"expected `?(\w+)`? ?>= ?(-?\d+)", lambda m: f"ожидается {_kind(m[1])} не меньше {m[2]}"),
    (r"expected `?(\w+)`?, got `?(\w+)`?",
     lambda m: f"ожидается {_kind(m[1])}, а получено: {_kind(m[2])}"),
    (r"expected `?(int|float|str|bool)`?$", lambda m: f"ожидается {_kind(m[1])}"),
    (r"required (?:key|field) is missing", lambda m: "обязательное поле не заполнено"),
    (r"unknown (?:key|field)", lambda m: "неизвестный параметр"),
    (r"must be 1\.\.(\d+) \(or 0\), not (-?\d+)",
     lambda m: f"должен быть от 1 до {m[1]} (или 0), а не {m[2]}"),
    (r"must be at least (\d+)", lambda m: f"должно быть не меньше {m[1]}"),
    (r"not an IPv4 address: (.+)", lambda m: f"не IPv4-адрес: {m[1]}"),
    (r"(\S+) is before first (\S+)", lambda m: f"{m[1]} раньше первого адреса {m[2]}"),
    (r"(\w+): not supported by (.+?)(?: \((.+)\))?$",
     lambda m: f"{m[1]}: не поддерживается на {m[2]}" + (f" ({m[3]})" if m[3] else "")),
    (r"^outcome unknown: ", lambda m: "результат неизвестен (повтор не выполнялся): "),
    (r"no answer on ports ([\d, ]+)", lambda m: f"нет ответа на портах {m[1]}"),
    (r"accepts connections but does not answer in time",
     lambda m: "принимает соединение, но не отвечает вовремя"),
    (r"answers, but no driver recognises it", lambda m: "отвечает, но ни один драйвер его "
                                                        "не распознал"),
    (r"does not answer on (\S+) at its factory address \(([\d, ]+)\)",
     lambda m: f"не отвечает на {m[1]} по заводскому адресу ({m[2]})"),
    (r"give its address if it was changed", lambda m: "укажите адрес, если его меняли"),
    (r"meter (\S+) is already added", lambda m: f"счетчик {m[1]} уже добавлен"),
    (r"address (\d+) on (\S+) is already used by meter (\S+)",
     lambda m: f"адрес {m[1]} на {m[2]} уже занят счетчиком {m[3]}"),
    (r"refused the level (\d) password", lambda m: f"отклонил пароль уровня {m[1]}"),
    (r"has serial number (\d+), not (\d+)",
     lambda m: f"имеет серийный номер {m[1]}, а не {m[2]}"),
    (r"no answer", lambda m: "нет ответа"),
    (r"timed out", lambda m: "истекло время ожидания"),
    (r"is busy|port busy", lambda m: "порт занят"),
    (r"not present", lambda m: "не найден"),
    (r"unsupported model (\S+)", lambda m: f"неподдерживаемая модель {m[1]}"),
    (r"no such device", lambda m: "нет такого устройства"),
)]


def translate_error(message: str, lang: str) -> str:
    """``message`` in ``lang`` (English messages pass through unchanged)."""
    if lang != "ru" or not message:
        return message
    text = message
    for pattern, replace in _RULES:
        text = pattern.sub(replace, text)
    return text
