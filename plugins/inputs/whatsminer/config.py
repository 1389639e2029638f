"""``[[inputs.whatsminer]]``: credentials, ports and time limits of the Whatsminer driver.

Several instances can carry different passwords per group or range of ``[network]`` (see
:class:`~webbo.agent.plugin.MinerInputConfig`); keep passwords out of the file with
``password = "${WHATSMINER_ADMIN_PASSWORD}"``.
"""

from __future__ import annotations

from collections.abc import Iterator

from webbo.agent.plugin import ConfigError, Duration, MinerInputConfig

__all__ = ["APIS", "WhatsminerConfig"]

APIS = ("auto", "v2", "v3")
MINER_TOKEN_LIFE = 30 * 60.0
"""A v2 token dies on the miner 30 minutes after it was issued."""


class WhatsminerConfig(MinerInputConfig, kw_only=True):
    """``[[inputs.whatsminer]]``."""

    password: str = "admin"
    """API v2 admin password (writes on port 4028). Factory default "admin"."""
    v3_account: str = "super"
    """API v3 account that writes (super, user1, user2, user3)."""
    v3_password: str = "super"
    """Password of ``v3_account`` (writes on port 4433). Factory default "super"."""
    port: int = 4028
    v3_port: int = 4433
    api: str = "auto"
    """"auto": v3 for firmware dated 2024-11-01 or later (or when port 4433 answers), else
    v2; "v2" or "v3" forces one."""
    timeout: Duration | None = None
    """Time limit of one read; default [agent] timeout."""
    write_timeout: Duration = Duration(10.0)
    """Time limit of one write (its answer); past it the outcome is reported unknown."""
    raw_writes: bool = False
    """Let /api/mining/miners/command send write commands of the miners' own API as they are
    (v2 encrypted writes such as ``power_off``, v3 ``set.*``). Reads are always allowed."""
    confirm_timeout: Duration = Duration(30.0)
    """How long a change (LED, work mode, pools) may take to show before it is reported
    failed."""
    token_lifetime: Duration = Duration(25 * 60.0)
    """Renew the v2 write token this long after fetching it (the miner's lasts 30 minutes)."""
    settings_every: int = 10
    """Read what only changes when someone changes it (LED, host name; v3 power-mode setting)
    every this many polls; the agent's own control actions show at once."""

    def check(self) -> Iterator[ConfigError]:
        for name in ("port", "v3_port"):
            if not 0 < getattr(self, name) < 65536:
                yield ConfigError(name, "must be a TCP port, 1 to 65535")
        if self.api not in APIS:
            yield ConfigError("api", f'expected "auto", "v2" or "v3", got {self.api!r}')
        if not 0 < self.token_lifetime < MINER_TOKEN_LIFE:
            yield ConfigError("token_lifetime",
                              "must be longer than 0s and shorter than the miner's 30m")
        for name in ("write_timeout", "confirm_timeout"):
            if getattr(self, name) <= 0:
                yield ConfigError(name, "must be longer than 0s")
        if self.timeout is not None and self.timeout <= 0:
            yield ConfigError("timeout", "must be longer than 0s")
        if self.settings_every < 1:
            yield ConfigError("settings_every", "must be at least 1")
        if not self.v3_account:
            yield ConfigError("v3_account", "must not be empty")
