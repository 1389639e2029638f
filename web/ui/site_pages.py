"""The hub's Sites page: every site agent it serves, when each was last heard from, its miners
and what it reported (alerts, answers that came too late). Only on a hub; the nav shows it
there."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.exceptions import NotFoundException

from webbo.web import services
from webbo.web.ui.common import agent_of
from webbo.web.ui.render import html

__all__ = ["site_handlers"]

ALERTS_SHOWN = 50


def _values(request: Request[Any, Any, Any]) -> dict[str, Any]:
    hub = services.hub(agent_of(request))
    if hub is None:
        raise NotFoundException("not a hub")
    alerts = list(hub.alerts)[-ALERTS_SHOWN:]
    alerts.reverse()
    return {"sites": hub.sites(), "alerts": alerts, "late": list(hub.late)[-20:][::-1]}


@get("/sites", sync_to_thread=False, include_in_schema=False)
def sites_page(request: Request[Any, Any, Any]) -> Response[str]:
    return html(request, "sites.html", active="sites", **_values(request))


@get("/ui/sites/table", sync_to_thread=False, include_in_schema=False)
def sites_table(request: Request[Any, Any, Any]) -> Response[str]:
    return html(request, "_sites_table.html", **_values(request))


site_handlers = [sites_page, sites_table]
