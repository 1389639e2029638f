"""The hub: ``webbo run`` with ``[hub] enabled = true`` serves the manual's API and UI over
every site.

:class:`Hub` is a service of the agent like the miner fleet. While ``[hub]`` is on, the web
finds in it the same kinds of things it uses on a single agent (``webbo.web.services``):

* ``fleet`` — a :class:`~webbo.agent.cluster.view.HubFleet`: inventory and history of all
  sites, each device naming its ``site``;
* ``controller`` — a :class:`~webbo.agent.cluster.hub_control.HubController`: tasks split by
  site, merged per MAC;
* ``network`` — a :class:`~webbo.agent.cluster.hub_network.HubNetwork`: every site's groups;
  set-network forwarded;
* ``meters`` — :class:`HubMeters`: every site's meters (read-only: meters are added at their
  site).

It also keeps the sites' recent alerts, and the answers that came too late.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from typing import Any

import msgspec
import structlog

from webbo.agent.cluster.config import HubSection, describe_settings
from webbo.agent.cluster.hub_control import HubController
from webbo.agent.cluster.hub_link import HubSession
from webbo.agent.cluster.hub_network import HubNetwork
from webbo.agent.cluster.view import HubFleet
from webbo.agent.cluster.wire import AlertMsg, ControlReply
from webbo.agent.core.config import Config, config_key
from webbo.agent.core.contract import CoreInput, PluginContext, Shared
from webbo.agent.core.errors import DeviceError
from webbo.agent.core.tasks import TaskService

log = structlog.get_logger("webbo.cluster.hub")

__all__ = ["Hub", "HubMeters"]

ALERTS_KEPT = 5000
LATE_KEPT = 200


class HubMeters:
    """The Meters page on a hub: every site's meters, each naming its site. Adding or deleting
    a meter happens at its site (it tests the meter on the site's serial port)."""

    models: tuple[str, ...] = ()

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def get_ports(self, include_all: bool = False) -> list[str]:
        return []

    def get_devices(self) -> list[dict[str, Any]]:
        return [{**meter, "site": view.name} for view in self.hub.network.sites()
                for meter in view.meters]

    async def add_device(self, device: dict[str, Any]) -> bool:
        raise DeviceError("on a hub, meters are added at their site (its own web UI or "
                          "/api/serial/devices/add there): the site tests the meter on its "
                          "own serial port")

    async def delete_device(self, serial_number: str) -> bool:
        raise DeviceError("on a hub, meters are deleted at their site (its own web UI or "
                          "/api/serial/devices/delete there)")

    def meters(self) -> list[dict[str, Any]]:
        return self.get_devices()


class Hub:
    """The ``Hub`` service (inactive unless ``[hub] enabled``)."""

    def __init__(self, context: PluginContext) -> None:
        self.shared: Shared = context.shared
        self.section = context.config.section(HubSection)
        self.hub_id = uuid.uuid4().hex[:12]
        """This run of the hub (its reply subjects carry it)."""
        self.fleet = HubFleet()
        self.controller = HubController(self)
        self.network = HubNetwork(self)
        self.meters = HubMeters(self)
        self.alerts: deque[dict[str, Any]] = deque(maxlen=ALERTS_KEPT)
        self.late: deque[dict[str, Any]] = deque(maxlen=LATE_KEPT)
        self.session: HubSession | None = None

    @property
    def enabled(self) -> bool:
        return self.section.enabled

    @property
    def tasks(self) -> TaskService:
        tasks = self.shared.find(TaskService)
        if tasks is None:  # the agent always shares its TaskService
            raise RuntimeError("the hub needs the agent's tasks")
        return tasks

    def inputs(self, config: Config) -> list[CoreInput]:
        self.section = config.section(HubSection)
        if not self.section.enabled:
            return []
        section = self.section
        return [(b"hub|" + config_key(section), "hub", lambda: HubSession(self, section))]

    def unavailable(self, site: str) -> str:
        """Why requests cannot go to ``site`` now (empty when they can)."""
        if self.session is None or not self.session.connected:
            return "the hub is not connected to NATS"
        view = self.fleet.sites.get(site)
        if view is None or view.heartbeat is None:
            return "no agent of this site has been heard from"
        if view.conflict:
            return view.conflict
        if view.stale:
            return view.stale_reason
        return ""

    # -- records -------------------------------------------------------------------------------

    def record_alert(self, site: str, msg: AlertMsg) -> None:
        self.alerts.append({"site": site, "time": msg.time, "seq": msg.seq,
                            "instance": msg.instance, "received": time.time(),
                            "alert": msg.alert})

    def record_late(self, site: str, request_id: str, kind: str, given_up: float,
                    data: bytes) -> None:
        """An answer after its request was given up: logged, kept, written to the audit log;
        never applied (the task's result was already final)."""
        summary: dict[str, Any] = {}
        status = ""
        try:
            reply = msgspec.json.decode(data, type=ControlReply)
            status = reply.status
            if reply.result:
                ok = sum(1 for o in reply.result.values() if o.get("success"))
                summary = {"ok": ok, "failed": len(reply.result) - ok}
        except msgspec.MsgspecError:
            status = "?"
        entry = {"site": site, "task_id": request_id, "kind": kind, "status": status,
                 "summary": summary, "given_up_at": given_up or None, "received": time.time()}
        self.late.append(entry)
        log.warning("late answer from a site: recorded, not applied", **entry)
        tasks = self.shared.find(TaskService)
        if tasks is not None:
            tasks.audit.write({"event": "late-answer", **entry})

    def sites(self) -> list[dict[str, Any]]:
        now = time.time()
        return [view.describe(now) for view in self.network.sites()]

    def status(self) -> dict[str, Any]:
        if not self.enabled:
            return {"enabled": False}
        session = self.session
        return {"enabled": True, "name": self.section.name, **describe_settings(self.section),
                "connected": bool(session and session.connected), **self.fleet.status(),
                "sites_online": sum(1 for v in self.fleet.sites.values()
                                    if v.state == "online"),
                "late_answers": len(self.late), "alerts": len(self.alerts)}

    async def close(self) -> None:
        if self.session is not None:
            await self.session.stop()
