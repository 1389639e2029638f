"""``set_power_limit`` on Whatsminers (what the power controller curtails with): a temporary
power percent of the miner's power limit, on API v2 (``set_power_pct``, percent as a string)
and v3 (``set.miner.power_percent``, read back); API v1 firmware has none. The simulated
miner's draw then follows, as its summary's ``Power`` shows."""

from __future__ import annotations

import asyncio

import pytest
from whatsminer_support import known, make_driver, running

from webbo.agent.core.errors import DeviceError
from webbo.agent.fleet.control import invoke
from webbo.agent.fleet.driver import Action, NotSupportedError


@pytest.mark.parametrize(("profile", "command"), [
    ("m50", "set_power_pct"), ("m56s", "set_power_pct"), ("m60", "set.miner.power_percent")])
async def test_a_power_target_is_a_power_percent_of_the_limit(profile, command):
    async with running(profiles=[profile]) as s:
        ip = s.devices[0]["ip"]
        state = s.device(ip)
        driver = make_driver()
        device = await known(driver, ip)
        assert Action.SET_POWER_LIMIT in driver.supports(device)
        limit = state.power_limit
        watts = int(limit * 0.55) + 7  # not a whole percent: rounded down, never above
        assert await invoke(driver, device, Action.SET_POWER_LIMIT, {"watts": watts}) is None
        assert state.power_pct == 55
        sent = [params for cmd, params in state.log if cmd == command]
        if command == "set_power_pct":
            assert sent == [{"percent": "55"}]
        else:
            assert sent == [{"percent": "55", "mode": "normal"}]
        assert state.steady_power() == pytest.approx(limit * 0.55)
        # the draw ramps there (20 s at the firmware's pace) and the summary says so
        state.power_model.jump(True, state.steady_power())
        reading = await driver.poll(device)
        assert reading.power_w == pytest.approx(limit * 0.55, rel=0.01)
        # back to full: 100 %
        await invoke(driver, device, Action.SET_POWER_LIMIT, {"watts": limit})
        assert state.power_pct == 100


async def test_api_v1_firmware_has_no_power_target():
    async with running(profiles=["m30s"]) as s:
        ip = s.devices[0]["ip"]
        driver = make_driver()
        device = await known(driver, ip)
        assert Action.SET_POWER_LIMIT not in driver.supports(device)
        with pytest.raises(NotSupportedError, match="API v1 firmware has no power percent"):
            await driver.set_power_limit(device, 2000)
        # the firmware itself refuses the command too
        with pytest.raises(DeviceError, match="invalid cmd"):
            await invoke(driver, device, Action.COMMAND,
                         {"name": "set_power_pct", "args": {"percent": 50}})


async def test_a_target_under_one_percent_is_refused_before_anything_is_sent():
    async with running(profiles=["m60"]) as s:
        ip = s.devices[0]["ip"]
        state = s.device(ip)
        driver = make_driver()
        device = await known(driver, ip)
        with pytest.raises(DeviceError, match="under 1% of the power limit"):
            await driver.set_power_limit(device, 10)
        assert not [c for c, _ in state.log if c.startswith("set.")]
        await asyncio.sleep(0)
