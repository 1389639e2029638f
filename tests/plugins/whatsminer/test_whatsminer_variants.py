"""Readings from every firmware variant (issue 11, item 10): a value a firmware offers under
another documented key is read from there, a stopped fan reads 0 rpm, a model without fans says
so, and a firmware without ``status`` gets its work mode from the summary. Each variant is a
simulated firmware (``quirks_by_ip``, the hydro and immersion profiles)."""

from __future__ import annotations

import pytest
from whatsminer_support import known, make_driver, running

from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.metrics import reading_metrics
from webbo.agent.fleet.model import WorkMode
from webbo.agent.fleet.net import Net


async def poll_twice(driver, device: Device):
    """Two polls: the first may use what identification read, the second asks for itself."""
    await driver.poll(device)
    return await driver.poll(device)


@pytest.mark.parametrize("profile", ["m50", "m60"])
async def test_a_summary_without_mhs_1m_still_gives_the_hashrate(profile):
    async with running(1, profiles=[profile], quirks_by_ip=["no_mhs_1m"]) as s:
        ip = s.devices[0]["ip"]
        assert "no_mhs_1m" in s.devices[0]["quirks"]
        driver = make_driver()
        reading = await poll_twice(driver, await known(driver, ip))
        nominal = s.device(ip).profile.factory_ghs / 1000
        assert reading.hashrate_ths == pytest.approx(nominal, rel=0.05)
        assert reading.hashrate_avg_ths == pytest.approx(nominal, rel=0.05)
        assert all(b.hashrate_ths and b.hashrate_ths > 0 for b in reading.boards)


async def test_psu_fan_from_get_psu_where_the_summary_has_none():
    async with running(1, profiles=["m50"]) as s:
        ip = s.devices[0]["ip"]
        state = s.device(ip)
        state.wire_quirks = frozenset({"no_psu_fan"})
        driver = make_driver()
        reading = await poll_twice(driver, await known(driver, ip))
        assert reading.fan_psu_rpm is not None and abs(reading.fan_psu_rpm - 6300) <= 50


async def test_without_status_the_summary_tells_the_work_mode():
    async with running(1, profiles=["m50"]) as s:
        ip = s.devices[0]["ip"]
        state = s.device(ip)
        state.wire_quirks = frozenset({"no_status"})
        state.power_mode = "Low"
        driver = make_driver()
        device = await known(driver, ip)
        reading = await poll_twice(driver, device)
        assert reading.work_mode == WorkMode.LOW_POWER and reading.is_mining is True
        state.mining = False  # asleep: no hashrate, and no status to say why
        reading = await driver.poll(device)
        assert reading.is_mining is False and reading.hashrate_ths == 0
        assert reading.work_mode == WorkMode.LOW_POWER  # what the summary says
        assert ip in driver.v2.no_status  # learnt once, not asked again


async def test_status_is_asked_only_of_a_miner_that_does_not_hash():
    async with running(1, profiles=["m56s"]) as s:
        ip = s.devices[0]["ip"]
        state = s.device(ip)
        net = Net(8, 1.0, 3.0)
        driver = make_driver(net=net)
        device = await known(driver, ip)
        await driver.poll(device)
        before = net.connections
        reading = await driver.poll(device)
        assert reading.is_mining is True and reading.work_mode == WorkMode.NORMAL
        assert net.connections - before == 2  # summary+edevs+pools, get_error_code
        state.mining = False
        reading = await driver.poll(device)
        assert reading.work_mode == WorkMode.SLEEP and reading.is_mining is False


@pytest.mark.parametrize("profile", ["m50", "m60"])
async def test_a_stopped_fan_reads_zero(profile):
    async with running(1, profiles=[profile]) as s:
        ip = s.devices[0]["ip"]
        s.device(ip).wire_quirks = frozenset({"fan_stopped"})
        driver = make_driver()
        device = await known(driver, ip)
        reading = await poll_twice(driver, device)
        assert reading.cooling == "air"
        assert len(reading.fans_rpm) == 2 and reading.fans_rpm[1] == 0
        assert reading.fans_rpm[0] > 4000
        fields = reading_metrics(device, reading)[0].fields
        assert fields["fan_rpm_min"] == 0 and fields["fan_count"] == 2


@pytest.mark.parametrize(("profile", "cooling"), [
    ("m53s", "hydro"), ("m56s", "immersion"), ("m56s-v3", "immersion")])
async def test_models_without_fans_say_so(profile, cooling):
    async with running(1, profiles=[profile]) as s:
        ip = s.devices[0]["ip"]
        driver = make_driver()
        device = await known(driver, ip)
        reading = await poll_twice(driver, device)
        assert reading.cooling == cooling and reading.fans_rpm == []
        fields = reading_metrics(device, reading)[0].fields
        assert fields["fan_count"] == 0 and fields["cooling"] == cooling
        assert "fan_rpm_min" not in fields


async def test_v3_firmware_refusing_the_three_part_status_is_asked_in_two():
    async with running(1, profiles=["m60"], quirks_by_ip=["status_documented_only"]) as s:
        ip = s.devices[0]["ip"]
        driver = make_driver()
        device = await known(driver, ip)
        for _ in range(2):
            reading = await driver.poll(device)
            assert len(reading.boards) == 3 and reading.pools and reading.hashrate_ths
        assert ip in driver.v3.split_status
