"""Control of generic cgminer devices, where the firmware allows it.

* pools: privileged RPC (``addpool``/``switchpool``/``removepool``) when the instance says the
  firmware grants write access (``write_access = true``); read back through ``pools``. RPC never
  reveals pool passwords, so ``get_pools`` answers them as empty strings;
* reboot: SSH (asyncssh) when ``ssh_user``/``ssh_password`` are configured;
* LED and work mode: cgminer has no generic command for them, so the driver does not offer
  them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from webbo.agent.plugin import (
    Action,
    Device,
    DeviceError,
    DeviceTimeout,
    DeviceUnreachable,
    MinerDriver,
    MiningPool,
    OutcomeUnknownError,
)
from webbo.plugins.common.rpc4028 import client as rpc
from webbo.plugins.common.rpc4028.parse import parse_pools
from webbo.plugins.inputs.cgminer.config import CgminerConfig

__all__ = ["CgminerControl"]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,")


class CgminerControl(MinerDriver):
    """The control actions of the ``cgminer`` driver (its base class)."""

    config: CgminerConfig
    timeout: float | None

    def supports(self, device: Device | None = None) -> frozenset[Action]:
        offered = {Action.GET_POOLS, Action.RAW}
        if self.config.write_access:
            offered.add(Action.SET_POOLS)
        if self.config.ssh_user and self.config.ssh_password:
            offered.add(Action.REBOOT)
        return frozenset(offered)

    def why_unsupported(self, action: Action, device: Device) -> str:
        if action == Action.SET_POOLS:
            return ("without privileged RPC (set write_access = true in [[inputs.cgminer]] if "
                    "the firmware grants it)")
        if action == Action.REBOOT:
            return "without SSH (set ssh_user and ssh_password in [[inputs.cgminer]])"
        return ""

    async def raw(self, device: Device, command: str, params: dict[str, Any],
                  write: bool) -> Any:
        return await rpc.raw_call(self.net, device.ip, command, params, write=write,
                                  writes_allowed=self.config.raw_writes,
                                  setting="[[inputs.cgminer]] raw_writes",
                                  port=self.config.port, timeout=self.timeout)

    async def get_pools(self, device: Device) -> list[MiningPool]:
        reply = await rpc.call(self.net, device.ip, "pools", port=self.config.port,
                               timeout=self.timeout)
        pools = sorted(parse_pools(reply), key=lambda p: p.index)
        slots = [MiningPool(address=p.url, worker=p.user, passwd="") for p in pools[:3]]
        while len(slots) < 3:
            slots.append(MiningPool(address="", worker="", passwd=""))
        return slots

    async def _privileged(self, device: Device, command: str, parameter: str
                          ) -> dict[str, Any]:
        try:
            return await rpc.call(self.net, device.ip, command, parameter,
                                  port=self.config.port, timeout=self.timeout)
        except rpc.RpcError as exc:
            if exc.code == 45:
                raise DeviceError(f"set_pools: the firmware of {device.model} denies privileged "
                                  f"RPC ({command}); grant W: in its api-allow") from None
            raise DeviceError(f"set_pools: {exc}") from None
        except DeviceTimeout:
            raise OutcomeUnknownError(f"set_pools: no answer to {command}; the pools may be "
                                      "half changed, read them back before retrying") from None

    async def set_pools(self, device: Device, pools: list[MiningPool]) -> None:
        if not self.config.write_access:
            raise self.unsupported(Action.SET_POOLS, device)
        wanted = [p for p in pools if p.address.strip()]
        if not wanted:
            raise DeviceError("set_pools: at least one pool with an address is needed")
        before = await rpc.call(self.net, device.ip, "pools", port=self.config.port,
                                timeout=self.timeout)
        old = len(parse_pools(before))
        for pool in wanted:
            await self._privileged( device, "addpool", ",".join(
                _escape(value) for value in (pool.address, pool.worker, pool.passwd)))
        await self._privileged( device, "switchpool", str(old))
        for _ in range(old):
            await self._privileged( device, "removepool", "0")
        after = parse_pools(await rpc.call(self.net, device.ip, "pools", port=self.config.port,
                                           timeout=self.timeout))
        got = [(p.url, p.user) for p in sorted(after, key=lambda p: p.index)]
        want = [(p.address, p.worker) for p in wanted]
        if got != want:
            raise DeviceError(f"set_pools: the device reports {got} after the change, not {want}")

    async def reboot(self, device: Device) -> None:
        cfg = self.config
        if not (cfg.ssh_user and cfg.ssh_password):
            raise self.unsupported(Action.REBOOT, device)
        import asyncssh  # a heavy import, only when a reboot really runs

        try:
            async with self.net.slot(), asyncio.timeout(float(cfg.ssh_timeout)):
                conn = await asyncssh.connect(
                    device.ip, cfg.ssh_port, username=cfg.ssh_user, password=cfg.ssh_password,
                    known_hosts=None, client_keys=None, agent_path=None,
                    connect_timeout=float(self.net.connect_timeout) * 3)
                async with conn:
                    try:
                        result = await conn.run(cfg.ssh_reboot_command, check=False)
                    except (asyncssh.ConnectionLost, asyncssh.DisconnectError):
                        return  # the device went down while running it: that is a reboot
        except asyncssh.PermissionDenied:
            raise DeviceError("reboot: SSH login refused (check ssh_user/ssh_password)") from None
        except (OSError, asyncssh.Error) as exc:
            raise DeviceUnreachable(f"reboot: SSH to {device.ip}:{cfg.ssh_port} failed: "
                                    f"{exc}") from None
        except TimeoutError:
            raise OutcomeUnknownError("reboot: SSH timed out; the device may or may not "
                                      "reboot") from None
        if result.exit_status not in (0, None):
            message = str(result.stderr or result.stdout or "").strip()[:200]
            raise DeviceError(f"reboot: {cfg.ssh_reboot_command!r} failed with exit status "
                              f"{result.exit_status}: {message}")
