"""Whatsminer failures, each with a message the operator can act on.

All are :class:`~webbo.agent.plugin.DeviceError` subclasses: they fail one device (one poll,
one control action), never the sweep or the task.
"""

from __future__ import annotations

from webbo.agent.plugin import DeviceError

ENABLE_V2 = ("enable it on the miner: in WhatsMinerTool change the admin password from the "
             "factory default, then turn on Remote Ctrl > Miner API Switch (API v2, port 4028)")
ENABLE_V3 = ("enable it on the miner: in WhatsMinerTool change the password of account "
             "'super' from the factory default and turn on the API switch (API v3, port 4433)")


class WriteApiDisabled(DeviceError):
    """The miner refuses every write: its API switch is off ("can't access write cmd")."""


class WrongPassword(DeviceError):
    """The miner could not use our encrypted command or token twice in a row: the configured
    password is not the miner's."""


class TokenLimit(DeviceError):
    """The miner hands out no more tokens to this host ("over max connect")."""


class CommandRefused(DeviceError):
    """The miner answered the command with an error code of its own."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class NotAllowed(DeviceError):
    """A ``command`` action named something outside the allow-list, or bad arguments."""
