"""What the web app uses of the running agent, found by type (never by a plugin's name).

The API and the UI both go through these, so a missing service (the meters' plugin not
installed) is met the same way everywhere — and so is a hub: with ``[hub] enabled`` the same
functions answer the hub's views over every site (:class:`~webbo.agent.cluster.hub.Hub`)
instead of the local ones, and the pages and methods need not know which they serve. The one
thing they may ask is :func:`sites`: the site column and filter are shown when there is more
than one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from webbo.agent.cluster.config import ClusterSection
from webbo.agent.cluster.hub import Hub
from webbo.agent.core import network as core_network
from webbo.agent.core.agent import Agent
from webbo.agent.core.config import ConfigError, IPRangeGroup, NetworkSection
from webbo.agent.core.contract import SerialBackend
from webbo.agent.core.tasks import Task
from webbo.agent.fleet.addresses import AddressSummary
from webbo.agent.fleet.control import Controller
from webbo.agent.fleet.discovery import MinerFleet
from webbo.agent.fleet.driver import Action
from webbo.agent.fleet.history import MinerHistory
from webbo.agent.fleet.inventory import Device, Inventory
from webbo.agent.fleet.pools import PoolSpec
from webbo.agent.fleet.selectors import Selector
from webbo.agent.power.controller import PowerController

__all__ = ["ControlService", "FleetView", "NetworkView", "ServiceMissing", "controller",
           "fleet", "hub", "network", "power", "serial_backend", "sites"]


class ServiceMissing(LookupError):
    """The agent runs without this service (its plugin is not installed or failed to load)."""


class FleetView(Protocol):
    """What the pages read of the miners: the local fleet, or a hub's view of all sites."""

    @property
    def inventory(self) -> Inventory: ...

    @property
    def history(self) -> MinerHistory: ...

    @property
    def problem(self) -> str:
        """Why nothing is swept although it should be (empty when all is well)."""
        ...

    def addresses(self, group: str | None = None, range_: str | None = None
                  ) -> AddressSummary:
        """The state of every address of the ranges (or of one group or range)."""
        ...


class ControlService(Protocol):
    """Starts control tasks (the local controller, or the hub's, which splits by site)."""

    def start_action(self, method: str, who: str, selector: Selector, action: Action,
                     params: Mapping[str, Any] | None = None,
                     pools: Sequence[PoolSpec | None] | None = None) -> Task: ...

    def supports(self, device: Device) -> frozenset[Action]: ...


class NetworkView(Protocol):
    """The Network (groups and ranges): read for the pages, changed by set-network."""

    def groups(self) -> list[tuple[str, IPRangeGroup]]:
        """(site, group) pairs; the site is empty on a single agent."""
        ...

    def section(self) -> NetworkSection: ...

    def payload(self) -> dict[str, Any]:
        """get-network's answer."""
        ...

    async def set_network(self, who: str, groups: Sequence[Mapping[str, Any]],
                          via: str = "", sites: Sequence[str] = ()
                          ) -> tuple[Task, list[str]]:
        """Validate (raises ConfigError naming the field), then start the task that applies;
        with what the operator should know at once (ranges that nothing will sweep). On a
        hub, ``sites`` are replaced even when no group names them (the editor's)."""
        ...


class LocalNetwork:
    """The agent's own ``[network]``."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def section(self) -> NetworkSection:
        return self.agent.config.network

    def groups(self) -> list[tuple[str, IPRangeGroup]]:
        return [("", group) for group in self.agent.config.network.ip_range_groups]

    def payload(self) -> dict[str, Any]:
        return core_network.network_payload(self.agent.config.network)

    async def set_network(self, who: str, groups: Sequence[Mapping[str, Any]],
                          via: str = "", sites: Sequence[str] = ()
                          ) -> tuple[Task, list[str]]:
        own = self.agent.config.section(ClusterSection).site
        for i, group in enumerate(groups):
            site = group.get("site")
            if site and site != own:
                raise ConfigError(f"network.ip_range_groups[{i}].site",
                                  "this agent is not a hub: it serves only its own ranges"
                                  + (f" (site {own})" if own else ""))
        plain = [{k: v for k, v in group.items() if k != "site"} for group in groups]
        task, config = core_network.set_network(self.agent.edits, self.agent.tasks, who, plain,
                                                via)
        fleet = self.agent.service(MinerFleet)
        problem = fleet.problem_with(config) if fleet is not None else (
            "no miner support is loaded, so nothing is swept (see `webbo plugins`)")
        return task, [problem] if problem else []


def hub(agent: Agent) -> Hub | None:
    """The hub, when this agent is one (``[hub] enabled``)."""
    found = agent.service(Hub)
    return found if found is not None and found.enabled else None


def fleet(agent: Agent) -> FleetView | None:
    """The miners (inventory, history), or None when the fleet is not loaded."""
    the_hub = hub(agent)
    if the_hub is not None:
        return the_hub.fleet
    return agent.service(MinerFleet)


def controller(agent: Agent) -> ControlService:
    the_hub = hub(agent)
    if the_hub is not None:
        return the_hub.controller
    found = agent.service(Controller)
    if found is None:
        raise ServiceMissing("miner control is not loaded (see `webbo plugins`)")
    return found


def network(agent: Agent) -> NetworkView:
    the_hub = hub(agent)
    if the_hub is not None:
        return the_hub.network
    return LocalNetwork(agent)


def sites(agent: Agent) -> list[str]:
    """The sites a hub serves (by name); empty on a single agent."""
    the_hub = hub(agent)
    return sorted(the_hub.fleet.sites) if the_hub is not None else []


def serial_backend(agent: Agent) -> SerialBackend | None:
    """The meters' serial backend (on a hub: every site's meters), or None without meter
    support."""
    the_hub = hub(agent)
    if the_hub is not None:
        return the_hub.meters
    return agent.service(SerialBackend)  # type: ignore[type-abstract]


def power(agent: Agent) -> PowerController:
    """Power control (feeds, budgets, curtailment)."""
    found = agent.service(PowerController)
    if found is None:
        raise ServiceMissing("power control is not loaded (see `webbo plugins`)")
    return found
