"""Third-party clients judge the simulated Whatsminers: the ``whatsminer`` package (the seed
library) reads and writes encrypted, pyasic identifies and reads them. And where that library
falls short (token renewal, long replies), our driver does not."""

from __future__ import annotations

import asyncio
import datetime
import json
import warnings

import pyasic
import pytest
from whatsminer import WhatsminerAccessToken, WhatsminerAPI
from whatsminer_support import known, make_driver, running

from webbo.agent.fleet.control import invoke
from webbo.agent.fleet.driver import Action

# The whatsminer package is old: it calls passlib the deprecated way.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def test_whatsminer_package_reads_and_writes_encrypted():
    async with running(2, profiles=["m50", "m56s"], password="s3cret") as s:

        def use(ip: str) -> tuple[dict, dict, dict, dict]:
            token = WhatsminerAccessToken(ip_address=ip)
            summary = WhatsminerAPI.get_read_only_info(access_token=token, cmd="summary")
            token.enable_write_access(admin_password="s3cret")
            blink = WhatsminerAPI.exec_command(token, cmd="set_led", additional_params={
                "color": "red", "period": 200, "duration": 100, "start": 0})
            auto = WhatsminerAPI.exec_command(token, cmd="set_led",
                                              additional_params={"param": "auto"})
            off = WhatsminerAPI.exec_command(token, cmd="power_off",
                                             additional_params={"respbefore": "true"})
            return summary, blink, auto, off

        for described in s.devices:
            ip = described["ip"]
            summary, blink, auto, off = await asyncio.to_thread(use, ip)
            assert summary["SUMMARY"][0]["MAC"] == described["mac"]
            assert summary["SUMMARY"][0]["Temperature"] > 40
            for reply in (blink, auto, off):
                assert reply["STATUS"] == "S" and reply["Msg"] == "API command OK"
            state = s.device(ip)
            assert [c for c, _ in state.log] == ["set_led", "set_led", "power_off"]
            assert state.led == "auto" and state.mining is False


async def test_where_the_package_fails_our_driver_does_not():
    async with running(profiles=["m56s"], faults_by_ip=["oversized"]) as s:
        ip = s.devices[0]["ip"]

        def package_reads_errors() -> Exception | None:
            try:
                WhatsminerAPI.get_read_only_info(WhatsminerAccessToken(ip_address=ip),
                                                 cmd="get_error_code")
            except Exception as exc:  # it reads at most 4,000 bytes
                return exc
            return None

        assert isinstance(await asyncio.to_thread(package_reads_errors), json.JSONDecodeError)
        driver = make_driver()
        reading = await driver.poll(await known(driver, ip))
        assert len(reading.errors) > 100

    async with running(profiles=["m50"]) as s:
        ip = s.devices[0]["ip"]

        def package_after_30_minutes() -> Exception | None:
            token = WhatsminerAccessToken(ip_address=ip, admin_password="admin")
            token.created -= datetime.timedelta(minutes=31)
            try:
                WhatsminerAPI.exec_command(token, cmd="set_led",
                                           additional_params={"param": "auto"})
            except Exception as exc:  # its renewal calls itself with a stray argument
                return exc
            return None

        assert isinstance(await asyncio.to_thread(package_after_30_minutes), TypeError)
        now = [0.0]
        driver = make_driver()
        driver.v2.api.tokens.clock = lambda: now[0]
        device = await known(driver, ip)
        before = s.device(ip).token_requests  # the package's own token
        for _ in range(3):  # a write every 26 minutes: each on a token we renewed in time
            await invoke(driver, device, Action.SET_LED, {"status": 0})
            now[0] += 26 * 60
            s.clock.advance(26 * 60)
        assert s.device(ip).token_requests == before + 3
        assert [c for c, _ in s.device(ip).log] == ["set_led"] * 3


@pytest.mark.slow
async def test_pyasic_identifies_and_reads_the_simulated_whatsminers():
    async with running(5, http_port=80) as s:
        for described in s.devices:
            ip = described["ip"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                miner = await pyasic.get_miner(ip)
                assert miner is not None, ip
                data = await miner.get_data()
            state = s.device(ip)
            assert type(miner).__name__.startswith("BTMiner")
            expected_model = described["model"].replace("_", " ")
            assert data.model == expected_model[:-1] + "0"
            assert data.mac == described["mac"]
            assert data.fw_ver == described["firmware"]
            assert data.hashrate is not None and float(data.hashrate) > 50
            assert float(data.expected_hashrate) == state.profile.factory_ghs / 1000
            assert data.wattage == pytest.approx(state.profile.power_w, rel=0.03)
            assert data.wattage_limit == state.power_limit
            assert data.is_mining is True and data.fault_light is False
            if described["api"] == "v2":
                assert len(data.hashboards) == state.profile.boards
                assert [p.user for p in data.pools] == [p.user for p in state.pools]
