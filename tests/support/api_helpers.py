"""A whole stack for API tests: simulated miners on 127.x, the agent sweeping them, the web
server on a real socket, and an HTTP client with a fresh API key. Nothing is mocked."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from webbo.agent.core.agent import Agent
from webbo.agent.core.config import load_config
from webbo.agent.core.contract import SimOptions
from webbo.agent.core.plugins import PluginRegistry
from webbo.web.auth import create_api_key
from webbo.web.server import WebServer

JSON = {"Content-Type": "application/json"}

MANUAL_POOLS = [
    {"address": "stratum+tcp://super-puper.pool:1337", "worker": "john-doe.001",
     "passwd": "123456"},
    {"address": "stratum+tcp://super-puper.pool:31337", "worker": "john-doe.001",
     "passwd": "123456"},
    {"address": "stratum+tcp://super-puper.pool:42", "worker": "john-doe.001",
     "passwd": "123456"},
]
"""The pools of the manual's get-pools example (§3.5.7)."""


def config_text(state_dir: Path, ranges: list[tuple[str, str, str, str]], *,
                agent: str = "", web: str = "", inputs: str = "") -> str:
    """webbo.toml with one group per distinct group name: ranges = [(group, range, first,
    last)]."""
    defaults = [f'{k} = "{v}"' for k, v in (("interval", "1s"), ("connect_timeout", "1s"),
                                            ("timeout", "5s")) if f"{k} =" not in agent]
    lines = ["# test config: comments must survive API edits", "[agent]", *defaults, agent, "",
             "[web]", f'state_dir = "{state_dir}"', web, "", "[network]"]
    groups: dict[str, list[tuple[str, str, str]]] = {}
    for group, name, first, last in ranges:
        groups.setdefault(group, []).append((name, first, last))
    for group, items in groups.items():
        lines += ["[[network.ip_range_groups]]", f"name = {json.dumps(group)}"]
        for name, first, last in items:
            lines += ["[[network.ip_range_groups.ip_ranges]]", f"name = {json.dumps(name)}",
                      f'first = "{first}"', f'last = "{last}"']
    lines += ["", "## the miner drivers", inputs]
    return "\n".join(lines) + "\n"


@dataclass
class Stack:
    agent: Agent
    web: WebServer
    session: aiohttp.ClientSession
    key: str
    config_path: Path
    sims: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.web.url

    @property
    def fleet(self) -> Any:
        return self.agent.services["miners"]

    async def raw(self, path: str, body: bytes | str | None, headers: dict[str, str] | None = None,
                  method: str = "POST") -> tuple[int, Any]:
        hdrs = {"X-Api-Key": self.key, **JSON} if headers is None else headers
        async with self.session.request(method, self.url + path, data=body, headers=hdrs) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, text

    async def call(self, path: str, body: Any = None) -> tuple[int, Any]:
        return await self.raw(path, json.dumps({} if body is None else body, ensure_ascii=False))

    async def ok(self, path: str, body: Any = None) -> Any:
        status, answer = await self.call(path, body)
        assert status == 200 and answer["success"] is True, (path, status, answer)
        return answer["payload"]

    async def task(self, path: str, body: Any = None, timeout: float = 120.0) -> dict[str, Any]:
        """Start a task method and wait for its end; returns the final task-info payload."""
        task_id = (await self.ok(path, body))["task_id"]
        return await self.wait(task_id, timeout)

    async def wait(self, task_id: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            info = await self.ok("/api/task-info", {"task_id": task_id})
            if info["status"] != "pending":
                return info
            assert time.monotonic() < deadline, f"task {task_id} still pending"
            await asyncio.sleep(0.05)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 60.0,
                       what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.05)

    async def wait_inventory(self, count: int, timeout: float = 90.0) -> None:
        await self.wait_for(
            lambda: sum(1 for d in self.fleet.inventory.devices() if d.state == "ok") >= count,
            timeout, f"{count} miners polled ok")


async def start_sims(registry: PluginRegistry, family: str, addresses: list[str],
                     **extra: Any) -> Any:
    http_port = int(extra.pop("http_port", 8080))
    options = SimOptions(seed=7, http_port=http_port, extra=extra)
    return await registry.simulators[family].start(addresses, options)


@contextlib.asynccontextmanager
async def stack(tmp_path: Path, registry: PluginRegistry, text: str, *,
                sims: dict[str, Any] | None = None) -> AsyncIterator[Stack]:
    """Run the agent from ``text`` and its web server on a free port, with an API key."""
    path = tmp_path / "webbo.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path, registry)
    agent = Agent(registry, config)
    web = WebServer(agent, listen="127.0.0.1:0")
    await web.start()
    await agent.start(signals=False)
    key, _ = create_api_key(web.store, "tests")
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
    try:
        yield Stack(agent, web, session, key, path, dict(sims or {}))
    finally:
        await session.close()
        await web.stop()
        await agent.stop(flush_timeout=1)
