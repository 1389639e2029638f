"""Input ``mercury``: Incotex Mercury electricity meters over RS-485 (the 230-family protocol of
the 203.2TD, 204, 208, 230, 231, 234, 236 and 238).

Modules, from the wire up:

* :mod:`.protocol` — frames, CRC, requests and value codecs (pure, shared with the simulator);
* :mod:`.link` — one serial port as the line's master: one exchange at a time, echo, timing;
* :mod:`.session` — one meter: open the channel, check the serial number, read everything;
* :mod:`.bus` — one task per port owning the line; meters take turns; back-off; reopen;
* :mod:`.config` — ``[[inputs.mercury]]`` (the manual's device object) and its checks;
* :mod:`.input` — the gather input (one per meter);
* :mod:`.backend` — the serial backend service: ports, devices get/add/delete, live values;
* :mod:`.sim` — simulated meters on a pseudo-terminal (:mod:`.sim.meter` one meter,
  :mod:`.sim.bus` the line they share).
"""

from __future__ import annotations

from webbo.agent.plugin import InputType, ServiceType, SimulatorType, hookimpl
from webbo.plugins.inputs.mercury.backend import MercuryBackend
from webbo.plugins.inputs.mercury.config import MercuryConfig, check_all
from webbo.plugins.inputs.mercury.input import MercuryInput
from webbo.plugins.inputs.mercury.sim import start as start_simulation


@hookimpl
def webbo_inputs() -> list[InputType]:
    return [InputType("mercury", MercuryConfig, MercuryInput,
                      "Mercury electricity meters over RS-485 (one table per meter)",
                      kind="gather", check_all=check_all)]


@hookimpl
def webbo_services() -> list[ServiceType]:
    return [ServiceType("mercury", MercuryBackend,
                        "the meters' serial ports: /api/serial/* and the Meters page")]


@hookimpl
def webbo_simulators() -> list[SimulatorType]:
    return [SimulatorType("mercury", "meter", start_simulation,
                          "Mercury 230-family meters on a pseudo-terminal")]
