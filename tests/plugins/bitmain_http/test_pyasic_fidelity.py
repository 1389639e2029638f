"""Fidelity: pyasic (a third-party client) identifies our simulated Antminers and reads the
hashrate, temperatures, fans and MAC that the simulator reports. pyasic talks to the real
ports (web on 80, RPC on 4028), so the farm binds 127.3.x.y:80 (the tests run as root)."""

from __future__ import annotations

import time

import pytest
from minerfarm import block, family

pyasic = pytest.importorskip("pyasic")

pytestmark = pytest.mark.timeout(240)


def _mean(values):
    values = [v for v in values if v]
    return sum(values) / len(values)


async def _read_in_one_window(miner, sim_device):
    """pyasic's reading and the simulator's state from the same 5-second window."""
    for _ in range(4):
        window = int(time.time() // 5)
        data = await miner.get_data()
        if int(time.time() // 5) == window:
            return data, sim_device.snapshot()
    raise AssertionError("could not read within one 5 s window")


async def test_pyasic_identifies_and_reads_every_model(registry):
    net = block()
    ips = [f"{net}{i}" for i in range(1, 6)]
    models = ["Antminer S19", "Antminer S19j Pro", "Antminer S19 XP", "Antminer S21",
              "Antminer T21"]
    sims = []
    for ip, model in zip(ips, models, strict=True):
        sims.append(family(registry, "antminer", [ip], http_port=80, models=[model]))
    running = [await s.__aenter__() for s in sims]
    try:
        for sim, model in zip(running, models, strict=True):
            device = sim.sims[0]
            miner = await pyasic.get_miner(device.ip)
            assert miner is not None, model
            assert miner.make == "AntMiner" or "antminer" in str(miner.make).lower()
            assert model.split(" ", 1)[1].replace(" ", "").lower() in \
                str(miner.model).replace(" ", "").lower()
            data, snap = await _read_in_one_window(miner, device)
            assert data.mac.upper() == device.mac.upper()
            assert data.hostname == device.hostname
            assert data.serial_number == device.serial
            assert float(data.hashrate) == pytest.approx(snap["rate"] / 1000, rel=1e-6)
            assert [fan.speed for fan in data.fans] == snap["fans"]
            assert len(data.hashboards) == 3
            for board, sim_board in zip(data.hashboards, snap["boards"], strict=True):
                assert board.temp == pytest.approx(_mean(sim_board["pcb"]))
                assert board.chip_temp == pytest.approx(_mean(sim_board["chip"]))
                assert board.chips == device.model.chips
                assert float(board.hashrate) == pytest.approx(sim_board["rate"] / 1000,
                                                              rel=1e-6)
            assert data.is_mining is True and data.fault_light is False
            assert len(data.pools) == 2 and data.pools[0].user == device.pools[0]["user"]
    finally:
        for s in sims:
            await s.__aexit__(None, None, None)


async def test_pyasic_sees_our_control_state(registry):
    """What the simulator's control state shows to a third-party reader: sleep, LED."""
    net = block()
    async with family(registry, "antminer", [f"{net}1"], http_port=80,
                      models=["Antminer S21"]) as sim:
        device = sim.sims[0]
        device.work_mode = 1
        device.blink = True
        miner = await pyasic.get_miner(device.ip)
        data = await miner.get_data()
        assert data.is_mining is False and data.fault_light is True
        assert float(data.hashrate) == 0.0
