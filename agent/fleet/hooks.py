"""The miner fleet as the agent loads it: its services, registered like any plugin's.

* ``miners``: :class:`~webbo.agent.fleet.discovery.MinerFleet` (inventory, drivers, the sweep);
* ``control``: :class:`~webbo.agent.fleet.control.Controller` (device actions for the API/UI).
"""

from __future__ import annotations

from webbo.agent.core.contract import PluginContext, ServiceType
from webbo.agent.core.hookspecs import hookimpl
from webbo.agent.core.tasks import TaskService
from webbo.agent.fleet.control import Controller
from webbo.agent.fleet.discovery import MinerFleet


def _controller(context: PluginContext) -> Controller:
    fleet = context.shared.find(MinerFleet)
    tasks = context.shared.find(TaskService)
    if fleet is None or tasks is None:
        raise RuntimeError("the controller needs the miner fleet and the agent's tasks")
    return Controller(fleet, tasks)


@hookimpl
def webbo_services() -> list[ServiceType]:
    return [ServiceType("miners", MinerFleet, "the miners: inventory, sweep, drivers"),
            ServiceType("control", _controller, "device actions (reboot, LED, mode, pools)")]
