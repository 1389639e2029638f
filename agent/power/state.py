"""What power control keeps across restarts (``<state_dir>/power.json``, 0600).

* the budgets set from outside the config (the API, demand-response and price signals), per
  feed, with their end times;
* the miners the controller curtailed (so it can restore them after a restart, and knows not
  to touch a miner an operator put to sleep), their change in flight, and what is uncertain
  (a write whose outcome is unknown);
* what the meters taught about each model's draw (:class:`~.models.Refinements`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

from webbo.agent.core.files import write_atomically
from webbo.agent.power.budget import Override
from webbo.agent.power.plan import FULL

log = structlog.get_logger("webbo.power")

__all__ = ["STATE_FILE", "MinerState", "Pending", "PowerState"]

STATE_FILE = "power.json"


@dataclass
class Pending:
    """A change sent to a miner and not yet seen to land."""

    step_id: str
    to: str
    pct: int
    before_w: float
    after_w: float
    at: float
    """Unix time it was sent."""
    prev_level: str
    prev_pct: int
    outcome: str = "running"
    """running, ok, unknown (the write may or may not have been applied) or failed."""
    done_at: float = 0.0
    """Unix time the write returned."""
    meter_before_w: float | None = None
    """The feed's measured draw when the step was sent (to learn from its response)."""


@dataclass
class MinerState:
    """One miner as the controller knows it."""

    mac: str
    feed: str = ""
    level: str = FULL
    pct: int = 100
    managed: bool = False
    """Curtailed by the controller (it may restore it)."""
    top: str = FULL
    """Where restoring ends: the level the miner had before the controller first touched it."""
    changed_at: float = 0.0
    """Unix time of the controller's last change (the dwell counts from here)."""
    pending: Pending | None = None
    uncertain: bool = False
    """A write of unknown outcome that no reading has resolved: the miner is left alone."""
    low_unsupported: bool = False
    full_w: float | None = None
    jth: float | None = None
    """Efficiency at full, in steps of 0.5 J/TH (what the plan orders by)."""
    jth_raw: float | None = None
    limit_w: float | None = None

    def worth_keeping(self) -> bool:
        return self.managed or self.pending is not None or self.uncertain or \
            self.low_unsupported


@dataclass
class PowerState:
    """The whole file."""

    overrides: dict[str, dict[str, Override]] = field(default_factory=dict)
    """feed → kind → budget set from outside the config."""
    miners: dict[str, MinerState] = field(default_factory=dict)
    refinements: dict[str, float] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def load(cls, path: Path | None) -> PowerState:
        state = cls(path=path)
        if path is None or not path.exists():
            return state
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            for feed, kinds in data.get("overrides", {}).items():
                state.overrides[feed] = {k: Override.from_dict(v) for k, v in kinds.items()}
            for mac, raw in data.get("miners", {}).items():
                pending = raw.pop("pending", None)
                miner = MinerState(**raw)
                miner.pending = Pending(**pending) if pending else None
                if miner.pending is not None and miner.pending.outcome == "running":
                    # the agent stopped while the write was out: it may or may not have landed
                    miner.pending.outcome = "unknown"
                    miner.pending.done_at = miner.pending.done_at or miner.pending.at
                state.miners[mac] = miner
            state.refinements = {str(k): float(v)
                                 for k, v in data.get("refinements", {}).items()}
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.error("power state unreadable; starting without it", path=str(path),
                      error=str(exc))
            return cls(path=path)
        return state

    def snapshot(self) -> dict[str, Any]:
        return {
            "overrides": {feed: {k: o.as_dict() for k, o in kinds.items()}
                          for feed, kinds in self.overrides.items() if kinds},
            "miners": {mac: asdict(m) for mac, m in self.miners.items() if m.worth_keeping()},
            "refinements": self.refinements,
        }

    def save(self) -> None:
        """Write the file atomically (0600); a failure is logged, never raised (control goes
        on; what is lost is the memory across a restart)."""
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                self.path.touch(mode=0o600)
            write_atomically(self.path, json.dumps(self.snapshot(), ensure_ascii=False))
            os.chmod(self.path, 0o600)
        except OSError as exc:
            log.error("power state not writable", path=str(self.path), error=str(exc))

    def miner(self, mac: str) -> MinerState:
        found = self.miners.get(mac)
        if found is None:
            found = self.miners[mac] = MinerState(mac)
        return found
