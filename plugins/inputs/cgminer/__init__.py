"""Input ``cgminer``: any cgminer-compatible RPC on TCP 4028 (bmminer included).

The plugin module: registers the ``cgminer`` miner input, its control actions and the
``cgminer`` family of simulated devices. The protocol lives in :mod:`.rpc` (shared with other
drivers), :mod:`.parse`, :mod:`.driver`, :mod:`.control`; the simulated devices in
:mod:`.simserver` and :mod:`.simulator`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from webbo.agent.core.contract import (
    ControlRequest,
    InputType,
    PluginContext,
    SimOptions,
    SimulatorType,
)
from webbo.agent.core.hookspecs import hookimpl
from webbo.plugins.inputs.cgminer.glue import control_for


def _factory(config: Any, context: PluginContext) -> Any:
    from webbo.plugins.inputs.cgminer.driver import CgminerDriver

    return CgminerDriver(config, context)


@hookimpl
def webbo_inputs() -> list[InputType]:
    from webbo.plugins.inputs.cgminer.driver import CgminerConfig

    return [InputType("cgminer", CgminerConfig, _factory,
                      "any cgminer-compatible RPC on 4028 (generic fallback)", kind="miner")]


def _run_action() -> Any:
    from webbo.plugins.inputs.cgminer.control import run_action

    return run_action


@hookimpl
def webbo_control(request: ControlRequest) -> Awaitable[Any] | None:
    return control_for(request, "cgminer", _run_action)


async def _start_sim(addresses: list[str], options: SimOptions) -> Any:
    from webbo.plugins.inputs.cgminer.sim.device import start

    return await start(addresses, options)


@hookimpl
def webbo_simulators() -> list[SimulatorType]:
    return [SimulatorType("cgminer", "miner", _start_sim,
                          "generic cgminer devices (Avalon-like and bare), RPC 4028 + SSH",
                          weight=0.05)]
