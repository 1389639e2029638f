"""How a miner is cooled, from what its name says: hydro and immersion models have no fans of
their own, and a reading must tell "no fans" from "fans not reported" (docs/metrics.md:
``cooling``, ``fan_count = 0``)."""

from __future__ import annotations

__all__ = ["COOLINGS", "cooling_from_name"]

COOLINGS = ("air", "hydro", "immersion")


def cooling_from_name(model: str) -> str | None:
    """``hydro`` for a model named so (Bitmain's ``Antminer S21 Hyd.``, ``S19 Pro+ Hyd``),
    ``immersion`` for an immersion model (``... Imm``, ``immersion``); None when the name
    does not say (most air-cooled models are named plainly)."""
    words = model.lower().replace(".", " ").replace("_", " ").split()
    if any(w.startswith("hyd") for w in words):
        return "hydro"
    if any(w.startswith("imm") for w in words):
        return "immersion"
    return None
