"""Input ``cgminer``: any cgminer-compatible RPC on TCP 4028 (bmminer included).

The plugin module: registers the ``cgminer`` miner driver (:mod:`.driver`, control in
:mod:`.control`) and the ``cgminer`` family of simulated devices (:mod:`.sim`). The RPC itself
is shared protocol code: :mod:`webbo.plugins.common.rpc4028`.
"""

from __future__ import annotations

from typing import Any

from webbo.agent.plugin import InputType, SimOptions, SimulatorType, hookimpl, miner_driver
from webbo.plugins.inputs.cgminer.config import CgminerConfig
from webbo.plugins.inputs.cgminer.driver import CgminerDriver


@hookimpl
def webbo_inputs() -> list[InputType]:
    return [miner_driver(CgminerDriver, CgminerConfig,
                         "any cgminer-compatible RPC on 4028 (generic fallback)")]


async def _start_sim(addresses: list[str], options: SimOptions) -> Any:
    from webbo.plugins.inputs.cgminer.sim import start  # only when simulating

    return await start(addresses, options)


def _reads_with(options: SimOptions) -> list[tuple[str, dict[str, Any]]]:
    """The simulated devices grant privileged RPC and SSH (root/admin) on their SSH port."""
    return [("cgminer", {"write_access": True, "ssh_user": "root", "ssh_password": "admin",
                         "ssh_port": int(options.extra.get("ssh_port", 2222))})]


@hookimpl
def webbo_simulators() -> list[SimulatorType]:
    return [SimulatorType("cgminer", "miner", _start_sim,
                          "generic cgminer devices (Avalon-like and bare), RPC 4028 + SSH",
                          weight=0.05, reads_with=_reads_with)]
