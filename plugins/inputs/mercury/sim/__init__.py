"""Simulated Mercury meters (``webbo simulate``): :mod:`.meter` answers the 230-family protocol
byte for byte as one meter does; :mod:`.bus` puts meters on a pseudo-terminal as on one RS-485
line and starts them."""

from __future__ import annotations

from webbo.plugins.inputs.mercury.sim.bus import start

__all__ = ["start"]
