"""Helpers for the miner tests: simulated devices on private loopback blocks, and an agent
config over them. Real sockets, real simulators; nothing mocked."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from webbo.agent.core.agent import Agent
from webbo.agent.core.config import parse_config
from webbo.agent.core.contract import SimOptions
from webbo.agent.fleet.control import Controller
from webbo.agent.fleet.discovery import MinerFleet
from webbo.agent.fleet.driver import Action

# 127.3.0.0/16 belongs to these tests (issue 3); each test takes its own /24.
_blocks = itertools.count((os.getpid() * 7) % 200 + 1)


def block() -> str:
    """A fresh 127.3.N.0/24 prefix ("127.3.N.") for one test."""
    return f"127.3.{next(_blocks) % 250 + 1}."


@contextlib.asynccontextmanager
async def family(registry: Any, name: str, addresses: list[str], *, http_port: int = 8080,
                 faults: dict[str, float] | None = None, seed: int = 1,
                 **extra: Any) -> AsyncIterator[Any]:
    """One simulator family running on ``addresses`` for the duration of the block."""
    # The draw follows sleep and wake-up at once here (the power tests set their own pace).
    options = SimOptions(seed=seed, http_port=http_port, faults=faults or {},
                         extra={"conf_delay": 0.05, "reboot_seconds": 1.0, "slow_delay": 8.0,
                                "ssh_port": 2222, "power": {"speed": 1e9}, **extra})
    sim = await registry.simulators[name].start(addresses, options)
    try:
        yield sim
    finally:
        await sim.close()


def config_text(first: str, last: str, state_dir: Path, *, extra_inputs: str = "",
                bitmain: str = "web_port = 8080", cgminer: str = "", agent: str = "",
                timeout: str = "3s",
                second_range: tuple[str, str] | None = None) -> str:
    ranges = (f'[[network.ip_range_groups]]\nname = "room A"\n'
              f'[[network.ip_range_groups.ip_ranges]]\nname = "rack 1"\n'
              f'first = "{first}"\nlast = "{last}"\n')
    if second_range:
        ranges += (f'[[network.ip_range_groups]]\nname = "room B"\n'
                   f'[[network.ip_range_groups.ip_ranges]]\nname = "rack 2"\n'
                   f'first = "{second_range[0]}"\nlast = "{second_range[1]}"\n')
    return (f'[agent]\ninterval = "1h"\ntimeout = "{timeout}"\nconnect_timeout = "1s"\n'
            f'internal_metrics = false\nwatch_config = false\n{agent}\n'
            f'[web]\nenabled = false\nstate_dir = "{state_dir}"\n'
            f'{ranges}'
            f'[[inputs.bitmain_http]]\n{bitmain}\n'
            f'[[inputs.cgminer]]\n{cgminer}\n{extra_inputs}')


def make_agent(registry: Any, text: str, path: Path | None = None) -> Agent:
    if path is not None:
        path.write_text(text)
    config = parse_config(text, registry, path=str(path) if path else None)
    return Agent(registry, config)


async def sweep(agent: Agent, sink: list | None = None) -> MinerFleet:
    """One sweep through the agent's own core input (as ``webbo run`` does each interval)."""
    await agent.gather_all_once(sink.append if sink is not None else (lambda m: None))
    return agent.services["miners"]


async def control(agent: Agent, mac: str, action: str, **params: Any) -> Any:
    """Run one control action on one device as the API's tasks do (the controller calls the
    method of the driver that owns the device); its payload, or the DeviceError it raised."""
    fleet = agent.service(MinerFleet)
    controller = agent.service(Controller)
    assert fleet is not None and controller is not None
    device = fleet.inventory.get(mac)
    assert device is not None, f"{mac} is not in the inventory"
    return await controller.call(device, Action(action), params)


async def wait_for(predicate: Callable[[], Any], timeout: float = 30.0,
                   interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
