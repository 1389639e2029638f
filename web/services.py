"""What the web app uses of the running agent, found by type (never by a plugin's name).

The API and the UI both go through these, so a missing service (the meters' plugin not
installed) is met the same way everywhere.
"""

from __future__ import annotations

from webbo.agent.core.agent import Agent
from webbo.agent.core.contract import SerialBackend
from webbo.agent.fleet.control import Controller
from webbo.agent.fleet.discovery import MinerFleet

__all__ = ["ServiceMissing", "controller", "fleet", "serial_backend"]


class ServiceMissing(LookupError):
    """The agent runs without this service (its plugin is not installed or failed to load)."""


def fleet(agent: Agent) -> MinerFleet | None:
    """The miners (inventory, drivers), or None when the fleet is not loaded."""
    return agent.service(MinerFleet)


def controller(agent: Agent) -> Controller:
    found = agent.service(Controller)
    if found is None:
        raise ServiceMissing("miner control is not loaded (see `webbo plugins`)")
    return found


def serial_backend(agent: Agent) -> SerialBackend | None:
    """The meters' serial backend, or None without meter support."""
    return agent.service(SerialBackend)  # type: ignore[type-abstract]
