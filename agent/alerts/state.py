"""One alert per (rule, device) and its life: pending → firing → resolved.

* **pending**: the condition holds, not yet for the rule's ``for``; nothing is sent. It is
  dropped, silently, the first time the condition does not hold.
* **firing**: it held long enough. Its message goes out (grouped) unless a silence covers it;
  a reminder follows every ``repeat_interval``. Hysteresis is in the limits the engine scans
  with (fires above 90 °C, holds until below 85 °C).
* **resolved**: the condition stopped holding (for a whole ``flap_window`` when the alert is
  flapping: it fired ``flap_threshold`` times within that window). The resolved message goes
  out where the firing one did. The alert moves to the history.

Everything here is saved in ``<state_dir>/alerts.json`` (atomically), so a restart neither
sends a firing alert again nor forgets one: an alert whose condition cleared while the agent
was down is resolved at the first evaluation after the start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

__all__ = ["Alert", "SavedState"]


@dataclass(slots=True)
class Alert:
    rule: str
    key: str
    """The MAC of a miner, the serial number of a meter, the key a reporter gave."""
    kind: str
    """miner, meter or reported."""
    severity: str
    since: float
    """When the condition started holding (pending since)."""
    status: str = "pending"
    fired_at: float = 0.0
    clear_since: float = 0.0
    """When the condition stopped holding while firing (0 while it holds)."""
    value: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    notified: bool = False
    """The firing message was handed to the channels (a resolved one will follow)."""
    last_notified: float = 0.0
    flapping: bool = False
    silenced_by: str = ""
    action_at: float = 0.0
    action_unknown: bool = False
    """The last action's outcome was unknown: it is not run again for this alert."""
    changed_at: float = 0.0
    """When it last turned (firing, resolved): the message's creation time."""

    def describe(self) -> dict[str, Any]:
        return {"rule": self.rule, "key": self.key, "kind": self.kind,
                "severity": self.severity, "status": self.status, "since": self.since,
                "fired_at": self.fired_at or None, "value": self.value,
                "labels": dict(self.labels), "summary": self.summary,
                "silenced_by": self.silenced_by or None, "flapping": self.flapping,
                "notified": self.notified, "last_notified": self.last_notified or None}


class _SavedAlert(msgspec.Struct, kw_only=True):
    rule: str
    key: str
    kind: str
    severity: str
    since: float
    status: str
    fired_at: float = 0.0
    clear_since: float = 0.0
    value: float | None = None
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    summary: str = ""
    notified: bool = False
    last_notified: float = 0.0
    flapping: bool = False
    silenced_by: str = ""
    action_at: float = 0.0
    action_unknown: bool = False
    changed_at: float = 0.0


class SavedState(msgspec.Struct, kw_only=True):
    """The file ``alerts.json``."""

    version: int = 1
    saved_at: float = 0.0
    alerts: list[_SavedAlert] = msgspec.field(default_factory=list)
    history: list[dict[str, Any]] = msgspec.field(default_factory=list)
    fires: dict[str, list[float]] = msgspec.field(default_factory=dict)
    """"rule\\0key" → recent firing times (flap detection)."""
    actions: dict[str, float] = msgspec.field(default_factory=dict)
    """"rule\\0mac" → time of the last remediation."""
    memory: dict[str, Any] = msgspec.field(default_factory=dict)

    @staticmethod
    def pack(alert: Alert) -> _SavedAlert:
        return _SavedAlert(**{name: getattr(alert, name) for name in _SavedAlert.__struct_fields__})

    @staticmethod
    def unpack(saved: _SavedAlert) -> Alert:
        return Alert(**{name: getattr(saved, name) for name in _SavedAlert.__struct_fields__})
