"""Input ``bitmain_http``: Antminer stock firmware (RPC on 4028 + the CGI web interface).

The plugin module: registers the ``bitmain_http`` miner driver (:mod:`.driver`; control in
:mod:`.control`, the CGI client in :mod:`.web` and :mod:`.digest`) and the ``antminer`` family of
simulated devices (:mod:`.sim`).
"""

from __future__ import annotations

from typing import Any

from webbo.agent.plugin import InputType, SimOptions, SimulatorType, hookimpl, miner_driver
from webbo.plugins.inputs.bitmain_http.driver import BitmainConfig, BitmainDriver


@hookimpl
def webbo_inputs() -> list[InputType]:
    return [miner_driver(BitmainDriver, BitmainConfig,
                         "Antminer stock firmware: RPC stats, CGI identity and control")]


async def _start_sim(addresses: list[str], options: SimOptions) -> Any:
    from webbo.plugins.inputs.bitmain_http.sim import start  # only when simulating

    return await start(addresses, options)


def _reads_with(options: SimOptions) -> list[tuple[str, dict[str, Any]]]:
    """The web interface on the simulator's HTTP port; settings read often, as a demo shows
    control results at once."""
    return [("bitmain_http", {"web_port": options.http_port, "settings_every": 3})]


@hookimpl
def webbo_simulators() -> list[SimulatorType]:
    return [SimulatorType("antminer", "miner", _start_sim,
                          "Antminer S19, S19j Pro, S19 XP, S21, T21 (stock firmware)",
                          weight=1.0, reads_with=_reads_with)]
