"""Helpers of the Whatsminer tests: simulated miners on fresh loopback addresses, a driver.

Each test gets its own 127.4.X.0/24 block (X random per process, then counting), so tests and
concurrent test runs on this machine do not meet on one address.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import random
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog

from webbo.agent.core.contract import SimOptions
from webbo.agent.fleet.driver import DriverContext
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.model import Identity
from webbo.agent.fleet.net import Net, Probe
from webbo.plugins.inputs.whatsminer import sim
from webbo.plugins.inputs.whatsminer.config import WhatsminerConfig
from webbo.plugins.inputs.whatsminer.driver import WhatsminerDriver

_blocks = itertools.count(random.randrange(256))


def addresses(count: int) -> list[str]:
    block = next(_blocks) % 256
    return [f"127.4.{block}.{i}" for i in range(1, count + 1)]


@contextlib.asynccontextmanager
async def running(count: int = 1, *, http_port: int = 0, faults: dict[str, float] | None = None,
                  quirks: dict[str, float] | None = None, seed: int = 0,
                  **family: Any) -> AsyncIterator[sim.WhatsminerSimulation]:
    """``count`` simulated Whatsminers (family options as keywords, e.g. profiles=["m60"];
    ``faults_by_ip`` and ``quirks_by_ip`` may be lists: the faults (quirks) of the first
    devices, in order)."""
    family.setdefault("reboot_seconds", 0.3)
    family.setdefault("slow_seconds", 1.0)
    for attempt in range(8):
        ips = addresses(count)
        if "faults_by_ip" in family and isinstance(family["faults_by_ip"], list):
            family = {**family, "faults_by_ip": dict(zip(ips, family["faults_by_ip"],
                                                         strict=False))}
        if "quirks_by_ip" in family and isinstance(family["quirks_by_ip"], list):
            family = {**family, "quirks_by_ip": {
                ip: [q] if isinstance(q, str) else q
                for ip, q in zip(ips, family["quirks_by_ip"], strict=False)}}
        try:
            simulation = await sim.start(ips, SimOptions(seed=seed, http_port=http_port,
                                                         faults=faults or {},
                                                         extra={"whatsminer": family,
                                                                "quirks": quirks or {}}))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE and attempt < 7:
                continue
            raise
        break
    try:
        yield simulation
    finally:
        await simulation.close()


def make_driver(state_dir: Path | None = None, net: Net | None = None,
                **config: Any) -> WhatsminerDriver:
    config.setdefault("confirm_timeout", 3.0)
    config.setdefault("write_timeout", 3.0)
    cfg = WhatsminerConfig(**config)
    state_dir = state_dir or Path(tempfile.mkdtemp(prefix="webbo-wm-test-"))
    context = DriverContext(config=None, state_dir=state_dir,  # type: ignore[arg-type]
                            log=structlog.get_logger(), net=net or Net(64, 1.0, 3.0))
    return WhatsminerDriver(cfg, context)


async def identify(driver: WhatsminerDriver, ip: str) -> Identity | None:
    return await driver.identify(Probe(driver.net, ip, driver.ports))


def device_of(identity: Identity, ip: str) -> Device:
    return Device(mac=identity.mac, ip=ip, driver=identity.driver, make=identity.make,
                  model=identity.model, firmware=identity.firmware, extra=dict(identity.extra))


async def known(driver: WhatsminerDriver, ip: str) -> Device:
    identity = await identify(driver, ip)
    assert identity is not None, ip
    return device_of(identity, ip)
