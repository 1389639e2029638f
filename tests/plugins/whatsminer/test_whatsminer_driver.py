"""The Whatsminer driver against simulated miners: identification, normalised polls, every
control action on API v2 and v3, token life, and each bad input as a clear per-device error."""

from __future__ import annotations

import pytest
from whatsminer_support import identify, known, make_driver, running

from webbo.agent.core.errors import DeviceError, OutcomeUnknownError
from webbo.agent.fleet.control import invoke
from webbo.agent.fleet.driver import Action
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.model import LedStatus, WorkMode
from webbo.agent.fleet.net import DeviceTimeout, DeviceUnreachable
from webbo.plugins.common.rpc4028.client import GarbledReply
from webbo.plugins.inputs.whatsminer.errors import (
    NotAllowed,
    TokenLimit,
    WriteApiDisabled,
    WrongPassword,
)


async def act(driver, device, action, **params):
    return await invoke(driver, device, Action(action), params)


# -- identification and polls -----------------------------------------------------------------


async def test_identifies_each_firmware_and_chooses_the_api():
    async with running(5) as s:
        driver = make_driver()
        for described in s.devices:
            identity = await identify(driver, described["ip"])
            assert identity is not None
            assert identity.driver == "whatsminer" and identity.make == "Whatsminer"
            assert identity.mac == described["mac"].lower()  # from get_miner_info / summary
            assert identity.model == described["model"]
            assert identity.firmware == described["firmware"]
            assert identity.extra["api"] == described["api"]  # by firmware date


async def test_v3_found_through_4433_alone_and_non_miners_ignored():
    async with running(profiles=["m60"]) as s:
        ip = s.devices[0]["ip"]
        only_v3 = make_driver(port=4029)  # nothing listens there: 4433 must answer alone
        identity = await identify(only_v3, ip)
        assert identity is not None and identity.extra["api"] == "v3"
        assert identity.model == "M60_VK40" and identity.serial == s.device(ip).serial
        assert await identify(make_driver(api="v2", port=4029), ip) is None
    async with running(profiles=["m56s"], faults_by_ip=["refuse"]) as s:
        assert await identify(make_driver(), s.devices[0]["ip"]) is None


async def test_v2_poll_is_normalised():
    async with running(profiles=["m56s"]) as s:
        ip = s.devices[0]["ip"]
        state = s.device(ip)
        state.errors = {"218": "2024-06-15 10:30:00", "531": "2024-06-16 08:00:00"}
        driver = make_driver()
        reading = await driver.poll(await known(driver, ip))
        assert reading.hashrate_ths == pytest.approx(212.0, rel=0.03)  # MHS 1m
        assert reading.expected_hashrate_ths == 212.0  # Factory GHS
        assert reading.power_w == pytest.approx(5550, rel=0.02)
        assert reading.power_limit_w == 5800 and reading.work_mode == WorkMode.NORMAL
        assert reading.temp_env_c == state.env_temp
        assert reading.fans_rpm == []  # hydro: both fans read 0
        assert reading.is_mining is True and reading.led == LedStatus.NORMAL
        assert len(reading.boards) == 4
        board = reading.boards[3]
        assert board.index == 3 and board.chips == 152
        assert board.hashrate_ths == pytest.approx(53.0, rel=0.03)
        assert board.temp_board_c is not None and board.temp_chip_c > board.temp_board_c
        assert [p.url for p in reading.pools] == [p.url for p in state.pools]
        assert reading.pools[0].active and reading.pools[0].user == state.pools[0].user
        assert [(e.code, e.time) for e in reading.errors] == [
            ("218", "2024-06-15 10:30:00"), ("531", "2024-06-16 08:00:00")]
        assert reading.firmware == "20240624.18.REL" and reading.hostname == "WhatsMiner"


async def test_older_firmwares_poll_too():
    async with running(2, profiles=["m30s", "m50"]) as s:
        old, mid = (d["ip"] for d in s.devices)
        for ip in (old, mid):
            s.device(ip).errors = {"111": "2024-06-15 10:30:00"}
        driver = make_driver()
        reading = await driver.poll(await known(driver, old))  # v1: codes in the summary
        assert [e.code for e in reading.errors] == ["111"] and reading.is_mining is True
        assert len(reading.fans_rpm) == 2 and reading.fan_psu_rpm
        reading = await driver.poll(await known(driver, mid))  # 2.0.4 list-shaped-dict codes
        assert [(e.code, e.time) for e in reading.errors] == [("111", "2024-06-15 10:30:00")]


async def test_v3_poll_is_normalised():
    async with running(profiles=["m60"]) as s:
        ip = s.devices[0]["ip"]
        s.device(ip).errors = {"531": "2025-03-12 14:52:35"}
        driver = make_driver()
        reading = await driver.poll(await known(driver, ip))
        assert reading.hashrate_ths == pytest.approx(172.0, rel=0.03)
        assert reading.expected_hashrate_ths == 172.0 and reading.power_limit_w == 3600
        assert len(reading.fans_rpm) == 2 and reading.fan_psu_rpm
        assert len(reading.boards) == 3 and reading.boards[0].chips == 180
        assert reading.boards[0].temp_board_c is not None
        assert reading.work_mode == WorkMode.NORMAL and reading.led == LedStatus.NORMAL
        assert reading.errors[0].code == "531" and reading.errors[0].message == "error 531"
        assert reading.firmware == "20250321.14.REL" and len(reading.pools) == 3


@pytest.mark.parametrize("quirk", ["no_multi", "trailing_comma", "newlines", "strings"])
async def test_polls_through_broken_json(quirk):
    async with running(profiles=["m56s"], quirks={quirk: 1.0}) as s:
        driver = make_driver()
        reading = await driver.poll(await known(driver, s.devices[0]["ip"]))
        assert reading.hashrate_ths == pytest.approx(212.0, rel=0.03)
        assert len(reading.boards) == 4 and len(reading.pools) == 3
        assert reading.work_mode == WorkMode.NORMAL and reading.led == LedStatus.NORMAL


@pytest.mark.parametrize("profile", ["m56s", "m60"])
async def test_settings_are_read_every_nth_poll_and_after_our_own_changes(profile):
    async with running(profiles=[profile]) as s:
        ip = s.devices[0]["ip"]
        driver = make_driver(settings_every=3)
        device = await known(driver, ip)
        assert (await driver.poll(device)).led == LedStatus.NORMAL
        s.device(ip).led = [{"color": "green", "period": 100, "duration": 50}]  # by hand
        if profile == "m56s":  # the LED is a setting on v2; v3 shows it with every poll
            assert (await driver.poll(device)).led == LedStatus.NORMAL  # not read this time
            assert (await driver.poll(device)).led == LedStatus.NORMAL
            assert (await driver.poll(device)).led == LedStatus.BLINK  # the 3rd poll reads it
        s.device(ip).power_mode = "Low"
        await act(driver, device, "set_led", status=0)  # our change: read at once
        reading = await driver.poll(device)
        assert reading.led == LedStatus.NORMAL and reading.work_mode == WorkMode.LOW_POWER


# -- control ----------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["m50", "m60"])
async def test_led_work_mode_pools_and_commands(profile, tmp_path):
    async with running(profiles=[profile], password="s3cret", v3_password="farm123") as s:
        ip = s.devices[0]["ip"]
        state = s.device(ip)
        driver = make_driver(tmp_path, password="s3cret", v3_password="farm123")
        device = await known(driver, ip)
        assert await act(driver, device, "get_led") == 0
        assert await act(driver, device, "set_led", status=1) is None
        assert state.led != "auto" and await act(driver, device, "get_led") == 1
        await act(driver, device, "set_led", status=0)
        assert state.led == "auto"
        for mode in ("low_power", "sleep", "normal", "sleep", "low_power"):
            assert await act(driver, device, "set_work_mode", mode=mode) is None
            assert await act(driver, device, "get_work_mode") == mode
        assert state.mining and state.power_mode == "Low"
        pools = [{"address": f"stratum+tcp://pool{n}:3333", "worker": f"acct.{n}",
                  "passwd": f"pw{n}"} for n in (1, 2, 3)]
        await act(driver, device, "set_pools", pools=pools)
        assert [(p.url, p.user, p.passwd) for p in state.pools] == [
            (p["address"], p["worker"], p["passwd"]) for p in pools]
        assert await act(driver, device, "get_pools") == pools  # passwords remembered
        fresh = make_driver(tmp_path, password="s3cret", v3_password="farm123")
        assert await act(fresh, device, "get_pools") == pools  # ... across restarts
        answer = await act(driver, device, "command", name="adjust_power_limit",
                           args={"power_limit": 3000})
        assert answer in ("API command OK", "ok") and state.power_limit == 3000
        await act(driver, device, "command", name="set_hostname", args={"hostname": "rack7-01"})
        assert state.hostname == "rack7-01"
        with pytest.raises(NotAllowed, match="not allowed"):
            await act(driver, device, "command", name="factory_reset", args={})


async def test_v2_writes_map_to_the_reference_commands():
    async with running(profiles=["m56s"]) as s:
        ip = s.devices[0]["ip"]
        driver = make_driver()
        device = await known(driver, ip)
        await act(driver, device, "set_led", status=1)
        await act(driver, device, "set_led", status=0)
        await act(driver, device, "set_work_mode", mode="low_power")
        await act(driver, device, "set_work_mode", mode="sleep")
        await act(driver, device, "set_work_mode", mode="normal")
        await act(driver, device, "set_pools", pools=[
            {"address": "stratum+tcp://a:1", "worker": "w", "passwd": ""},
            {"address": "", "worker": "", "passwd": ""},
            {"address": "", "worker": "", "passwd": ""}])
        await act(driver, device, "command", name="power_off", args={"respbefore": False})
        log = s.device(ip).log
        assert log == [
            ("set_led", {"color": "red", "period": 1000, "duration": 500, "start": 0}),
            ("set_led", {"param": "auto"}),
            ("set_low_power", {}),
            ("power_off", {"respbefore": "true"}),
            ("power_on", {}),
            ("set_normal_power", {}),
            ("update_pools", {"pool1": "stratum+tcp://a:1", "worker1": "w", "passwd1": "",
                              "pool2": "", "worker2": "", "passwd2": "",
                              "pool3": "", "worker3": "", "passwd3": ""}),
            ("power_off", {"respbefore": "false"}),
        ]
        assert driver.v2.api.tokens.fetches == 1  # one token for all of them


async def test_pools_that_apply_only_after_a_btminer_restart():
    async with running(profiles=["m30s"]) as s:
        ip = s.devices[0]["ip"]
        driver = make_driver()
        device = await known(driver, ip)
        pools = [{"address": "stratum+tcp://new:1", "worker": "w.1", "passwd": "x"}] * 3
        await act(driver, device, "set_pools", pools=pools)
        assert [c for c, _ in s.device(ip).log] == ["update_pools", "restart_btminer"]
        assert s.device(ip).pools[0].url == "stratum+tcp://new:1"


async def test_reboot_hang_up_is_success_and_the_miner_comes_back():
    async with running(2, profiles=["m50", "m60"], reboot_seconds=30) as s:
        driver = make_driver()
        for described in s.devices:
            device = await known(driver, described["ip"])
            assert await act(driver, device, "reboot") is None
            assert s.device(device.ip).rebooting
            with pytest.raises(DeviceUnreachable):
                await driver.poll(device)


# -- tokens -----------------------------------------------------------------------------------


async def test_token_is_renewed_before_30_minutes_and_after_check_token_err():
    async with running(profiles=["m50"]) as s:
        ip = s.devices[0]["ip"]
        state = s.device(ip)
        now = [1000.0]
        driver = make_driver()
        tokens = driver.v2.api.tokens
        tokens.clock = lambda: now[0]
        device = await known(driver, ip)
        await act(driver, device, "set_led", status=0)
        await act(driver, device, "set_led", status=0)
        assert state.token_requests == 1
        now[0] += 25 * 60  # our side renews before the miner's 30 minutes run out
        await act(driver, device, "set_led", status=0)
        assert state.token_requests == 2
        s.clock.advance(31 * 60)  # the miner forgets it early: "check token err", renew once
        await act(driver, device, "set_led", status=0)
        assert state.token_requests == 3
        assert [c for c, _ in state.log] == ["set_led"] * 4


async def test_wrong_password_is_reported_after_one_renewal():
    async with running(profiles=["m56s"], password="right") as s:
        ip = s.devices[0]["ip"]
        driver = make_driver(password="wrong")
        device = await known(driver, ip)
        with pytest.raises(WrongPassword, match="admin password"):
            await act(driver, device, "set_led", status=1)
        assert s.device(ip).token_requests == 2 and not s.device(ip).log


async def test_write_api_disabled_says_what_to_enable():
    async with running(2, profiles=["m50", "m60"],
                       faults_by_ip=["write_disabled", "write_disabled"]) as s:
        driver = make_driver()
        for described in s.devices:
            device = await known(driver, described["ip"])
            with pytest.raises(WriteApiDisabled, match=r"API [sS]witch") as info:
                await act(driver, device, "reboot")
            assert "WhatsMinerTool" in str(info.value)
            assert await act(driver, device, "get_led") == 0  # reads still work


async def test_v3_wrong_password_and_token_limit():
    async with running(2, profiles=["m60", "m50"]) as s:
        v3_ip, v2_ip = (d["ip"] for d in s.devices)
        driver = make_driver(v3_password="nope")
        with pytest.raises(WrongPassword, match="v3_password"):
            await act(driver, await known(driver, v3_ip), "set_led", status=1)
        state = s.device(v2_ip)
        for _ in range(32):
            state.issue_token("127.0.0.1")
        device = await known(driver, v2_ip)
        with pytest.raises(TokenLimit, match="over max connect"):
            await act(driver, device, "set_led", status=1)


# -- bad input --------------------------------------------------------------------------------


async def test_faulty_miners_fail_alone_with_clear_errors():
    faults = ["garbage", "silent", "refuse", "slow"]
    async with running(5, profiles=["m56s"], faults_by_ip=faults) as s:
        garbage, silent, refuse, slow, healthy = (d["ip"] for d in s.devices)
        driver = make_driver()
        device = await known(driver, healthy)

        def at(ip: str) -> Device:
            return Device(mac="aa:bb:cc:dd:ee:01", ip=ip, driver="whatsminer",
                          make="Whatsminer", model="M56S_VH30", extra={"api": "v2"})

        with pytest.raises(GarbledReply):
            await driver.poll(at(garbage))
        with pytest.raises(DeviceTimeout):
            await driver.poll(at(silent))
        with pytest.raises(DeviceUnreachable, match="refused"):
            await driver.poll(at(refuse))
        assert (await driver.poll(at(slow))).hashrate_ths  # late, but within the limit
        assert (await driver.poll(device)).hashrate_ths
        with pytest.raises(DeviceTimeout):  # no token, so nothing was written: safe to say
            await act(driver, at(silent), "command", name="power_on", args={})
        await act(driver, device, "set_led", status=0)  # a token is cached ...
        s.device(healthy).fault = "silent"  # ... then the miner hangs mid-write
        with pytest.raises(OutcomeUnknownError, match="may or may not"):
            await act(driver, device, "command", name="power_on", args={})


async def test_garbage_ciphertext_in_a_write_reply_is_an_unknown_outcome():
    async with running(profiles=["m50"]) as s:
        ip = s.devices[0]["ip"]
        driver = make_driver()
        device = await known(driver, ip)
        await act(driver, device, "set_led", status=0)  # a token is cached
        s.device(ip).fault = "garbage"
        with pytest.raises(OutcomeUnknownError):
            await act(driver, device, "set_led", status=1)


async def test_oversized_error_list_is_read_and_flagged():
    async with running(profiles=["m56s"], faults_by_ip=["oversized"]) as s:
        driver = make_driver()
        reading = await driver.poll(await known(driver, s.devices[0]["ip"]))
        codes = [e.code for e in reading.errors]
        assert len(codes) > 100  # far beyond the 4,000 bytes the whatsminer package reads
        assert codes[-1] == "truncated" and "cut its error list short" in \
            reading.errors[-1].message


async def test_bad_action_parameters():
    async with running(profiles=["m56s"]) as s:
        driver = make_driver()
        device = await known(driver, s.devices[0]["ip"])
        with pytest.raises(DeviceError, match="status must be 0 or 1"):
            await act(driver, device, "set_led", status=2)
        with pytest.raises(DeviceError, match="mode must be one of"):
            await act(driver, device, "set_work_mode", mode="unknown")
        with pytest.raises(DeviceError, match="three pools"):
            await act(driver, device, "set_pools", pools=[])
        with pytest.raises(DeviceError, match="pool 2"):
            await act(driver, device, "set_pools", pools=[
                {"address": "a", "worker": "b", "passwd": "c"}, {"address": 1}, None])
        assert not s.device(device.ip).log


async def test_the_driver_offers_every_action_and_fails_one_device_clearly():
    driver = make_driver()
    assert driver.supports() >= frozenset(Action) - {Action.SET_POWER_LIMIT}
    ours = Device(mac="aa:bb:cc:dd:ee:03", ip="127.4.0.1", driver="whatsminer",
                  make="Whatsminer", model="M60_VK40")
    with pytest.raises(DeviceUnreachable):
        await act(driver, ours, "get_led")  # nothing listens there: a clear per-device error
