"""Control across sites: the hub's controller, the same ``start_action`` as a single agent's.

A task on the hub takes any selector of the manual, resolves it against the sites' inventories,
splits the devices by site and sends each site one request; each site runs it through its own
controller (its concurrency bound, its safety rules, its audit log). The per-MAC results are
merged into the manual's one result object, in the order of the selection.

What a site that does not answer gets, per MAC, is said plainly and never retried:

* no agent of the site connected, the site stale, or never asked: ``site msk-1 unreachable:
  ...`` (nothing was started there);
* the request sent, but not accepted within ``[hub] request_timeout``: ``site msk-1
  unreachable: no answer within 10 s`` (for a write, "outcome unknown" is added: if the site
  did get the request it may have acted);
* accepted, then silent: ``outcome unknown: site msk-1 ...`` for writes.

An answer that comes later is logged and recorded in the hub's audit log, not applied.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from webbo.agent.cluster.hub_base import HubCore, Requests, SiteSilent, SiteUnreachable
from webbo.agent.cluster.wire import ControlRequest, encoder
from webbo.agent.core.audit import redact
from webbo.agent.core.config import NetworkSection
from webbo.agent.core.tasks import Task
from webbo.agent.fleet.control import UNKNOWN_PREFIX
from webbo.agent.fleet.driver import WRITE_ACTIONS, Action
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.pools import PoolSpec
from webbo.agent.fleet.selectors import Selection, SelectionError, Selector, select

log = structlog.get_logger("webbo.cluster.hub")

__all__ = ["HubController"]

_NO_NETWORK = NetworkSection()


def _outcome(ok: bool, payload: Any) -> dict[str, Any]:
    return {"success": ok, "payload": payload}


class HubController:
    """The controller the web uses on a hub (``start_action`` as
    :class:`~webbo.agent.fleet.control.Controller` has it)."""

    def __init__(self, hub: HubCore) -> None:
        self.hub = hub

    def select(self, selector: Selector) -> Selection:
        """MACs and ``ip_range`` across every site (an address range names those addresses at
        each site); a range or group id at the one site that has it."""
        fleet = self.hub.fleet
        wanted = selector.ip_range_id or selector.ip_range_group_id
        if not wanted:
            return select(fleet.inventory.devices(), _NO_NETWORK, selector)
        view = self.hub.fleet.site_of_id(wanted.lower())
        if view is None:
            field = "ip_range_id" if selector.ip_range_id else "ip_range_group_id"
            kind = "range" if selector.ip_range_id else "group"
            raise SelectionError(f"{field}: no {kind} with id {wanted} at any site "
                                 "(see /api/mining/get-network)")
        return select(view.devices.values(), view.network, selector)

    def supports(self, device: Device) -> frozenset[Action]:
        """The hub cannot know a site's drivers: everything is offered, the site answers."""
        return frozenset(Action)

    def start_action(self, method: str, who: str, selector: Selector, action: Action,
                     params: Mapping[str, Any] | None = None,
                     pools: Sequence[PoolSpec | None] | None = None) -> Task:
        selection = self.select(selector)
        by_site: dict[str, list[Device]] = {}
        for device in selection.devices:
            by_site.setdefault(device.site, []).append(device)
        tasks = self.hub.tasks
        task = tasks.create(method, who)
        task.devices = len(selection.devices) + len(selection.missing)
        args = dict(params or {})
        wire_pools = None if pools is None else [None if p is None else dict(vars(p))
                                                 for p in pools]
        tasks.audit.write({
            "event": "start", "task_id": task.id, "who": who, "method": method,
            "action": action.value, "selector": selector.describe(),
            "params": redact({**args, **({"pools": wire_pools} if wire_pools else {})}),
            "devices": task.devices, "sites": {s: len(d) for s, d in by_site.items()}})
        started = time.monotonic()
        progress: dict[str, int] = {}

        def moved(site: str, done: int) -> None:
            progress[site] = done
            task.done = sum(progress.values())

        async def body(t: Task) -> dict[str, Any]:
            parts = await asyncio.gather(*(
                self._site(t, site, devices, method, who, action, args, wire_pools, moved)
                for site, devices in by_site.items()))
            merged: dict[str, dict[str, Any]] = {}
            for part in parts:
                merged.update(part)
            ordered = {d.mac: merged[d.mac] for d in selection.devices if d.mac in merged}
            for mac in selection.missing:
                ordered[mac] = _outcome(False, f"{mac}: no such device at any site (see "
                                               "/api/mining/miners/get)")
            t.done = len(ordered)
            t.summary = _summary(ordered)
            return ordered

        def end(done: Task) -> None:
            tasks.audit.write({
                "event": "end", "task_id": done.id, "who": who, "method": method,
                "action": action.value, "selector": selector.describe(),
                "devices": done.devices, "status": done.status.value, "summary": done.summary,
                "duration_s": round(time.monotonic() - started, 3)})
            log.info("hub task done", task_id=done.id, method=method, who=who,
                     status=done.status.value, sites=len(by_site), **done.summary)

        return tasks.run(task, body, end)

    async def _site(self, task: Task, site: str, devices: list[Device], method: str, who: str,
                    action: Action, params: dict[str, Any],
                    pools: list[dict[str, str] | None] | None,
                    moved: Callable[[str, int], None]) -> dict[str, dict[str, Any]]:
        macs = [d.mac for d in devices]
        hub = self.hub

        def everyone(text: str) -> dict[str, dict[str, Any]]:
            return {mac: _outcome(False, text) for mac in macs}

        problem = hub.unavailable(site)
        if problem:
            return everyone(f"site {site} unreachable: {problem}")
        session: Requests | None = hub.session
        assert session is not None
        section = session.section
        request = ControlRequest(id=task.id, hub=hub.hub_id, method=method, who=who,
                                 action=action.value, macs=macs, params=params, pools=pools,
                                 progress_every=max(0.5, float(section.request_timeout) / 4))
        write = action in WRITE_ACTIONS
        try:
            reply = await session.control(site, task.id, encoder.encode(request),
                                          lambda: task.cancel_requested,
                                          lambda done: moved(site, done))
        except SiteUnreachable as exc:
            return everyone(f"site {site} unreachable: {exc}")
        except SiteSilent as exc:
            if exc.accepted:
                prefix = UNKNOWN_PREFIX if write else ""
                return everyone(f"{prefix}site {site} unreachable: {exc} (not retried)")
            tail = "; not sent again" + (" (if it got the request, the outcome is unknown)"
                                         if write else "")
            return everyone(f"site {site} unreachable: {exc}{tail}")
        moved(site, len(macs))
        if reply.status == "success" and reply.result is not None:
            answered = {mac: reply.result[mac] for mac in macs if mac in reply.result}
            for mac in macs:
                answered.setdefault(mac, _outcome(False, f"site {site} did not answer for "
                                                         "this device"))
            return answered
        if reply.status == "refused":
            return everyone(f"site {site} refused the task: {reply.error}")
        if reply.status == "canceled":
            return everyone(f"site {site}: the task was cancelled")
        return everyone(f"site {site}: the task failed: {reply.error}")

    def status(self) -> dict[str, Any]:
        return {}


def _summary(results: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    summary = {"ok": 0, "failed": 0, "unknown": 0}
    for outcome in results.values():
        if outcome.get("success"):
            summary["ok"] += 1
        elif str(outcome.get("payload", "")).startswith(UNKNOWN_PREFIX):
            summary["unknown"] += 1
        else:
            summary["failed"] += 1
    return summary
