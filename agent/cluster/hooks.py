"""Sites and the hub as the agent loads them: two config sections, two services.

* ``[cluster]`` and the ``cluster`` service (:class:`~webbo.agent.cluster.site.SiteLink`):
  this agent is a site;
* ``[hub]`` and the ``hub`` service (:class:`~webbo.agent.cluster.hub.Hub`): this agent serves
  every site.

Both services exist on every agent and stay idle until their section turns them on (a reload
can), so nothing here costs a single agent anything.
"""

from __future__ import annotations

from webbo.agent.cluster.config import ClusterSection, HubSection, check_hub
from webbo.agent.cluster.hub import Hub
from webbo.agent.cluster.site import SiteLink
from webbo.agent.core.contract import SectionType, ServiceType
from webbo.agent.core.hookspecs import hookimpl


@hookimpl
def webbo_config_sections() -> list[SectionType]:
    return [SectionType("cluster", ClusterSection, None, "this agent is one site of a hub"),
            SectionType("hub", HubSection, check_hub, "this agent serves every site")]


@hookimpl
def webbo_services() -> list[ServiceType]:
    return [ServiceType("cluster", SiteLink, "the site's link to the hub (NATS)"),
            ServiceType("hub", Hub, "every site's miners, control and network (NATS)")]
