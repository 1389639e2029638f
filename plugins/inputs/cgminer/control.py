"""Control of generic cgminer devices, where the firmware allows it.

* pools: privileged RPC (``addpool``/``switchpool``/``removepool``) when the instance says the
  firmware grants write access (``write_access = true``); read back through ``pools``. RPC never
  reveals pool passwords, so ``get_pools`` answers them as empty strings;
* reboot: SSH (asyncssh) when ``ssh_user``/``ssh_password`` are configured;
* LED and work mode: cgminer has no generic command for them, so they are refused by name.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh

from webbo.agent.core.contract import Action
from webbo.agent.core.errors import DeviceError, OutcomeUnknownError
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.net import DeviceTimeout, DeviceUnreachable
from webbo.plugins.common.rpc4028 import client as rpc
from webbo.plugins.inputs.cgminer.driver import CgminerDriver
from webbo.plugins.inputs.cgminer.glue import pools_param
from webbo.plugins.inputs.cgminer.parse import parse_pools

__all__ = ["run_action"]


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,")


async def get_pools(driver: CgminerDriver, device: Device) -> list[dict[str, str]]:
    reply = await rpc.call(driver.net, device.ip, "pools", port=driver.config.port,
                           timeout=driver.timeout)
    pools = sorted(parse_pools(reply), key=lambda p: p.index)
    slots = [{"address": p.url, "worker": p.user, "passwd": ""} for p in pools[:3]]
    while len(slots) < 3:
        slots.append({"address": "", "worker": "", "passwd": ""})
    return slots


async def _privileged(driver: CgminerDriver, device: Device, command: str, parameter: str
                      ) -> dict[str, Any]:
    try:
        return await rpc.call(driver.net, device.ip, command, parameter,
                              port=driver.config.port, timeout=driver.timeout)
    except rpc.RpcError as exc:
        if exc.code == 45:
            raise DeviceError(f"set_pools: the firmware of {device.model} denies privileged "
                              f"RPC ({command}); grant W: in its api-allow") from None
        raise DeviceError(f"set_pools: {exc}") from None
    except DeviceTimeout:
        raise OutcomeUnknownError(f"set_pools: no answer to {command}; the pools may be "
                                  "half changed, read them back before retrying") from None


async def set_pools(driver: CgminerDriver, device: Device, pools: list[dict[str, Any]]) -> None:
    if not driver.config.write_access:
        raise DeviceError(f"set_pools: not supported by {device.model} without privileged RPC "
                          "(set write_access = true in [[inputs.cgminer]] if the firmware "
                          "grants it)")
    wanted = [p for p in pools if p and str(p.get("address", "")).strip()]
    if not wanted:
        raise DeviceError("set_pools: at least one pool with an address is needed")
    before = await rpc.call(driver.net, device.ip, "pools", port=driver.config.port,
                            timeout=driver.timeout)
    old = len(parse_pools(before))
    for pool in wanted:
        await _privileged(driver, device, "addpool", ",".join(
            _escape(str(pool.get(k, ""))) for k in ("address", "worker", "passwd")))
    await _privileged(driver, device, "switchpool", str(old))
    for _ in range(old):
        await _privileged(driver, device, "removepool", "0")
    after = parse_pools(await rpc.call(driver.net, device.ip, "pools", port=driver.config.port,
                                       timeout=driver.timeout))
    got = [(p.url, p.user) for p in sorted(after, key=lambda p: p.index)]
    want = [(str(p["address"]), str(p.get("worker", ""))) for p in wanted]
    if got != want:
        raise DeviceError(f"set_pools: the device reports {got} after the change, not {want}")


async def reboot(driver: CgminerDriver, device: Device) -> None:
    cfg = driver.config
    if not (cfg.ssh_user and cfg.ssh_password):
        raise DeviceError(f"reboot: not supported by {device.model} without SSH "
                          "(set ssh_user and ssh_password in [[inputs.cgminer]])")
    try:
        async with driver.net.slot(), asyncio.timeout(float(cfg.ssh_timeout)):
            conn = await asyncssh.connect(
                device.ip, cfg.ssh_port, username=cfg.ssh_user, password=cfg.ssh_password,
                known_hosts=None, client_keys=None, agent_path=None,
                connect_timeout=float(driver.net.connect_timeout) * 3)
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


async def run_action(driver: CgminerDriver, device: Device, action: Action,
                     params: dict[str, Any]) -> Any:
    if action == Action.REBOOT:
        return await reboot(driver, device)
    if action == Action.GET_POOLS:
        return await get_pools(driver, device)
    if action == Action.SET_POOLS:
        return await set_pools(driver, device, pools_param(params))
    raise DeviceError(f"{action}: not supported by {device.model}")
