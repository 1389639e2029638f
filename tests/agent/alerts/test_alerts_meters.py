"""Meter alerts on a simulated Mercury 230 (on a pseudo-terminal, read by the real poller): a
phase lost, a phase over-voltage, the meter going silent — each fires and resolves."""

from __future__ import annotations

from pathlib import Path

import pytest
from alert_receivers import wait_until

from webbo.agent.alerts.engine import AlertEngine
from webbo.agent.core.agent import Agent
from webbo.agent.core.config import load_config
from webbo.agent.core.contract import SimOptions

METER = {"serial_number": "43099131-20", "device_model": "230", "address": 42}


@pytest.mark.slow
async def test_phase_lost_voltage_and_a_silent_meter(tmp_path: Path, registry):
    sim = await registry.simulators["mercury"].start(0, SimOptions(extra={"meters": [METER]}))
    try:
        port = sim.devices[0]["port"]
        path = tmp_path / "webbo.toml"
        path.write_text(f"""
[agent]
interval = "1s"
internal_metrics = false
watch_config = false
[web]
enabled = false
state_dir = "{tmp_path}/state"
[alerts]
[[alerts.rules]]
name = "phase"
condition = "phase_lost"
severity = "critical"
[[alerts.rules]]
name = "voltage"
condition = "voltage_out_of_band"
[[alerts.rules]]
name = "silent"
condition = "meter_offline"
threshold = 3
meters = ["{METER['serial_number']}"]
[[inputs.mercury]]
port = "{port}"
serial_number = "{METER['serial_number']}"
device_model = "230"
address = 42
interval = "1s"
""", encoding="utf-8")
        agent = Agent(registry, load_config(path, registry))
        await agent.start(signals=False, watch=False)
        try:
            engine = agent.service(AlertEngine)
            meter = sim.meter(METER["serial_number"])

            def firing() -> set[str]:
                return {a.rule for a in engine.alerts("firing")}

            await wait_until(lambda: engine.stats.evaluations >= 3, 30)
            assert firing() == set()
            meter.physics.hold_voltage(2, 0.0)
            meter.physics.hold_voltage(3, 262.0)
            await wait_until(lambda: firing() == {"phase", "voltage"}, 30, "phase and voltage")
            alerts = {a.rule: a for a in engine.alerts("firing")}
            assert alerts["phase"].key == METER["serial_number"] and alerts["phase"].value < 1
            assert alerts["voltage"].value == pytest.approx(262.0, abs=0.5)
            meter.physics.hold_voltage(2, None)
            meter.physics.hold_voltage(3, None)
            await wait_until(lambda: firing() == set(), 30, "both resolved")

            meter.fault = "silent"
            await wait_until(lambda: firing() == {"silent"}, 60, "the meter offline")
            meter.fault = None
            await wait_until(lambda: firing() == set(), 60, "the meter back")
            events = [(e["rule"], e["event"]) for e in reversed(engine.recent())]
            assert events.count(("silent", "firing")) == 1
            assert events.count(("phase", "resolved")) == 1
        finally:
            await agent.stop(flush_timeout=1)
    finally:
        await sim.close()
