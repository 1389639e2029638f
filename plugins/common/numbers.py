"""Lenient numbers: what miners send as numbers, read without ever raising.

Firmwares send numbers as strings (``"GHS 5s": "140258.58"``), with units glued on
(``"64 C"``), as ``"-"``, ``""`` or ``null``; :func:`as_float` and :func:`as_int` answer the
number or None, never an exception and never a made-up 0. :func:`to_ths` turns a hashrate in
any unit the firmwares use into TH/s.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["as_float", "as_int", "to_ths"]

_LEADING_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?")


_UNIT_TO_THS = {
    "H": 1e-12, "KH": 1e-9, "MH": 1e-6, "GH": 1e-3, "TH": 1.0, "PH": 1e3, "EH": 1e6,
}


def as_float(value: Any) -> float | None:
    """A float from a number or a numeric string; None for anything else (never raises)."""
    kind = type(value)
    if kind is float:  # the common case first: this runs ~50 times per miner per poll
        return value if value - value == 0.0 else None  # NaN and ±inf are not numbers
    if kind is int:
        return float(value)
    if kind is str:
        try:  # float() strips the same whitespace str.strip() does
            number = float(value)
        except ValueError:
            pass
        else:
            return number if number - number == 0.0 else None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip().rstrip("%").strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            match = _LEADING_NUMBER.match(text)
            if not match:
                return None
            number = float(match.group(0))
    else:
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return number


def as_int(value: Any) -> int | None:
    number = as_float(value)
    return None if number is None else int(number)


_FACTORS: dict[str, float | None] = {}


def _factor(unit: str) -> float | None:
    """The TH/s factor of a unit as firmwares spell it (remembered: a handful of spellings)."""
    factor = _FACTORS.get(unit, _FACTORS)
    if factor is _FACTORS:
        key = unit.upper().replace("/S", "").replace("HS", "H").strip() or "GH"
        factor = _UNIT_TO_THS.get(key)
        if len(_FACTORS) < 256:
            _FACTORS[unit] = factor
    return factor  # type: ignore[return-value]


def to_ths(value: Any, unit: str = "GH") -> float | None:
    """A hashrate in ``unit`` ("GH", "MH/s", "TH", "H/s", ...) converted to TH/s."""
    number = as_float(value)
    if number is None:
        return None
    factor = _factor(unit)
    if factor is None:
        return None
    return number * factor
