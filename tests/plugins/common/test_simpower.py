"""The simulated electrical side: a miner's draw follows its state with firmware-like delays
(at a speed factor), and a simulated Mercury meter bound to miners' addresses measures their
draw — active power, per-phase powers and currents consistent, through its CT ratio."""

from __future__ import annotations

import asyncio
import random

import pytest

from webbo.agent.core.contract import SimOptions
from webbo.plugins.common.simpower import LOADS, PowerModel, PowerTiming, parse_span
from webbo.plugins.inputs.mercury import protocol as p
from webbo.plugins.inputs.mercury.sim.meter import MeterSpec, SimMeter


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_sleep_wake_and_ramps_follow_the_firmware_pace():
    clock = Clock()
    timing = PowerTiming(speed=2.0, sleep_s=4, boot_s=20, wake_s=60, ramp_s=10)
    model = PowerModel(3300, idle_w=15, timing=timing, clock=clock)
    model.follow(False, 15)  # sleep: within sleep_s / speed = 2 s
    clock.t += 1
    assert 15 < model.watts() < 3300
    clock.t += 1.01
    assert model.watts() == 15 and model.settled()
    model.follow(True, 3300)  # wake: 10 s of boot barely moving, then 30 s of ramp
    clock.t += 9
    assert model.watts() < 200
    clock.t += 16
    assert 1000 < model.watts() < 3000
    clock.t += 15.1
    assert model.watts() == 3300
    model.follow(True, 1650)  # a power percent: a ramp of ramp_s / speed = 5 s
    clock.t += 2.5
    assert model.watts() == pytest.approx(2475)
    clock.t += 3
    assert model.watts() == 1650
    model.restart(3.0, 3300)  # a reboot: away (idle), then a wake-up
    clock.t += 2
    assert model.watts() == 15


def test_options_are_checked():
    assert PowerTiming.from_extra({"power": {"speed": 5}}).scaled(10) == 2
    with pytest.raises(ValueError, match="unknown options"):
        PowerTiming.from_extra({"power": {"sped": 5}})
    with pytest.raises(ValueError, match="speed must be positive"):
        PowerTiming.from_extra({"power": {"speed": 0}})
    assert parse_span("127.9.0.1-127.9.0.3")[1] - parse_span("127.9.0.1-127.9.0.3")[0] == 2
    with pytest.raises(ValueError):
        parse_span("127.9.0.9-127.9.0.3")


def _fields(meter: SimMeter) -> dict[str, float]:
    open_ = p.frame(bytes((meter.address, 1, 1)) + p.password_bytes("111111", "digits"))
    assert meter.handle(open_) is not None
    reply = meter.handle(p.frame(bytes((meter.address, 8, 0x16, 0xA0))))
    assert reply is not None
    return p.decode_fast_read(reply[1:-2])


def test_a_bound_meter_measures_the_miners_on_its_ranges():
    models = {f"127.9.1.{i}": PowerModel(3000.0 + i) for i in range(1, 6)}
    outside = PowerModel(5000.0)
    try:
        for ip, model in models.items():
            LOADS.register(ip, model)
        LOADS.register("127.9.2.1", outside)
        spec = MeterSpec("32297700-17", "230", 1, measures=["127.9.1.1-127.9.1.5"],
                         base_load_w=2000.0, current_ratio=100)
        meter = SimMeter(spec, random.Random(1))
        fields = _fields(meter)
        load = 2000.0 + sum(3000.0 + i for i in range(1, 6))
        # what the meter sees is the load over its CTs (the input multiplies back)
        assert fields["power_active_w"] == pytest.approx(load / 100, abs=0.05)
        phases = [fields[f"power_active_l{k}_w"] for k in (1, 2, 3)]
        assert sum(phases) == pytest.approx(fields["power_active_w"], abs=0.05)
        for k in (1, 2, 3):  # P = U · I · cos φ on every phase
            u, i, pf = (fields[f"voltage_l{k}_v"], fields[f"current_l{k}_a"],
                        fields[f"power_factor_l{k}"])
            assert u * i * pf == pytest.approx(phases[k - 1], rel=0.01)
        primary = p.to_primary(fields, 100)
        assert primary["power_active_w"] == pytest.approx(load, abs=5)
        assert primary["voltage_l1_v"] == fields["voltage_l1_v"]
        assert primary["current_l1_a"] == pytest.approx(fields["current_l1_a"] * 100)
        ratios = meter.handle(p.frame(bytes((1, 8, 2))))
        assert ratios is not None and ratios[1:5] == bytes((0, 1, 0, 100))
        models["127.9.1.3"].jump(False, 15.0)  # one miner goes to sleep
        assert _fields(meter)["power_active_w"] == pytest.approx((load - 3003 + 15) / 100,
                                                                 abs=0.05)
    finally:
        for ip in [*models, "127.9.2.1"]:
            LOADS.unregister(ip)


async def test_simulated_miners_register_their_draw(registry):
    options = SimOptions(seed=2, http_port=8080, extra={"power": {"speed": 1e9}})
    sim = await registry.simulators["antminer"].start(["127.9.3.1"], options)
    try:
        device = sim.sims[0]
        spans = [parse_span("127.9.3.1")]
        assert LOADS.watts(spans) == pytest.approx(device.full_w)
        device.work_mode = 1
        await asyncio.sleep(0.01)
        assert LOADS.watts(spans) == 30.0
    finally:
        await sim.close()
    assert LOADS.watts(spans) == 0.0
