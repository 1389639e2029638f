"""Input ``bitmain_http``: Antminer stock firmware (RPC on 4028 + the CGI web interface).

The plugin module: registers the ``bitmain_http`` miner input, its control actions and the
``antminer`` family of simulated devices. Protocol code: :mod:`.digest`, :mod:`.web`,
:mod:`.driver`, :mod:`.control`; simulated devices: :mod:`.simulator`.
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
    from webbo.plugins.inputs.bitmain_http.driver import BitmainDriver

    return BitmainDriver(config, context)


@hookimpl
def webbo_inputs() -> list[InputType]:
    from webbo.plugins.inputs.bitmain_http.driver import BitmainConfig

    return [InputType("bitmain_http", BitmainConfig, _factory,
                      "Antminer stock firmware: RPC stats, CGI identity and control",
                      kind="miner")]


def _run_action() -> Any:
    from webbo.plugins.inputs.bitmain_http.control import run_action

    return run_action


@hookimpl
def webbo_control(request: ControlRequest) -> Awaitable[Any] | None:
    return control_for(request, "bitmain_http", _run_action)


async def _start_sim(addresses: list[str], options: SimOptions) -> Any:
    from webbo.plugins.inputs.bitmain_http.sim.antminer import start

    return await start(addresses, options)


@hookimpl
def webbo_simulators() -> list[SimulatorType]:
    return [SimulatorType("antminer", "miner", _start_sim,
                          "Antminer S19, S19j Pro, S19 XP, S21, T21 (stock firmware)",
                          weight=1.0)]
