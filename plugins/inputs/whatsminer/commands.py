"""The typed allow-list behind ``Action.COMMAND`` for Whatsminers.

Only these writes of the whatsminer library (beyond the actions every make has) can be reached
through the API, each with its arguments checked here before anything is sent; an unknown name
or argument is refused. There is no pass-through of arbitrary commands: a control API must not
become a way to factory-reset, re-address or re-flash a farm.

Each entry knows how to say itself on API v2 (command + parameters, values as strings where
the firmware wants strings) and on API v3 (command + ``param``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from webbo.plugins.inputs.whatsminer.errors import NotAllowed

__all__ = ["COMMANDS", "Command", "parse_command"]

_HOSTNAME = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_ZONE = re.compile(r"^[A-Za-z0-9_+\-/:.]{1,64}$")

Percent = Annotated[int, msgspec.Meta(ge=0, le=100)]
SignedPercent = Annotated[int, msgspec.Meta(ge=-100, le=100)]
Watts = Annotated[int, msgspec.Meta(ge=0, le=99999)]


class _Args(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    def check(self) -> str | None:
        """A reason to refuse these arguments, or None."""
        return None


class NoArgs(_Args):
    pass


class PercentArgs(_Args):
    percent: Percent


class FreqArgs(_Args):
    percent: SignedPercent


class PowerLimitArgs(_Args):
    power_limit: Watts


class HostnameArgs(_Args):
    hostname: str

    def check(self) -> str | None:
        if not _HOSTNAME.match(self.hostname):
            return "hostname: letters, digits and '-', 1 to 63 characters, no '-' at either end"
        return None


class ZoneArgs(_Args):
    timezone: str
    zonename: str

    def check(self) -> str | None:
        for name in ("timezone", "zonename"):
            if not _ZONE.match(getattr(self, name)):
                return f"{name}: a time zone such as \"CST-8\" or \"Asia/Shanghai\""
        return None


class PowerOffArgs(_Args):
    respbefore: bool = True
    """True: the miner answers before it stops (so the result is known)."""


@dataclass(frozen=True)
class Command:
    """One allow-listed command: its argument Struct and its two wire forms."""

    name: str
    args: type[_Args]
    v2: Callable[[Any], tuple[str, dict[str, Any]]]
    v3: Callable[[Any], tuple[str, Any]]
    """(command, param); param ``None`` means the command takes none."""
    closes: Callable[[Any], bool] = lambda args: False
    """True when the miner may hang up instead of answering (that is then success)."""
    doc: str = ""


def _same(name: str) -> Callable[[Any], tuple[str, dict[str, Any]]]:
    return lambda args: (name, {})


COMMANDS: dict[str, Command] = {c.name: c for c in (
    Command("set_target_freq", FreqArgs,
            lambda a: ("set_target_freq", {"percent": str(a.percent)}),
            lambda a: ("set.miner.target_freq", a.percent),
            doc="raise or lower the chips' target frequency by -100..100 %"),
    Command("set_power_pct", PercentArgs,
            lambda a: ("set_power_pct", {"percent": str(a.percent)}),
            lambda a: ("set.miner.power_percent", {"percent": str(a.percent), "mode": "normal"}),
            doc="run at 0..100 % of the power limit until the next restart"),
    Command("adjust_power_limit", PowerLimitArgs,
            lambda a: ("adjust_power_limit", {"power_limit": str(a.power_limit)}),
            lambda a: ("set.miner.power_limit", a.power_limit),
            doc="set the power limit in W (the mining software restarts)"),
    Command("restart_btminer", NoArgs, _same("restart_btminer"),
            lambda a: ("set.miner.service", "restart"),
            doc="restart the mining software"),
    Command("enable_btminer_fast_boot", NoArgs, _same("enable_btminer_fast_boot"),
            lambda a: ("set.miner.fastboot", "enable"),
            doc="start hashing without re-tuning after a restart"),
    Command("disable_btminer_fast_boot", NoArgs, _same("disable_btminer_fast_boot"),
            lambda a: ("set.miner.fastboot", "disable"),
            doc="re-tune after every restart"),
    Command("set_zone", ZoneArgs,
            lambda a: ("set_zone", {"timezone": a.timezone, "zonename": a.zonename}),
            lambda a: ("set.system.timezone", {"timezone": a.timezone, "zonename": a.zonename}),
            doc="set the time zone"),
    Command("set_hostname", HostnameArgs,
            lambda a: ("set_hostname", {"hostname": a.hostname}),
            lambda a: ("set.system.hostname", {"hostname": a.hostname}),
            doc="set the host name"),
    Command("power_on", NoArgs, _same("power_on"),
            lambda a: ("set.miner.service", "start"),
            doc="start hashing (leave sleep)"),
    Command("power_off", PowerOffArgs,
            lambda a: ("power_off", {"respbefore": "true" if a.respbefore else "false"}),
            lambda a: ("set.miner.service", "stop"),
            closes=lambda a: not a.respbefore,
            doc="stop hashing; the control board stays up"),
)}


def parse_command(params: Any) -> tuple[Command, _Args]:
    """``{"name": ..., "args": {...}}`` → the allow-listed command and its checked arguments.
    Raises :class:`NotAllowed` with the reason."""
    if not isinstance(params, dict):
        raise NotAllowed("command: expected {\"name\": ..., \"args\": {...}}")
    name = params.get("name")
    command = COMMANDS.get(name) if isinstance(name, str) else None
    if command is None:
        raise NotAllowed(f"command: {name!r} is not allowed on Whatsminers; allowed: "
                         + ", ".join(sorted(COMMANDS)))
    raw = params.get("args")
    raw = {} if raw is None else raw
    try:
        args = msgspec.convert(raw, type=command.args, strict=False)
    except msgspec.ValidationError as exc:
        raise NotAllowed(f"command {command.name}: {exc}") from None
    reason = args.check()
    if reason:
        raise NotAllowed(f"command {command.name}: {reason}")
    return command, args
