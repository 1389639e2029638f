"""Remediation: a rule may act on the miners it fires for (reboot, set the work mode).

Off unless a rule names an ``action``. Safety first:

* the action runs through the controller exactly as the API's does (a task, the audit log's
  start and end entries, the driver's read-back), as ``alerts:<rule>``;
* at most once per device per rule within ``action_interval``, and at most
  ``[alerts] remediation_per_minute`` devices per minute farm-wide (a rack-wide failure does
  not reboot the rack at once: the rest wait for the next minute);
* a write whose outcome is unknown is never run again for that alert (the audit log says so),
  and a device never has two actions in flight;
* every run is audited with the rule, the device and the outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from webbo.agent.alerts.config import ACTIONS, RuleConfig
from webbo.agent.alerts.state import Alert
from webbo.agent.fleet.control import UNKNOWN_PREFIX, Controller
from webbo.agent.fleet.selectors import Selector

log = structlog.get_logger("webbo.alerts")

__all__ = ["Remediator"]


class Remediator:
    def __init__(self, controller: Callable[[], Controller | None],
                 per_minute: Callable[[], int], changed: Callable[[], None]) -> None:
        self._controller = controller
        self._per_minute = per_minute
        self._changed = changed
        self.last: dict[str, float] = {}
        """"rule\\0mac" → when the rule last acted on the device (saved with the state)."""
        self.recent: deque[float] = deque()
        self.in_flight: set[str] = set()
        self.runs = 0
        self.deferred = 0
        self.unknown = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def consider(self, alert: Alert, rule: RuleConfig, now: float) -> None:
        """Act on a firing alert's miner if the rule says so and the limits allow it."""
        if not rule.action or alert.kind != "miner" or alert.action_unknown or alert.silenced_by:
            return
        key = f"{rule.name}\0{alert.key}"
        if alert.key in self.in_flight or now - self.last.get(key, 0.0) < rule.action_interval:
            return
        while self.recent and now - self.recent[0] >= 60.0:
            self.recent.popleft()
        if len(self.recent) >= self._per_minute():
            self.deferred += 1
            return
        controller = self._controller()
        if controller is None:
            return
        device = controller.fleet.inventory.get(alert.key)
        if device is None:
            return
        self.recent.append(now)
        self.last[key] = now
        alert.action_at = now
        self.in_flight.add(alert.key)
        self._changed()
        task = asyncio.ensure_future(self._run(controller, alert, rule))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, controller: Controller, alert: Alert, rule: RuleConfig) -> None:
        who = f"alerts:{rule.name}"
        action = ACTIONS[rule.action]
        method = "remediation/" + rule.action.replace("_", "-")
        outcome: dict[str, Any] = {"success": False, "payload": "not started"}
        try:
            task = controller.start_action(method, who, Selector(macs=(alert.key,)), action,
                                           rule.action_params)
            if task.handle is not None:
                await task.handle
            result = task.result if isinstance(task.result, dict) else {}
            outcome = result.get(alert.key, {"success": False, "payload": str(task.result)})
        except Exception as exc:
            log.exception("remediation failed to start", rule=rule.name, mac=alert.key)
            outcome = {"success": False, "payload": f"{type(exc).__name__}: {exc}"}
        finally:
            self.in_flight.discard(alert.key)
        unknown = (not outcome.get("success")
                   and str(outcome.get("payload", "")).startswith(UNKNOWN_PREFIX))
        if unknown:
            alert.action_unknown = True
            self.unknown += 1
        self.runs += 1
        controller.audit.write({
            "event": "remediation", "who": who, "rule": rule.name, "mac": alert.key,
            "ip": alert.labels.get("ip", ""), "action": rule.action,
            "params": rule.action_params, "condition": rule.condition,
            "value": alert.value, "success": bool(outcome.get("success")),
            "outcome": "unknown" if unknown else "ok" if outcome.get("success") else "failed",
            "payload": outcome.get("payload"),
            "next_allowed_at": time.time() + float(rule.action_interval)
            if not unknown else None})
        log.info("remediation ran", rule=rule.name, mac=alert.key, action=rule.action,
                 success=bool(outcome.get("success")), unknown=unknown)
        self._changed()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
