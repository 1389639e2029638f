"""Input ``whatsminer``: MicroBT Whatsminer miners, btminer API v2 (TCP 4028, encrypted
writes) and API v3 (TCP 4433), plus the simulated Whatsminers of ``webbo simulate``.

The plugin registers three things: the ``[[inputs.whatsminer]]`` miner driver
(:class:`~.driver.WhatsminerDriver`), the control actions for the devices it identified
(``webbo_control``), and the ``whatsminer`` simulator family (:mod:`.sim`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from webbo.agent.core.contract import ControlRequest, InputType, SimOptions, SimulatorType
from webbo.agent.core.errors import DeviceError
from webbo.agent.core.hookspecs import hookimpl
from webbo.plugins.inputs.whatsminer.config import WhatsminerConfig
from webbo.plugins.inputs.whatsminer.driver import NAME, WhatsminerDriver

__all__ = ["WhatsminerConfig", "WhatsminerDriver"]


@hookimpl
def webbo_inputs() -> list[InputType]:
    return [InputType(NAME, WhatsminerConfig, WhatsminerDriver,
                      "MicroBT Whatsminer: btminer API v2 (4028) and v3 (4433)", kind="miner")]


async def _unserved(action: str) -> None:
    raise DeviceError(f"{action}: no [[inputs.whatsminer]] serves this device's range")


@hookimpl
def webbo_control(request: ControlRequest) -> Awaitable[Any] | None:
    if getattr(request.device, "driver", None) != NAME:
        return None
    driver = request.driver
    if not isinstance(driver, WhatsminerDriver):
        return _unserved(request.action.value)
    return driver.control(request)


async def _start(addresses: list[str], options: SimOptions) -> Any:
    from webbo.plugins.inputs.whatsminer import sim  # only when simulating

    return await sim.start(addresses, options)


@hookimpl
def webbo_simulators() -> list[SimulatorType]:
    return [SimulatorType("whatsminer", "miner", _start,
                          "Whatsminer M30S/M50/M56S/M60, API v2 and v3", weight=1.0)]
