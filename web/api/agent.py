"""The agent's own state through the API (our addition): what ``webbo status`` prints, and why
the last config reload was refused, if it was."""

from __future__ import annotations

from typing import Any

import msgspec

from webbo.agent.core.config import to_json
from webbo.web.api.core import METHODS, Call
from webbo.web.api.schemas import NoParams


@METHODS.add("/agent/get-status", NoParams, summary="The agent's state", tag="agent",
             result=dict[str, Any], ours=True, examples=({},))
async def agent_get_status(call: Call, params: NoParams) -> dict[str, Any]:
    """Inputs (gathers, errors, last error), outputs (buffered, written, dropped, write errors,
    last error), the miner fleet and meter counts, the number of config reloads and
    ``reload_error``: the reason the last change of webbo.toml was refused (the running config
    stayed), or null. Answers at once."""
    status: dict[str, Any] = msgspec.json.decode(to_json(call.agent.status()))
    return status
