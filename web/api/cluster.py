"""The hub's own methods (our addition): the sites it serves and the alerts they sent."""

from __future__ import annotations

from typing import Any

from webbo.web import services
from webbo.web.api.core import METHODS, Call
from webbo.web.api.schemas import AlertsQuery, SitesQuery


@METHODS.add("/cluster/get-sites", SitesQuery, summary="The sites of a hub", tag="cluster",
             result=list[dict[str, Any]], ours=True, examples=({},))
async def get_sites(call: Call, params: SitesQuery) -> list[dict[str, Any]]:
    """Every site the hub has heard from, by name: ``state`` (``online``; ``stale`` when no
    heartbeat came for ``[hub] stale_after``, with ``stale_reason``; ``conflict`` when two
    agents use the site's name; ``offline`` before any heartbeat), ``last_heartbeat`` and its
    age, the agent's host, version and start time, its miners by state, groups, ranges, meters,
    and its JetStream stream (``applied_seq``: the last message the hub applied). An agent that
    is not a hub has no sites: ``[]``."""
    hub = services.hub(call.agent)
    sites = hub.sites() if hub is not None else []
    if params.site is not None:
        sites = [s for s in sites if s["site"] == params.site]
    return sites


@METHODS.add("/cluster/get-alerts", AlertsQuery, summary="Alerts the sites sent", tag="cluster",
             result=list[dict[str, Any]], ours=True, examples=({"limit": 20},))
async def get_alerts(call: Call, params: AlertsQuery) -> list[dict[str, Any]]:
    """The newest first: ``site``, ``time`` (when the site raised it), ``seq`` (the site's
    order), ``received`` (when the hub got it: later than ``time`` for what was sent during an
    outage), ``alert`` (the site's alert event as it sent it). The hub keeps the last 5,000.
    An agent that is not a hub answers ``[]``."""
    hub = services.hub(call.agent)
    alerts = list(hub.alerts) if hub is not None else []
    if params.site is not None:
        alerts = [a for a in alerts if a["site"] == params.site]
    return list(reversed(alerts))[:params.limit]
