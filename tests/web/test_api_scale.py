"""Control at scale: an action on ``"*"`` over 300 simulated Antminers runs with bounded
concurrency, reports every MAC, and does not stall polling; a cancel stops the devices not yet
started. (The 10,000-miner run is ``bench/control.py``.)"""

from __future__ import annotations

import pytest
import pytest_asyncio
from api_helpers import Stack, config_text, stack, start_sims

from webbo.agent.cli.simulate import raise_file_limit
from webbo.agent.core.plugins import default_registry
from webbo.agent.fleet.net import int_to_ip, ip_to_int

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

COUNT = 300
LIMIT = 20
ADDRESSES = [int_to_ip(ip_to_int("127.31.0.1") + i) for i in range(COUNT)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def big(tmp_path_factory):
    raise_file_limit()
    registry = default_registry()
    tmp = tmp_path_factory.mktemp("scale")
    sims = await start_sims(registry, "antminer", ADDRESSES, http_port=18081,
                            models=["Antminer S21"], conf_delay=0.25)
    text = config_text(tmp / "state", [("hall", "rows", "127.31.0.0", "127.31.1.255")],
                       agent=f'concurrency = 256\ncontrol_concurrency = {LIMIT}\n'
                             'interval = "2s"',
                       inputs='[[inputs.bitmain_http]]\n  web_port = 18081\n'
                              '  settings_every = 0\n')
    try:
        async with stack(tmp, registry, text, sims={"main": sims}) as s:
            await s.wait_inventory(COUNT, timeout=180)
            yield s
    finally:
        await sims.close()


def sweep_runner(s: Stack):
    return next(r for r in s.agent.inputs if r.label == "miners")


async def test_an_action_on_all_devices_is_bounded_and_polling_goes_on(big: Stack):
    control = big.agent.services["control"]
    control.peak_in_flight = 0
    runner = sweep_runner(big)
    gathers_before = runner.stats.gathers
    body = {"macs": "*", "pools": [None, {"address": "stratum+tcp://scale.pool:3333",
                                          "worker": "bulk", "passwd": "x",
                                          "suffix_type": "ip"}, None]}
    info = await big.task("/api/mining/miners/set-pools", body, timeout=300)
    assert info["status"] == "success"
    result = info["result"]
    assert len(result) == COUNT
    failed = {m: r for m, r in result.items() if not r["success"]}
    assert not failed, list(failed.items())[:5]
    assert 1 < control.peak_in_flight <= LIMIT
    # polling went on while the task ran: sweeps completed, every device still polled ok
    assert runner.stats.gathers - gathers_before >= 2
    assert runner.stats.overruns == 0 or runner.stats.gathers > runner.stats.overruns
    assert sum(1 for d in big.fleet.inventory.devices() if d.state == "ok") == COUNT
    for device in big.sims["main"].sims:
        octets = device.ip.split(".")
        assert device.pools[1]["user"] == f"bulk.{octets[2]}x{octets[3]}"


async def test_cancel_stops_devices_not_yet_started(big: Stack):
    sims = big.sims["main"].sims
    writes_before = {d.ip: d.conf_writes for d in sims}
    body = {"macs": "*", "pools": [None, None, {"address": "stratum+tcp://cancel.pool:1",
                                                "worker": "c", "passwd": "x",
                                                "suffix_type": "empty"}]}
    task_id = (await big.ok("/api/mining/miners/set-pools", body))["task_id"]
    control = big.agent.services["control"]
    await big.wait_for(lambda: control.tasks.registry.peek(task_id).done >= 2 * LIMIT, 120,
                       "some devices done")
    answer = await big.ok("/api/task-cancel", {"task_id": task_id})
    assert answer == {"status": "canceled", "result": None}
    assert await big.ok("/api/task-info", {"task_id": task_id}) == {"status": "canceled",
                                                                    "result": None}
    written = [d for d in sims if d.conf_writes > writes_before[d.ip]]
    assert 2 * LIMIT <= len(written) < COUNT
    end = next(e for e in await big.ok("/api/audit/get", {"task_id": task_id})
               if e["event"] == "end")
    assert end["status"] == "canceled"
    assert end["summary"]["ok"] == len(written)
    assert end["summary"]["not_started"] == COUNT - len(written)
    cancel = next(e for e in await big.ok("/api/audit/get", {"task_id": task_id})
                  if e["event"] == "cancel")
    assert cancel["who"].startswith("key:")
