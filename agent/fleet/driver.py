"""The miner-driver contract: one make's (or one firmware's) protocol as one typed object.

A driver is a subclass of :class:`MinerDriver`. It declares its ``name`` (the
``[[inputs.NAME]]`` table that configures it), its ``priority`` band and the ``ports`` it
listens for, and implements:

* ``identify(probe)``: claim an address (return an :class:`~webbo.agent.fleet.model.Identity`)
  or decline it (None). The :class:`~webbo.agent.fleet.net.Probe` is shared by every driver that
  looks at the address and memoises what was asked (``GET /``, RPC ``version``), so the cheap
  questions are asked once however many drivers ask them. Only the ports some driver declares
  are probed: a port missing from ``ports`` is never seen open.
* ``poll(device)``: read one known device into a :class:`~webbo.agent.fleet.model.Reading`
  (units fixed there), raising :class:`~webbo.agent.core.errors.DeviceError`
  (:class:`~webbo.agent.fleet.net.DeviceUnreachable` when nothing answered).
* the control actions it supports, as methods: ``reboot``, ``get_led``/``set_led``,
  ``get_work_mode``/``set_work_mode``, ``get_pools``/``set_pools``, ``set_power_limit``,
  ``command``. :meth:`MinerDriver.supports` tells which (by default: the methods the class
  overrides; a driver narrows it per device where its firmware or its settings decide), and
  the UI and the API ask it. The fleet's controller calls the method of the driver that owns
  the device directly; an action the driver lacks answers "not supported" for that device.

Drivers are registered as input types of kind ``"miner"``: :func:`miner_driver` makes one from
the driver class and its config Struct (a subclass of :class:`MinerInputConfig`).

Errors: :class:`~webbo.agent.core.errors.DeviceError` with a message for the operator
(``set_work_mode: low_power is not supported by Antminer S9``); a write whose effect is unknown
(a timeout or a reset after sending) raises
:class:`~webbo.agent.core.errors.OutcomeUnknownError` and is never retried blindly.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec

from webbo.agent.core.config import InputConfig
from webbo.agent.core.contract import InputType, PluginContext
from webbo.agent.core.errors import DeviceError
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.model import Identity, LedStatus, MiningPool, Reading, WorkMode
from webbo.agent.fleet.net import Net, Probe

__all__ = [
    "PRIORITY_FIRMWARE",
    "PRIORITY_GENERIC",
    "PRIORITY_MAKE",
    "Action",
    "DriverContext",
    "MinerDriver",
    "MinerInputConfig",
    "NotSupportedError",
    "miner_driver",
]

# -- priority bands: who is asked first to identify an address ---------------------------------

PRIORITY_FIRMWARE = 10
"""A driver that recognises one firmware by a signature only that firmware has (a custom
firmware on a known make, a make's own web interface). Asked first; a third-party driver for
an aftermarket firmware belongs here."""
PRIORITY_MAKE = 20
"""A make's stock protocol that other drivers could mistake for something generic (the
Whatsminer's btminer answers cgminer RPC too)."""
PRIORITY_GENERIC = 90
"""A generic fallback that claims whatever speaks a common protocol (any cgminer RPC). Asked
last. Within a band, drivers are asked in the order of their names."""


class Action(enum.StrEnum):
    """Control actions (manual §3.5). The value is the name of the driver's method.

    ====================  ==================================  ===============================
    action                method                              returns
    ====================  ==================================  ===============================
    reboot                ``reboot(device)``                  None
    get_led               ``get_led(device)``                 :class:`LedStatus`
    set_led               ``set_led(device, status)``         None
    get_work_mode         ``get_work_mode(device)``           :class:`WorkMode` (``UNKNOWN``
                                                              when the firmware does not say)
    set_work_mode         ``set_work_mode(device, mode)``     None, once the device *did* it
                                                              (read back where possible)
    get_pools             ``get_pools(device)``               three :class:`MiningPool`; an
                                                              empty slot has empty strings
    set_pools             ``set_pools(device, pools)``        None. The core has already merged
                                                              null slots and applied the worker
                                                              suffix: write all three as given,
                                                              then read back
    set_power_limit       ``set_power_limit(device, watts)``  None (power targets, where the
                                                              firmware has them)
    command               ``command(device, name, args)``     an allow-listed, typed extra
                                                              (e.g. Whatsminer set_target_freq)
    raw                   ``raw(device, command, params,      the device's reply, as JSON: a
                          write)``                            command of its own API, read-
                                                              only unless the driver's config
                                                              allows writes
    ====================  ==================================  ===============================
    """

    REBOOT = "reboot"
    GET_LED = "get_led"
    SET_LED = "set_led"
    GET_WORK_MODE = "get_work_mode"
    SET_WORK_MODE = "set_work_mode"
    GET_POOLS = "get_pools"
    SET_POOLS = "set_pools"
    SET_POWER_LIMIT = "set_power_limit"
    COMMAND = "command"
    RAW = "raw"


WRITE_ACTIONS = frozenset({Action.REBOOT, Action.SET_LED, Action.SET_WORK_MODE,
                           Action.SET_POOLS, Action.SET_POWER_LIMIT, Action.COMMAND,
                           Action.RAW})
"""Actions that change a device: an unknown outcome of one is never retried blindly."""


class NotSupportedError(DeviceError):
    """The driver (or this device's firmware, or the driver's settings) cannot do the action."""


class MinerInputConfig(InputConfig, kw_only=True):
    """Base of every miner driver's config (``[[inputs.NAME]]`` of a ``"miner"`` input).

    A driver instance serves the whole ``[network]`` unless ``groups`` or ``ranges`` narrow it
    down; several instances of one driver can so carry different credentials per room or rack.
    For a device, the most specific instance wins: one naming its range, then one naming its
    group, then one with no scope.
    """

    groups: list[str] = msgspec.field(default_factory=list)
    """Names or uuids of the groups this instance serves (empty: all)."""
    ranges: list[str] = msgspec.field(default_factory=list)
    """Names or uuids of the ranges this instance serves (empty: all)."""

    def scope_rank(self, group: str, group_id: str, range_: str, range_id: str) -> int | None:
        """How specifically this instance covers a place: 0 range, 1 group, 2 everywhere,
        None not at all."""
        if self.ranges:
            return 0 if (range_ in self.ranges or range_id in self.ranges) else None
        if self.groups:
            return 1 if (group in self.groups or group_id in self.groups) else None
        return 2


@dataclass
class DriverContext(PluginContext):
    """What a driver is built with: the plugin context plus the fleet's shared, bounded
    :class:`~webbo.agent.fleet.net.Net` (every socket of the sweep and of control goes through
    it, so ``[agent] concurrency`` holds for all drivers together)."""

    net: Net = field(default_factory=Net)


class MinerDriver:
    """Base of every miner driver (see the module's docstring for the contract)."""

    name: ClassVar[str]
    """The ``[[inputs.NAME]]`` table of this driver; also what the inventory records as the
    device's owner."""
    priority: ClassVar[int] = PRIORITY_MAKE
    """Its band (``PRIORITY_FIRMWARE``, ``PRIORITY_MAKE``, ``PRIORITY_GENERIC``)."""
    ports: tuple[int, ...] = ()
    """TCP ports this driver talks to (an instance sets them from its config). Identification
    only sees these ports open: a driver with none is refused at build."""
    make: ClassVar[str] = ""
    """The make it names in messages when the device does not say."""

    def __init__(self, config: Any, context: DriverContext) -> None:
        self.config = config
        self.context = context
        self.net = context.net

    # -- identification and polls -----------------------------------------------------------

    async def identify(self, probe: Probe) -> Identity | None:
        raise NotImplementedError

    async def poll(self, device: Device) -> Reading:
        raise NotImplementedError

    # -- control ---------------------------------------------------------------------------

    def supports(self, device: Device | None = None) -> frozenset[Action]:
        """The actions this driver can run on ``device`` (on its devices in general when None).

        By default: every action whose method the class overrides. Override to narrow it where
        a device's firmware or this instance's settings decide (no SSH credentials, no reboot).
        """
        return _overridden(type(self))

    async def reboot(self, device: Device) -> None:
        raise self.unsupported(Action.REBOOT, device)

    async def get_led(self, device: Device) -> LedStatus:
        raise self.unsupported(Action.GET_LED, device)

    async def set_led(self, device: Device, status: LedStatus) -> None:
        raise self.unsupported(Action.SET_LED, device)

    async def get_work_mode(self, device: Device) -> WorkMode:
        raise self.unsupported(Action.GET_WORK_MODE, device)

    async def set_work_mode(self, device: Device, mode: WorkMode) -> None:
        raise self.unsupported(Action.SET_WORK_MODE, device)

    async def get_pools(self, device: Device) -> list[MiningPool]:
        raise self.unsupported(Action.GET_POOLS, device)

    async def set_pools(self, device: Device, pools: list[MiningPool]) -> None:
        raise self.unsupported(Action.SET_POOLS, device)

    async def set_power_limit(self, device: Device, watts: int) -> None:
        raise self.unsupported(Action.SET_POWER_LIMIT, device)

    async def command(self, device: Device, name: str, args: dict[str, Any]) -> Any:
        raise self.unsupported(Action.COMMAND, device)

    async def raw(self, device: Device, command: str, params: dict[str, Any],
                  write: bool) -> Any:
        """Send ``command`` of the device's own API as it is (``params`` its parameters) and
        answer its reply. ``write`` asks for a command that changes the device: a driver runs
        those only where its config allows raw writes, and says which commands it counts as
        reads."""
        raise self.unsupported(Action.RAW, device)

    def unsupported(self, action: Action, device: Device, why: str = "") -> NotSupportedError:
        """The per-device error of an action this driver cannot run (``why``, or
        :meth:`why_unsupported`, says what would make it possible)."""
        make, model = device.make or self.make, device.model
        what = model if model.startswith(make) else f"{make} {model}".strip()
        why = why or self.why_unsupported(action, device)
        return NotSupportedError(f"{action.value}: not supported by {what or self.name}"
                                 + (f" {why}" if why else ""))

    def why_unsupported(self, action: Action, device: Device) -> str:
        """What would make ``action`` possible on ``device`` (a setting, a firmware), if
        anything: appended to the "not supported" error. Empty by default."""
        return ""


_ACTION_METHODS = tuple(action.value for action in Action)
_SUPPORTED: dict[type, frozenset[Action]] = {}


def _overridden(cls: type) -> frozenset[Action]:
    found = _SUPPORTED.get(cls)
    if found is None:
        found = frozenset(Action(name) for name in _ACTION_METHODS
                          if getattr(cls, name) is not getattr(MinerDriver, name))
        _SUPPORTED[cls] = found
    return found


def miner_driver(driver: type[MinerDriver], config: type[MinerInputConfig],
                 description: str = "",
                 factory: Callable[[Any, DriverContext], MinerDriver] | None = None
                 ) -> InputType:
    """The input type that registers ``driver`` (configured by ``[[inputs.<driver.name>]]``
    tables decoded as ``config``). ``factory`` defaults to the class itself."""
    return InputType(driver.name, config, factory or driver,  # type: ignore[arg-type]
                     description or (driver.__doc__ or "").strip().split("\n")[0],
                     kind="miner")
