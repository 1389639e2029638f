"""``[[inputs.cgminer]]``: the settings of the generic cgminer driver."""

from __future__ import annotations

from typing import Any

from webbo.agent.plugin import ConfigError, Duration, MinerInputConfig

__all__ = ["CgminerConfig"]


class CgminerConfig(MinerInputConfig, kw_only=True):
    """``[[inputs.cgminer]]``."""

    port: int = 4028
    timeout: Duration | None = None
    """Time limit of one RPC request (default: [agent] timeout)."""
    multi_command: bool = True
    """Ask several report commands in one ``a+b+c`` request (falls back per device)."""
    write_access: bool = False
    """The firmwares here grant privileged RPC (``W:`` in api-allow): pools can be changed."""
    raw_writes: bool = False
    """Let /api/mining/miners/command send commands that change the device (privileged RPC:
    ``restart``, ``ascset``, pool commands, ...). Reads are always allowed."""
    ssh_user: str = ""
    """With ssh_password: reboot through SSH."""
    ssh_password: str = ""
    ssh_port: int = 22
    ssh_reboot_command: str = "reboot"
    ssh_timeout: Duration = Duration(10.0)

    def check(self) -> Any:
        for key in ("port", "ssh_port"):
            if not 0 < getattr(self, key) < 65536:
                yield ConfigError(key, "must be a TCP port (1-65535)")
        if bool(self.ssh_user) != bool(self.ssh_password):
            yield ConfigError("ssh_password" if self.ssh_user else "ssh_user",
                              "ssh_user and ssh_password go together")
