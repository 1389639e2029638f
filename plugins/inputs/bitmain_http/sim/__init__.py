"""Simulated Antminers (``webbo simulate``): stock firmware with its RPC on 4028 and its CGI
web interface behind digest authentication. The device: :mod:`.antminer`; the checking side of
digest authentication: :mod:`.digest_server`."""

from __future__ import annotations

from webbo.plugins.inputs.bitmain_http.sim.antminer import MODELS, start

__all__ = ["MODELS", "start"]
