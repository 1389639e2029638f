"""Plugin-module glue shared by the miner inputs of this tree: hand a control request to the
driver that owns the device, importing the protocol code only when an action really runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from webbo.agent.core.contract import ControlRequest
from webbo.agent.core.errors import DeviceError

RunAction = Callable[[Any, Any, Any, dict[str, Any]], Awaitable[Any]]


def control_for(request: ControlRequest, driver_name: str,
                load: Callable[[], RunAction]) -> Awaitable[Any] | None:
    """The ``webbo_control`` answer of the plugin whose driver is ``driver_name``."""
    if getattr(request.device, "driver", None) != driver_name:
        return None
    return _run(request, driver_name, load)


async def _run(request: ControlRequest, driver_name: str, load: Callable[[], RunAction]) -> Any:
    if request.driver is None:
        raise DeviceError(f"{request.action}: no [[inputs.{driver_name}]] serves this "
                          "device's range")
    return await load()(request.driver, request.device, request.action, request.params)


def pools_param(params: dict[str, Any]) -> list[dict[str, Any]]:
    """``set_pools``' ``pools`` parameter, checked (the API validates it too)."""
    pools = params.get("pools")
    if not isinstance(pools, list) or not all(isinstance(p, dict) for p in pools):
        raise DeviceError("set_pools: pools must be a list of three pools")
    return pools
