"""Input ``whatsminer``: MicroBT Whatsminer miners, btminer API v2 (TCP 4028, encrypted
writes) and API v3 (TCP 4433), plus the simulated Whatsminers of ``webbo simulate``.

The plugin registers two things: the ``[[inputs.whatsminer]]`` miner driver
(:class:`~.driver.WhatsminerDriver`, with its control actions) and the ``whatsminer`` simulator
family (:mod:`.sim`).
"""

from __future__ import annotations

from typing import Any

from webbo.agent.plugin import InputType, SimOptions, SimulatorType, hookimpl, miner_driver
from webbo.plugins.inputs.whatsminer.config import WhatsminerConfig
from webbo.plugins.inputs.whatsminer.driver import WhatsminerDriver

__all__ = ["WhatsminerConfig", "WhatsminerDriver"]


@hookimpl
def webbo_inputs() -> list[InputType]:
    return [miner_driver(WhatsminerDriver, WhatsminerConfig,
                         "MicroBT Whatsminer: btminer API v2 (4028) and v3 (4433)")]


async def _start(addresses: list[str], options: SimOptions) -> Any:
    from webbo.plugins.inputs.whatsminer import sim  # only when simulating

    return await sim.start(addresses, options)


@hookimpl
def webbo_simulators() -> list[SimulatorType]:
    return [SimulatorType("whatsminer", "miner", _start,
                          "Whatsminer M30S/M50/M56S/M60, API v2 and v3", weight=1.0,
                          reads_with=lambda options: [("whatsminer", {})])]
