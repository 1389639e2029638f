"""The model table: what a miner draws in each mode when it does not say so itself.

Stock Antminer firmware reports no power, so a feed's estimate needs the model's nominal draw
at normal, low power and sleep. The table below holds the makers' figures for common models;
``[[power.models]]`` adds to or overrides it. The controller refines each model's figures from
the meter's response when such miners change state (:class:`Refinements`), and every value
that comes from here is shown as an estimate.

A model missing from the table is estimated from its hashrate at :data:`DEFAULT_JTH` (a
typical efficiency of the S19 generation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from webbo.agent.power.config import ModelWatts

__all__ = ["BUILT_IN", "DEFAULT_JTH", "ModelTable", "Refinements", "Watts", "model_key"]

DEFAULT_JTH = 30.0
"""J/TH assumed for a model nobody listed (a draw from its hashrate)."""
LOW_SHARE = 0.72
"""Low-power mode's share of the normal draw, where a model's own figure is not known."""


@dataclass(frozen=True)
class Watts:
    normal: float
    low_power: float | None
    sleep: float


def _w(normal: float, low: bool = True, sleep: float = 30.0) -> Watts:
    return Watts(normal, round(normal * LOW_SHARE) if low else None, sleep)


BUILT_IN: dict[str, Watts] = {
    # Bitmain (stock firmware reports no power). S19 (95 TH) has no low-power mode.
    "antminer s19": _w(3250, low=False),
    "antminer s19 pro": _w(3250, low=False),
    "antminer s19j pro": _w(3068),
    "antminer s19k pro": _w(2760),
    "antminer s19 xp": _w(3010),
    "antminer s21": _w(3500),
    "antminer s21 pro": _w(3510),
    "antminer t21": _w(3610),
    # MicroBT (they report power; these are for a miner whose reading is missing)
    "m30s": _w(3344, sleep=15), "m30s++": _w(3472, sleep=15), "m50": _w(3304, sleep=15),
    "m50s": _w(3276, sleep=15), "m56s": _w(5550, sleep=15), "m60": _w(3422, sleep=15),
    "m60s": _w(3344, sleep=15), "m63": _w(7200, sleep=15),
    # Canaan
    "avalonminer 1246": _w(3420, low=False, sleep=20),
    "avalonminer 1366": _w(3400, low=False, sleep=20),
}

_SEPARATORS = re.compile(r"[\s_]+")
_MICROBT = re.compile(r"^(m\d+[a-z]*\+*)(?:v[a-z]\d+)?$")


def model_key(model: str) -> str:
    """A table key: lower case, single spaces; MicroBT variants (``M30S_VE10``) by their
    family (``m30s``)."""
    text = _SEPARATORS.sub(" ", model.strip().lower())
    compact = text.replace(" ", "")
    match = _MICROBT.match(compact)
    return match.group(1) if match else text


class ModelTable:
    """The built-in table with ``[[power.models]]`` on top."""

    def __init__(self, extra: list[ModelWatts] | None = None) -> None:
        self.table = dict(BUILT_IN)
        for item in extra or ():
            self.table[model_key(item.model)] = Watts(item.normal_w, item.low_power_w,
                                                      item.sleep_w)
        self._cache: dict[str, Watts | None] = {}

    def get(self, model: str) -> Watts | None:
        """The model's figures, or None when the table does not know it."""
        if model in self._cache:
            return self._cache[model]
        key = model_key(model)
        found = self.table.get(key)
        if found is None:  # "Antminer S19j Pro (88T)" and the like: the longest known prefix
            best = max((k for k in self.table if key.startswith(k)), key=len, default=None)
            found = self.table.get(best) if best else None
        self._cache[model] = found
        return found

    def watts(self, model: str, hashrate_ths: float | None) -> Watts:
        """The model's figures, or a guess from its hashrate (sleep 30 W)."""
        found = self.get(model)
        if found is not None:
            return found
        normal = (hashrate_ths or 100.0) * DEFAULT_JTH
        return Watts(normal, None, 30.0)


class Refinements:
    """What the meter taught about each model's draw: a factor on the table's figures, learned
    from feeds' responses when such miners change state (clamped to ±30%)."""

    def __init__(self, factors: dict[str, float] | None = None) -> None:
        self.factors: dict[str, float] = dict(factors or {})

    def factor(self, model: str) -> float:
        return self.factors.get(model_key(model), 1.0)

    def learn(self, model: str, observed_over_expected: float, weight: float = 0.3) -> float:
        key = model_key(model)
        ratio = min(1.3, max(0.7, observed_over_expected))
        old = self.factors.get(key, 1.0)
        new = min(1.3, max(0.7, old + weight * (ratio * old - old)))
        self.factors[key] = round(new, 4)
        return self.factors[key]
