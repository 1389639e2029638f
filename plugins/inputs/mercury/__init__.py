"""Input ``mercury``: Incotex Mercury electricity meters over RS-485 (the 230-family protocol of
the 203.2TD, 204, 208, 230, 231, 234, 236 and 238).

Modules, from the wire up:

* :mod:`.protocol` — frames, CRC, requests and value codecs (pure, shared with the simulator);
* :mod:`.link` — one serial port as the line's master: one exchange at a time, echo, timing;
* :mod:`.session` — one meter: open the channel, check the serial number, read everything;
* :mod:`.bus` — one task per port owning the line; meters take turns; back-off; reopen;
* :mod:`.config` — ``[[inputs.mercury]]`` (the manual's device object) and its checks;
* :mod:`.input` — the gather input (one per meter);
* :mod:`.backend` — ``/api/serial/*``: ports, devices get/add/delete;
* :mod:`.simmeter`, :mod:`.simulator` — simulated meters on a pseudo-terminal.
"""

from __future__ import annotations

from typing import Any

from webbo.agent.core.contract import InputType, SimulatorType
from webbo.agent.core.hookspecs import hookimpl
from webbo.plugins.inputs.mercury.backend import MercuryBackend
from webbo.plugins.inputs.mercury.config import MercuryConfig, check_all
from webbo.plugins.inputs.mercury.input import MercuryInput
from webbo.plugins.inputs.mercury.sim.bus import start as start_simulation


@hookimpl
def webbo_inputs() -> list[InputType]:
    return [InputType("mercury", MercuryConfig, MercuryInput,
                      "Mercury electricity meters over RS-485 (one table per meter)",
                      kind="gather", check_all=check_all)]


@hookimpl
def webbo_simulators() -> list[SimulatorType]:
    return [SimulatorType("mercury", "meter", start_simulation,
                          "Mercury 230-family meters on a pseudo-terminal")]


@hookimpl
def webbo_serial_backend(context: Any) -> MercuryBackend | None:
    if context is None:
        return None
    return MercuryBackend(context)
