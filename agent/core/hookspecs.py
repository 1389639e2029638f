"""The WebboMonitor plugin contract.

A plugin is a Python module (or any object) with functions marked ``@hookimpl``. It reaches the
agent through the entry-point group ``webbo``; the built-in plugins are listed in that group of
our own pyproject.toml and load exactly like a third-party one::

    [project.entry-points.webbo]
    my_plugin = "my_package.webbo_plugin"

pluggy has no async, so hooks only *describe* things: they hand over factories (input types,
output types, simulators) and control-action coroutines. The async work happens in the objects
those factories return. Hooks are called at start and on reload, never once per miner per poll.

What a plugin can add:

* **inputs** (:func:`webbo_inputs`): a name (the ``[[inputs.NAME]]`` table), a config Struct and a
  factory. A *gather* input is called on its interval and adds metrics; a *miner* input is a
  driver the miner sweep asks to identify and poll the devices of the ``[network]`` ranges.
* **outputs** (:func:`webbo_outputs`): a name (``[[outputs.NAME]]``), a config Struct and a
  factory of an object with ``connect``, ``write(batch)`` and ``close``.
* **control** (:func:`webbo_control`): the coroutine that runs an action (reboot, LED, work mode,
  pools, ...) on one known device.
* **simulators** (:func:`webbo_simulators`): simulated devices for ``webbo simulate`` and tests.
* **serial devices** (:func:`webbo_serial_backend`): what the ``/api/serial/*`` methods talk to.

The types named here (``InputType`` and friends) live in :mod:`webbo.agent.core.contract`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from webbo.agent.core.contract import (
        ControlRequest,
        InputType,
        OutputType,
        SerialBackend,
        SimulatorType,
    )

PROJECT = "webbo"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def webbo_inputs() -> list[InputType]:
    """Input types this plugin provides, one per ``[[inputs.NAME]]`` name.

    Called once at start. Two plugins providing the same name is a load error for the later one.
    """


@hookspec
def webbo_outputs() -> list[OutputType]:
    """Output types this plugin provides, one per ``[[outputs.NAME]]`` name."""


@hookspec
def webbo_control(request: ControlRequest) -> Awaitable[Any] | None:
    """Run one control action on one device, or return None if this plugin does not handle it.

    ``request.device`` is the inventory entry (it names the driver that identified it),
    ``request.action`` one of :class:`webbo.agent.core.contract.Action` and ``request.params``
    its parameters. Return a coroutine (not its result: pluggy cannot await) that performs the
    action and returns the value the API reports as ``payload`` (``None`` for "done"), or raises
    :class:`webbo.agent.core.errors.DeviceError` with a message the operator can act on.

    Every implementation is called; the first one that returns a coroutine wins, the others'
    coroutines are closed unawaited. Plugins registered later are asked first, so a third-party
    plugin can take over an action for a make that a built-in plugin also handles.
    """


@hookspec
def webbo_simulators() -> list[SimulatorType]:
    """Simulated devices this plugin can run (``webbo simulate``, the demo and the tests)."""


@hookspec(firstresult=True)
def webbo_serial_backend(context: Any) -> SerialBackend | None:
    """The object behind ``/api/serial/*``: lists ports and adds, lists and removes meters.

    ``context`` is the running agent. Return None when this plugin does not provide one.
    (``firstresult`` is safe here: the result is a plain object, never a coroutine.)
    """
