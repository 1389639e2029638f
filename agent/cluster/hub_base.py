"""What the hub's parts need of each other, as protocols (so that the hub's service, its link,
its controller and its network view depend on this module and not on one another)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from webbo.agent.cluster.config import HubSection
from webbo.agent.cluster.view import HubFleet
from webbo.agent.cluster.wire import AlertMsg, ControlReply, NetworkReply, NetworkRequest
from webbo.agent.core.tasks import TaskService

__all__ = ["HubCore", "Requests", "SiteSilent", "SiteUnreachable"]


class SiteUnreachable(Exception):
    """The request did not reach an agent of the site (nothing was started there)."""


class SiteSilent(Exception):
    """The site stopped answering: before accepting (``accepted`` False: it may or may not have
    the request) or while running it (the outcome of what it was doing is unknown)."""

    def __init__(self, message: str, accepted: bool) -> None:
        super().__init__(message)
        self.accepted = accepted


class Requests(Protocol):
    """The hub's link as its controller and network view use it."""

    section: HubSection

    async def control(self, site: str, request_id: str, body: bytes,
                      cancelled: Callable[[], bool],
                      on_progress: Callable[[int], None]) -> ControlReply: ...

    async def network(self, site: str, request: NetworkRequest,
                      timeout: float | None = None) -> NetworkReply: ...


class HubCore(Protocol):
    """The hub service as its parts see it."""

    hub_id: str
    section: HubSection
    fleet: HubFleet
    session: Any
    """The running link (a :class:`Requests`), or None."""

    @property
    def tasks(self) -> TaskService: ...

    def unavailable(self, site: str) -> str: ...

    def record_alert(self, site: str, msg: AlertMsg) -> None: ...

    def record_late(self, site: str, request_id: str, kind: str, given_up: float,
                    data: bytes) -> None: ...
