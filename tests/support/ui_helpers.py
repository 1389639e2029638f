"""Helpers for the web UI tests: logging in over plain HTTP, reading tokens out of pages,
filling an inventory with made-up miners (for paging/sorting at thousands), and the Chromium
launch the browser tests use (Debian's /usr/bin/chromium; a browser is never downloaded)."""

from __future__ import annotations

import random
import re
import time
from typing import Any

import aiohttp
from project import ARTIFACTS

from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.model import (
    BoardReading,
    ErrorCode,
    LedStatus,
    PoolReading,
    Reading,
    WorkMode,
)

PASSWORD = "correct horse battery"
SCREENSHOTS = ARTIFACTS / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]

_TOKEN = re.compile(r'name="_csrf" value="([^"]+)"')


def token_in(html: str) -> str:
    match = _TOKEN.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


async def login(session: aiohttp.ClientSession, url: str, user: str = "miner",
                password: str = PASSWORD) -> aiohttp.ClientResponse:
    """GET the login page (pre-session cookie + token), POST the form; returns the answer to
    the POST (not following the redirect)."""
    async with session.get(f"{url}/login") as page:
        token = token_in(await page.text())
    form = {"_csrf": token, "username": user, "password": password, "next": "/miners"}
    async with session.post(f"{url}/login", data=form, allow_redirects=False) as answer:
        await answer.read()
        return answer


async def page_token(session: aiohttp.ClientSession, url: str, path: str = "/security") -> str:
    async with session.get(url + path) as page:
        assert page.status == 200, (path, page.status)
        return token_in(await page.text())


MODELS = [("Antminer", "Antminer S19", 95.0, 3250.0), ("Antminer", "Antminer S21", 200.0, 3500.0),
          ("Whatsminer", "M50S", 126.0, 3276.0), ("Whatsminer", "M60", 172.0, 3422.0)]


def fake_devices(count: int, seed: int = 3, groups: int = 4, racks: int = 5) -> list[Device]:
    """``count`` miners with varied readings and places on 127.56.x.y (made up in memory: no
    device answers there, nothing is swept)."""
    rng = random.Random(seed)
    now = time.time()
    devices = []
    for i in range(count):
        make, model, expected, power = MODELS[i % len(MODELS)]
        ip = f"127.56.{i // 250}.{i % 250 + 1}"
        mac = "02:56:" + ":".join(f"{i >> s & 255:02x}" for s in (24, 16, 8, 0))
        state = rng.choices(["ok", "unreachable", "error", "new"], [85, 7, 5, 3])[0]
        group = i * groups // count
        rack = (i * groups * racks // count) % racks
        reading = None
        if state == "ok":
            hashrate = expected * rng.uniform(0.4, 1.05)
            reading = Reading(
                time_ns=int(now * 1e9), hashrate_ths=round(hashrate, 2),
                expected_hashrate_ths=expected, power_w=power * rng.uniform(0.9, 1.05),
                temp_board_max_c=rng.uniform(50, 75), temp_chip_max_c=rng.uniform(60, 105),
                fans_rpm=[rng.randint(3000, 6000) for _ in range(4)],
                uptime_s=rng.randint(60, 900_000), work_mode=WorkMode.NORMAL,
                led=LedStatus.BLINK if i % 97 == 0 else LedStatus.NORMAL,
                boards=[BoardReading(index=b, hashrate_ths=hashrate / 3) for b in range(3)],
                pools=[PoolReading(index=0, url="stratum+tcp://pool.example:3333",
                                   user=f"farm.{i}", active=True)],
                errors=[ErrorCode(code="R:1", message="fan slow")] if i % 50 == 0 else [])
        devices.append(Device(
            mac=mac, ip=ip, driver="bitmain_http" if make == "Antminer" else "whatsminer",
            make=make, model=model, firmware=f"fw-{i % 7}", group=f"room {group}",
            group_id=f"g{group}", range=f"rack {group}.{rack}", range_id=f"r{group}.{rack}",
            state=state, error="" if state in ("ok", "new") else "no answer", reading=reading,
            first_seen=now - 3600, last_seen=now))
    return devices


def fill(fleet: Any, devices: list[Device]) -> None:
    inventory = fleet.inventory
    for device in devices:
        inventory.by_mac[device.mac] = device
        inventory.by_ip[device.ip] = device
