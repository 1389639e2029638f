"""Serial-port methods (manual §3.5.8–3.5.9): ports and the meters on them.

They talk to the agent's serial backend, a service that a plugin provides (the Mercury plugin).
Without one they answer 501 with a message that says so; nothing pretends to work.
"""

from __future__ import annotations

from typing import Any

import msgspec

from webbo.agent.core.contract import SerialBackend
from webbo.agent.core.tasks import TaskFailed
from webbo.web import services
from webbo.web.api.core import METHODS, ApiError, Call
from webbo.web.api.schemas import (
    AddDeviceParams,
    DeleteDeviceParams,
    GetPortsParams,
    MeterDevice,
    NoParams,
)

ERRORS = (400, 401, 415, 422, 500, 501)


def backend(call: Call) -> SerialBackend:
    found = services.serial_backend(call.agent)
    if found is None:
        raise ApiError(501, "no meter support is loaded: no plugin provides the serial "
                            "backend (the mercury plugin is not installed or failed to load; "
                            "see `webbo plugins`)")
    return found


@METHODS.add("/serial/get-ports", GetPortsParams, summary="Serial ports", tag="serial",
             task_result=list[str], errors=ERRORS, examples=({},))
async def get_ports(call: Call, params: GetPortsParams) -> Any:
    """The serial ports meters can be added on (``serial.tools.list_ports.comports``): USB
    ports only, as the manual says, unless ``include_all`` (our addition) is true. The task's
    result is a list of port names such as ``/dev/ttyACM0``."""
    serial = backend(call)

    async def body() -> list[str]:
        return list(await serial.get_ports(params.include_all))

    return call.tasks.start_job("serial/get-ports", call.who, body,
                                     {"include_all": params.include_all})


@METHODS.add("/serial/devices/get", NoParams, summary="Registered meters", tag="serial",
             result=list[MeterDevice], errors=ERRORS, examples=({},))
async def devices_get(call: Call, params: NoParams) -> list[dict[str, Any]]:
    """Every registered meter with its port, port settings, serial number, model, bus
    address, access level and passwords. Answers at once."""
    return list(backend(call).get_devices())


@METHODS.add("/serial/devices/add", AddDeviceParams, summary="Add a meter", tag="serial",
             task_result=bool, errors=ERRORS, examples=({"device": {
                 "port": "/dev/ttyACM0", "device_model": "230", "serial_number": "43099131-20"}},))
async def devices_add(call: Call, params: AddDeviceParams) -> Any:
    """Adds a meter: ``device`` needs ``port``, ``serial_number`` and ``device_model`` (one of
    the models the meter plugin supports: 203.2TD, 204, 208, 230, 231, 234, 236 or 238 with the
    Mercury plugin); ``port_settings``, ``access_level`` (1 or
    2), ``password_1`` and ``password_2`` (6 characters) are optional with the manual's
    defaults. The meter must answer on its port before it is added. Result ``true``; a meter
    that does not answer, a duplicate serial number or an unknown port fail the task with the
    reason."""
    serial = backend(call)
    if params.device.device_model not in serial.models:
        raise ApiError(422, f"device.device_model: invalid value {params.device.device_model!r}; "
                            f"expected {', '.join(serial.models)}")
    device = msgspec.to_builtins(params.device)

    async def body() -> bool:
        if not await serial.add_device(device):
            raise TaskFailed(f"meter {params.device.serial_number} was not added")
        return True

    return call.tasks.start_job("serial/devices/add", call.who, body, {"device": device})


@METHODS.add("/serial/devices/delete", DeleteDeviceParams, summary="Remove a meter",
             tag="serial", task_result=bool, errors=ERRORS,
             examples=({"serial_number": "43099131-20"},))
async def devices_delete(call: Call, params: DeleteDeviceParams) -> Any:
    """Removes the meter with this serial number. Result ``true``; an unknown serial number
    fails the task."""
    serial = backend(call)
    number = params.serial_number

    async def body() -> bool:
        if not await serial.delete_device(number):
            raise TaskFailed(f"no meter with serial number {number}")
        return True

    return call.tasks.start_job("serial/devices/delete", call.who, body,
                                     {"serial_number": number})
