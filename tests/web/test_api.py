"""The manual's API end to end: real HTTP to the web server of a running agent that sweeps
simulated Antminers on 127.30.x.x (the manual's 10.30.x.x, moved to loopback).

One farm and one agent serve the whole module; each test sets up the device state it needs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import uuid
from pathlib import Path

import pytest
import pytest_asyncio
from api_helpers import MANUAL_POOLS, Stack, config_text, stack, start_sims

from webbo.agent.core.contract import SerialBackend
from webbo.agent.core.plugins import PluginRegistry, default_registry
from webbo.web.api.core import METHODS
from webbo.web.auth import create_api_key

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAIN = ["127.30.0.16", "127.30.0.200"]
SLOW = "127.30.1.5"
WHATS = ["127.30.1.8", "127.30.1.9"]
ALL = [*MAIN, SLOW, *WHATS]
HTTP_PORT = 18080
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

INPUTS = f"""[[inputs.bitmain_http]]
  web_port = {HTTP_PORT}

## the slow rack: set_miner_conf takes 3 s there, longer than this instance waits
[[inputs.bitmain_http]]
  ranges = ["медленный"]
  web_port = {HTTP_PORT}
  conf_timeout = "1s"
  readback_timeout = "2s"

[[inputs.whatsminer]]
  password = "admin"
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def farm(tmp_path_factory):
    registry = default_registry()
    tmp = tmp_path_factory.mktemp("api")
    main = await start_sims(registry, "antminer", MAIN, http_port=HTTP_PORT,
                            models=["Antminer S21"], reboot_seconds=1.0, conf_delay=0.1)
    slow = await start_sims(registry, "antminer", [SLOW], http_port=HTTP_PORT,
                            models=["Antminer S21"], conf_delay=3.0)
    whats = await start_sims(registry, "whatsminer", WHATS, http_port=HTTP_PORT,
                             whatsminer={"profiles": ["m50", "m60"], "reboot_seconds": 1})
    text = config_text(tmp / "state", [("стенд", "тест", "127.30.0.0", "127.30.0.255"),
                                       ("склад", "медленный", "127.30.1.0", "127.30.1.15")],
                       inputs=INPUTS)
    try:
        async with stack(tmp, registry, text,
                         sims={"main": main, "slow": slow, "whats": whats}) as s:
            await s.wait_inventory(len(ALL))
            yield s
    finally:
        await main.close()
        await slow.close()
        await whats.close()


def mac_of(s: Stack, ip: str) -> str:
    return s.fleet.inventory.at(ip).mac


def sim_of(s: Stack, ip: str):
    family = "slow" if ip == SLOW else "whats" if ip in WHATS else "main"
    return s.sims[family].by_ip[ip]


def is_down(s: Stack, ip: str) -> bool:
    sim = sim_of(s, ip)
    return sim.rebooting if ip in WHATS else sim.down


async def all_back(s: Stack) -> None:
    await s.wait_for(lambda: not any(is_down(s, ip) for ip in ALL), 30, "devices back")
    await s.wait_inventory(len(ALL), timeout=90)




# -- the manual's examples -------------------------------------------------------------------


async def test_get_network_answers_the_manual_shape(farm: Stack):
    payload = await farm.ok("/api/mining/get-network", {})
    groups = payload["ip_range_groups"]
    assert [list(g) for g in groups] == [["name", "uuid", "ip_ranges"]] * 2
    assert list(groups[0]["ip_ranges"][0]) == ["name", "uuid", "first", "last"]
    assert groups[0]["name"] == "стенд" and groups[0]["ip_ranges"][0]["name"] == "тест"
    assert groups[0]["ip_ranges"][0]["first"] == "127.30.0.0"
    assert all(UUID4.match(g["uuid"]) for g in groups)


async def test_led_examples(farm: Stack):
    mac = mac_of(farm, "127.30.0.16")
    # §3.5.5: blink the LEDs of the devices in 10.30.0.10-10.30.0.128 (one device there)
    info = await farm.task("/api/mining/miners/set-led-status",
                           {"ip_range": {"first": "127.30.0.10", "last": "127.30.0.128"},
                            "status": 1})
    assert info == {"status": "success", "result": {mac: {"success": True, "payload": None}}}
    assert sim_of(farm, "127.30.0.16").blink is True
    assert sim_of(farm, "127.30.0.200").blink is False
    # §3.5.4
    info = await farm.task("/api/mining/miners/get-led-status", {"macs": [mac]})
    assert info == {"status": "success", "result": {mac: {"success": True, "payload": 1}}}
    info = await farm.task("/api/mining/miners/set-led-status", {"macs": [mac], "status": 0})
    assert info["result"][mac] == {"success": True, "payload": None}
    info = await farm.task("/api/mining/miners/get-led-status", {"macs": [mac]})
    assert info["result"] == {mac: {"success": True, "payload": 0}}


async def test_work_mode_examples(farm: Stack):
    macs = [mac_of(farm, ip) for ip in MAIN]
    info = await farm.task("/api/mining/miners/set-work-mode",
                           {"macs": macs, "mode": "low_power"})
    assert info == {"status": "success",
                    "result": {m: {"success": True, "payload": None} for m in macs}}
    info = await farm.task("/api/mining/miners/get-work-mode", {"macs": "*"})
    assert info["status"] == "success"
    assert {m: r["payload"] for m, r in info["result"].items() if m in macs} == dict.fromkeys(
        macs, "low_power")
    info = await farm.task("/api/mining/miners/set-work-mode", {"macs": macs, "mode": "normal"})
    assert all(r["success"] for r in info["result"].values())
    info = await farm.task("/api/mining/miners/get-work-mode", {"macs": macs})
    assert {r["payload"] for r in info["result"].values()} == {"normal"}


async def test_set_pools_then_get_pools_reproduces_the_manual(farm: Stack):
    mac = mac_of(farm, "127.30.0.16")
    other = mac_of(farm, "127.30.0.200")
    # Give both devices the manual's starting pools (worker john-doe.001 in every slot).
    start = [{**p, "suffix_type": "empty"} for p in MANUAL_POOLS]
    info = await farm.task("/api/mining/miners/set-pools",
                           {"macs": [mac, other], "pools": start})
    assert all(r == {"success": True, "payload": None} for r in info["result"].values())
    # §3.5.7, get-pools on 10.30.0.10-10.30.0.150: exactly the manual's answer
    info = await farm.task("/api/mining/miners/get-pools",
                           {"ip_range": {"first": "127.30.0.10", "last": "127.30.0.150"}})
    assert info == {"status": "success", "result": {mac: {"success": True,
                                                          "payload": MANUAL_POOLS}}}
    # §3.5.7, set-pools: only the second slot, worker suffix from the IP
    body = {"ip_range": {"first": "127.30.0.10", "last": "127.30.0.128"},
            "pools": [None, {"address": "stratum+tcp://super-duper.pool:443",
                             "worker": "james", "passwd": "654321", "suffix_type": "ip"}, None]}
    info = await farm.task("/api/mining/miners/set-pools", body)
    assert info == {"status": "success", "result": {mac: {"success": True, "payload": None}}}
    info = await farm.task("/api/mining/miners/get-pools", {"macs": [mac, other]})
    assert info["result"][mac]["payload"] == [
        MANUAL_POOLS[0],
        {"address": "stratum+tcp://super-duper.pool:443", "worker": "james.0x16",
         "passwd": "654321"},
        MANUAL_POOLS[2],
    ]
    assert info["result"][other]["payload"] == MANUAL_POOLS  # outside the range
    for pools in info["result"][mac]["payload"]:
        assert "suffix_type" not in pools
    # no_change keeps the device's current suffix; empty takes the worker as given
    body = {"macs": [mac], "pools": [
        {"address": "stratum+tcp://a.pool:1", "worker": "anna", "passwd": "x"},
        {"address": "stratum+tcp://b.pool:2", "worker": "bob", "passwd": "y",
         "suffix_type": "no_change"},
        {"address": "stratum+tcp://c.pool:3", "worker": "carl.7", "passwd": "z",
         "suffix_type": "empty"}]}
    await farm.task("/api/mining/miners/set-pools", body)
    info = await farm.task("/api/mining/miners/get-pools", {"macs": [mac]})
    assert [p["worker"] for p in info["result"][mac]["payload"]] == ["anna.001", "bob.0x16",
                                                                    "carl.7"]


async def test_the_manual_pools_example_on_whatsminers(farm: Stack):
    macs = [mac_of(farm, ip) for ip in WHATS]
    start = [{**p, "suffix_type": "empty"} for p in MANUAL_POOLS]
    info = await farm.task("/api/mining/miners/set-pools", {"macs": macs, "pools": start})
    assert all(r == {"success": True, "payload": None} for r in info["result"].values()), info
    body = {"ip_range": {"first": WHATS[0], "last": WHATS[-1]},
            "pools": [None, {"address": "stratum+tcp://super-duper.pool:443",
                             "worker": "james", "passwd": "654321", "suffix_type": "ip"}, None]}
    info = await farm.task("/api/mining/miners/set-pools", body)
    assert all(r == {"success": True, "payload": None} for r in info["result"].values()), info
    info = await farm.task("/api/mining/miners/get-pools", {"macs": macs})
    for ip, mac in zip(WHATS, macs, strict=True):
        pools = info["result"][mac]["payload"]
        assert [p["address"] for p in pools] == [
            MANUAL_POOLS[0]["address"], "stratum+tcp://super-duper.pool:443",
            MANUAL_POOLS[2]["address"]]
        octets = ip.split(".")
        assert [p["worker"] for p in pools] == [
            "john-doe.001", f"james.{octets[2]}x{octets[3]}", "john-doe.001"]


async def test_a_device_whose_pools_would_not_change_is_not_written(farm: Stack):
    mac = mac_of(farm, "127.30.0.200")
    sim = sim_of(farm, "127.30.0.200")
    writes = sim.conf_writes
    info = await farm.task("/api/mining/miners/set-pools",
                           {"macs": [mac], "pools": [None, None, None]})
    assert info["result"] == {mac: {"success": True, "payload": None}}
    assert sim.conf_writes == writes


async def test_selectors_by_range_id_group_id_and_unknown_macs(farm: Stack):
    network = await farm.ok("/api/mining/get-network", {})
    stand, store = network["ip_range_groups"]
    info = await farm.task("/api/mining/miners/get-led-status",
                           {"ip_range_id": stand["ip_ranges"][0]["uuid"]})
    assert set(info["result"]) == {mac_of(farm, ip) for ip in MAIN}
    info = await farm.task("/api/mining/miners/get-led-status",
                           {"ip_range_group_id": store["uuid"].upper()})
    assert set(info["result"]) == {mac_of(farm, ip) for ip in [SLOW, *WHATS]}
    ghost = "02:00:00:00:00:01"
    info = await farm.task("/api/mining/miners/get-led-status",
                           {"macs": [mac_of(farm, SLOW), ghost]})
    assert info["result"][mac_of(farm, SLOW)]["success"] is True
    assert info["result"][ghost]["success"] is False
    assert "no such device" in info["result"][ghost]["payload"]
    info = await farm.task("/api/mining/miners/get-led-status", {"macs": []})
    assert info == {"status": "success", "result": {}}


async def test_a_write_with_unknown_outcome_is_reported_and_not_retried(farm: Stack):
    """The slow rack's set_miner_conf answers after 3 s; its driver instance waits 1 s."""
    mac = mac_of(farm, SLOW)
    sim = sim_of(farm, SLOW)
    writes = sim.conf_writes
    info = await farm.task("/api/mining/miners/set-work-mode", {"macs": [mac], "mode": "sleep"})
    outcome = info["result"][mac]
    assert outcome["success"] is False
    assert outcome["payload"].startswith("outcome unknown: ")
    await asyncio.sleep(4)  # long enough for any retry to have reached the device
    assert sim.conf_writes - writes <= 1
    audit = await farm.ok("/api/audit/get", {"limit": 5})
    end = next(e for e in audit if e["event"] == "end" and e["method"] == "set-work-mode")
    assert end["summary"]["unknown"] == 1
    await farm.task("/api/mining/miners/set-work-mode", {"macs": [mac], "mode": "normal"})


async def test_reboot_example(farm: Stack):
    info = await farm.task("/api/mining/miners/reboot", {"macs": "*"})
    assert info["status"] == "success"
    assert set(info["result"]) == {d.mac for d in farm.fleet.inventory.devices()}
    assert all(r == {"success": True, "payload": None} for r in info["result"].values())
    # every device really went down, comes back, and is polled again
    sims = [sim_of(farm, ip) for ip in [*MAIN, SLOW]]
    await farm.wait_for(lambda: all(s.down_until > 0 for s in sims), 10, "reboots")
    await all_back(farm)


def _check_device_payload(path: str, payload):
    if path.endswith("get-led-status"):
        assert payload in (0, 1)
    elif path.endswith("get-work-mode"):
        assert payload in ("normal", "sleep", "low_power", "unknown")
    elif path.endswith("get-pools"):
        assert len(payload) == 3
        assert all(list(p) == ["address", "worker", "passwd"] for p in payload)
    elif path.endswith("miners/command"):
        assert isinstance(payload, dict)  # the miner's own reply
    else:
        assert payload is None


async def test_every_method_with_the_manual_example_bodies(farm: Stack):
    """Each method's example body from the manual (10.30.x.x moved to 127.30.x.x, its MAC
    ce:86:7e:e5:1b:33 being the simulated device at 127.30.0.16) answers in the manual's
    shape: immediate methods their payload, task methods a task_id whose result has the
    documented shape."""
    before = await farm.ok("/api/mining/get-network", {})
    backend = farm.agent.service(SerialBackend)
    sent = 0
    for method in METHODS.ordered():
        for example in method.examples:
            text = json.dumps(example).replace('"10.30.', '"127.30.')
            body = json.loads(text.replace("ce:86:7e:e5:1b:33", mac_of(farm, MAIN[0])))
            path = "/api" + method.path
            code, answer = await farm.call(path, body)
            sent += 1
            if method.tag == "serial" and backend is None:
                assert code == 501 and answer["success"] is False, (path, answer)
                continue
            assert code == 200 and answer["success"] is True, (path, answer)
            if not method.is_task:
                assert answer["payload"] is not None or path.endswith("task-info")
                continue
            assert list(answer["payload"]) == ["task_id"]
            assert UUID4.match(answer["payload"]["task_id"])
            info = await farm.wait(answer["payload"]["task_id"])
            assert list(info) == ["status", "result"]
            if method.tag == "serial":
                assert info["status"] in ("success", "failure"), info
                continue
            assert info["status"] == "success", (path, info)
            if path.endswith("set-network"):
                assert info["result"] is True
                assert (await farm.task("/api/mining/set-network", before))["result"] is True
                await farm.wait_inventory(len(ALL))
                continue
            assert info["result"], (path, info)
            if not path.startswith("/api/mining/"):
                continue  # not a miner action: no per-MAC results (alerts/rules/set: true)
            for mac, outcome in info["result"].items():
                assert list(outcome) == ["success", "payload"]
                if outcome["success"]:
                    _check_device_payload(path, outcome["payload"])
                elif path.endswith("miners/command"):  # raw writes are off in this config
                    assert "raw_writes = false" in outcome["payload"], outcome
                else:  # only the slow rack's writes may end with an unknown outcome
                    assert mac == mac_of(farm, SLOW), (path, outcome)
                    assert outcome["payload"].startswith("outcome unknown")
            if path.endswith("reboot"):
                await all_back(farm)
    assert sent == sum(len(m.examples) for m in METHODS.methods) >= 17
    # leave the farm as the other tests expect it: LEDs off, normal mode, devices back
    await farm.task("/api/mining/miners/set-led-status", {"macs": "*", "status": 0})
    await farm.task("/api/mining/miners/set-work-mode", {"macs": "*", "mode": "normal"})
    await all_back(farm)


# -- the network -----------------------------------------------------------------------------


async def test_set_network_writes_the_file_keeps_comments_and_reloads(farm: Stack):
    before = await farm.ok("/api/mining/get-network", {})
    # the manual's example (§3.4.3), addresses moved to 127.30.x.x
    network = {"ip_range_groups": [{"name": "подсобка", "ip_ranges": [
        {"name": "пятая стойка", "first": "127.30.0.0", "last": "127.30.0.128"}]}]}
    info = await farm.task("/api/mining/set-network", network)
    assert info == {"status": "success", "result": True}
    text = farm.config_path.read_text(encoding="utf-8")
    assert "# test config: comments must survive API edits" in text
    assert "## the slow rack" in text and "подсобка" in text and "пятая стойка" in text
    after = await farm.ok("/api/mining/get-network", {})
    group = after["ip_range_groups"][0]
    assert group["name"] == "подсобка" and UUID4.match(group["uuid"])
    assert group["ip_ranges"][0]["last"] == "127.30.0.128"
    assert farm.agent.config.network.ip_range_groups[0].name == "подсобка"  # reloaded
    # the uuids are kept: sending back what get-network answered changes nothing
    info = await farm.task("/api/mining/set-network", after)
    assert info["result"] is True
    assert await farm.ok("/api/mining/get-network", {}) == after
    # restore the module's network, ids included
    assert (await farm.task("/api/mining/set-network", before))["result"] is True
    assert await farm.ok("/api/mining/get-network", {}) == before
    await farm.wait_inventory(len(ALL))


# -- bad requests ------------------------------------------------------------------------------

GOOD_MAC = "ce:86:7e:e5:1b:33"
POOL = {"address": "stratum+tcp://x:1", "worker": "w", "passwd": "p"}
BAD_REQUESTS = [
    # (path, body, headers override, status, fragment of the message)
    ("/api/mining/miners/reboot", '{"macs":"*"}', {"Content-Type": "text/plain"}, 415,
     "Content-Type must be application/json"),
    ("/api/mining/miners/reboot", '{"macs":"*"}', {}, 415, "Content-Type"),
    ("/api/mining/miners/reboot", '{"macs":"*"', None, 400, "not valid JSON"),
    ("/api/mining/miners/reboot", "", None, 400, "empty"),
    ("/api/mining/miners/set-led-status", '{"macs":"*","status":"1"}', None, 422,
     "status: expected int, got str"),
    ("/api/mining/miners/set-led-status", '{"macs":"*","status":true}', None, 422, "status"),
    ("/api/mining/miners/set-led-status", '{"macs":"*","status":2}', None, 422,
     "expected 0 or 1"),
    ("/api/mining/miners/set-work-mode", '{"macs":"*","mode":"turbo"}', None, 422,
     "normal, sleep or low_power"),
    ("/api/mining/miners/reboot", f'{{"macs":"*","ip_range_id":"{uuid.uuid4()}"}}', None, 422,
     "exactly one of macs, ip_range, ip_range_id, ip_range_group_id must be given (got 2"),
    ("/api/mining/miners/reboot", "{}", None, 422, "exactly one of macs"),
    ("/api/mining/miners/reboot", '{"macs":["CE:86:7E:E5:1B:33"]}', None, 422,
     "macs[0]: expected a lower-case MAC"),
    ("/api/mining/miners/reboot", '{"macs":["ce-86-7e-e5-1b-33"]}', None, 422, "macs[0]"),
    ("/api/mining/miners/reboot", f'{{"ip_range_id":"{uuid.uuid4()}"}}', None, 422,
     "no range with id"),
    ("/api/mining/miners/reboot", f'{{"ip_range_group_id":"{uuid.uuid4()}"}}', None, 422,
     "no group with id"),
    ("/api/mining/miners/reboot", f'{{"ip_range_id":"{uuid.uuid1()}"}}', None, 422,
     "expected a UUID4"),
    ("/api/mining/miners/set-pools",
     '{"macs":"*","pools":[%s,%s,%s,%s]}' % ((str(POOL).replace("'", '"'),) * 4), None, 422,
     "pools: expected exactly three slots"),
    ("/api/mining/miners/set-pools", '{"macs":"*","pools":[null,null]}', None, 422,
     "exactly three slots"),
    ("/api/mining/miners/set-pools",
     '{"macs":"*","pools":[null,{"address":"a","worker":"w","passwd":"p",'
     '"suffix_type":"prefix"},null]}', None, 422,
     "pools[1].suffix_type: invalid value 'prefix'; expected ip, no_change or empty"),
    ("/api/mining/miners/reboot", '{"macs":"*","force":true}', None, 422, "force: unknown field"),
    ("/api/mining/set-network",
     '{"ip_range_groups":[{"ip_ranges":[{"first":"127.30.0.0","last":"127.30.0.99"},'
     '{"first":"127.30.0.50","last":"127.30.0.150"}]}]}', None, 422, "overlaps"),
    ("/api/mining/set-network",
     '{"ip_range_groups":[{"ip_ranges":[{"first":"127.30.0.9","last":"127.30.0.1"}]}]}', None,
     422, "before first"),
    ("/api/mining/set-network", '{"ip_range_groups":[{"ip_ranges":[{"first":"10.30.0.0"}]}]}',
     None, 422, "ip_range_groups[0].ip_ranges[0].last: required field is missing"),
    ("/api/task-info", '{"task_id":42}', None, 422, "task_id: expected str, got int"),
    ("/api/mining/get-networks", "{}", None, 404, "no such method"),
    ("/api/mining/miners/reboot", None, None, 405, "use POST"),
]


async def test_bad_requests_get_clear_envelope_errors_and_change_nothing(farm: Stack):
    network = await farm.ok("/api/mining/get-network", {})
    config_text_before = farm.config_path.read_text(encoding="utf-8")
    pools_before = {ip: [dict(p) for p in sim_of(farm, ip).pools] for ip in MAIN}
    tasks_before = len(farm.agent.services["control"].tasks)
    audit_before = await farm.ok("/api/audit/get", {"limit": 1})
    for path, body, headers, status, fragment in BAD_REQUESTS:
        hdrs = None if headers is None else {"X-Api-Key": farm.key, **headers}
        method = "GET" if status == 405 else "POST"
        code, answer = await farm.raw(path, body, hdrs, method)
        assert code == status, (path, body, code, answer)
        assert isinstance(answer, dict) and answer["success"] is False, (path, body, answer)
        assert isinstance(answer["payload"], str)
        assert fragment in answer["payload"], (path, body, answer["payload"])
    assert await farm.ok("/api/mining/get-network", {}) == network
    assert farm.config_path.read_text(encoding="utf-8") == config_text_before
    assert {ip: [dict(p) for p in sim_of(farm, ip).pools] for ip in MAIN} == pools_before
    assert len(farm.agent.services["control"].tasks) == tasks_before
    assert await farm.ok("/api/audit/get", {"limit": 1}) == audit_before


async def test_task_info_states(farm: Stack):
    assert await farm.ok("/api/task-info", {"task_id": "nope"}) == {"status": "invalid",
                                                                     "result": None}
    assert await farm.ok("/api/task-info", {"task_id": str(uuid.uuid4())}) == {
        "status": "unknown", "result": None}
    task_id = (await farm.ok("/api/mining/miners/get-led-status", {"macs": "*"}))["task_id"]
    assert UUID4.match(task_id)
    first = await farm.wait(task_id)
    assert first["status"] == "success"
    assert await farm.ok("/api/task-info", {"task_id": task_id}) == {"status": "unknown",
                                                                      "result": None}


# -- auth --------------------------------------------------------------------------------------


async def test_every_route_but_login_and_static_needs_authentication(farm: Stack):
    """Enumerate every route the app registers and call it without a key."""
    public = re.compile(r"^/(login|static|healthz)(/|$)")
    checked = 0
    for route in farm.web.app.routes:
        if public.match(route.path) or not route.path.startswith("/api"):
            continue  # the web UI's routes: tests/web/test_ui_http.py checks them (and these again)
        path = re.sub(r"\{[^}]+\}", "x", route.path)
        for method in sorted(route.methods):
            code, answer = await farm.raw(path, "{}", {"Content-Type": "application/json"},
                                          method)
            if method == "HEAD":
                assert code == 401, (method, path)
                continue
            assert code == 401, (method, path, code, answer)
            assert answer["success"] is False
            code, answer = await farm.raw(path, "{}", {"Content-Type": "application/json",
                                                       "X-Api-Key": "wbk.000000000000.nope"},
                                          method)
            assert code == 401 and answer["payload"] == "invalid API key", (method, path)
            checked += 1
    assert checked >= 20


async def test_healthz_needs_no_key_and_tells_nothing(farm: Stack):
    async with farm.session.get(f"{farm.url}/healthz") as resp:
        assert (resp.status, await resp.text()) == (200, "ok\n")


async def test_a_revoked_key_stops_working_and_keys_record_last_use(farm: Stack):
    key, record = create_api_key(farm.web.store, "short-lived")
    headers = {"X-Api-Key": key, "Content-Type": "application/json"}
    code, _ = await farm.raw("/api/mining/get-network", "{}", headers)
    assert code == 200
    await farm.wait_for(lambda: (farm.web.store.key(record.id) or record).last_used is not None,
                        10, "last_used recorded")
    assert farm.web.store.remove_key(record.id)
    code, answer = await farm.raw("/api/mining/get-network", "{}", headers)
    assert (code, answer) == (401, {"success": False, "payload": "invalid API key"})


async def test_openapi_document_is_served_behind_the_key(farm: Stack):
    code, doc = await farm.raw("/api/openapi.json", None, {"X-Api-Key": farm.key}, "GET")
    assert code == 200 and doc["openapi"].startswith("3.1")
    for path in ("/api/task-info", "/api/mining/get-network", "/api/mining/set-network",
                 "/api/mining/miners/reboot", "/api/mining/miners/get-led-status",
                 "/api/mining/miners/set-led-status", "/api/mining/miners/get-work-mode",
                 "/api/mining/miners/set-work-mode", "/api/mining/miners/get-pools",
                 "/api/mining/miners/set-pools", "/api/serial/get-ports",
                 "/api/serial/devices/get", "/api/serial/devices/add",
                 "/api/serial/devices/delete", "/api/task-cancel", "/api/mining/miners/get",
                 "/api/audit/get"):
        assert "post" in doc["paths"][path], path
    code, _ = await farm.raw("/api/openapi.json", None, {}, "GET")
    assert code == 401


# -- our additions -----------------------------------------------------------------------------


async def test_miners_get_filters(farm: Stack):
    everything = await farm.ok("/api/mining/miners/get", {})
    assert everything["total"] == len(ALL)
    assert [m["ip"] for m in everything["miners"]] == ALL
    assert {m["make"] for m in everything["miners"]} == {"Antminer", "Whatsminer"}
    first = everything["miners"][0]
    assert first["make"] == "Antminer" and first["group"] == "стенд"
    assert first["reading"] is None or first["reading"]["hashrate_ths"] is not None
    by_group = await farm.ok("/api/mining/miners/get", {"group": "склад"})
    assert [m["ip"] for m in by_group["miners"]] == [SLOW, *WHATS]
    by_range = await farm.ok("/api/mining/miners/get", {"range": first["range_id"]})
    assert [m["ip"] for m in by_range["miners"]] == MAIN
    by_mac = await farm.ok("/api/mining/miners/get", {"macs": [first["mac"]]})
    assert [m["mac"] for m in by_mac["miners"]] == [first["mac"]]
    page = await farm.ok("/api/mining/miners/get", {"offset": 1, "limit": 1,
                                                    "state": ["ok", "new"]})
    assert page["total"] == len(ALL) and [m["ip"] for m in page["miners"]] == [MAIN[1]]
    none = await farm.ok("/api/mining/miners/get", {"state": "unreachable"})
    assert none["total"] == 0 and none["miners"] == [] and none["addresses"] == []
    # every address of the ranges is accounted for, by state
    network = await farm.ok("/api/mining/get-network", {})
    size = sum(int(ipaddress.IPv4Address(r["last"])) - int(ipaddress.IPv4Address(r["first"])) + 1
               for g in network["ip_range_groups"] for r in g["ip_ranges"])
    assert sum(everything["counts"].values()) == size
    assert everything["counts"]["ok"] + everything["counts"]["new"] == len(ALL)


async def test_audit_log_names_who_what_and_outcome(farm: Stack):
    mac = mac_of(farm, MAIN[0])
    task_id = (await farm.ok("/api/mining/miners/set-led-status",
                             {"macs": [mac, "02:00:00:00:00:09"], "status": 0}))["task_id"]
    await farm.wait(task_id)
    entries = await farm.ok("/api/audit/get", {"task_id": task_id})
    assert [e["event"] for e in entries] == ["end", "start"]
    end, start = entries
    assert start["who"] == "key:" + farm.key.split(".")[1] + " (tests)"
    assert start["selector"] == {"macs": [mac, "02:00:00:00:00:09"]}
    assert start["params"] == {"status": 0} and start["devices"] == 2
    assert end["summary"] == {"ok": 1, "failed": 1, "unknown": 0, "not_started": 0}
    assert end["status"] == "success"
    # passwords never reach the audit log
    await farm.task("/api/mining/miners/set-pools", {"macs": [mac], "pools": [
        None, None, {"address": "stratum+tcp://c:3", "worker": "w", "passwd": "hunter22"}]})
    text = (farm.agent.config.state_dir / "audit.log").read_text(encoding="utf-8")
    assert "hunter22" not in text


async def test_serial_methods_without_meter_support_say_so(tmp_path):
    """A registry without any serial backend: the serial methods answer 501, honestly."""
    from webbo.plugins.inputs import bitmain_http

    registry = PluginRegistry()
    registry.register(bitmain_http, "bitmain_http")
    text = config_text(tmp_path / "state", [])
    async with stack(tmp_path, registry, text) as s:
        for path, body in [("/api/serial/get-ports", {}), ("/api/serial/devices/get", {}),
                           ("/api/serial/devices/add", {"device": {
                               "port": "/dev/ttyACM0", "device_model": "230",
                               "serial_number": "43099131-20"}}),
                           ("/api/serial/devices/delete", {"serial_number": "43099131-20"})]:
            code, answer = await s.call(path, body)
            assert code == 501, (path, answer)
            assert answer == {"success": False, "payload": answer["payload"]}
            assert "no meter support is loaded" in answer["payload"]
        # and a bad body is still a 422 first? no: the backend check comes after decoding
        code, answer = await s.call("/api/serial/devices/add", {"device": {"port": "x"}})
        assert code == 422 and "serial_number: required" in answer["payload"]


async def test_serial_methods_with_a_simulated_meter_at_its_factory_address(tmp_path):
    """The manual's add/get/delete bodies: a Mercury 230 on a pty at its factory address (98,
    from its serial number) is added with the manual's body alone; one moved to another
    address needs ``address``."""
    from webbo.agent.core.contract import SimOptions

    registry = default_registry()
    meter = {"serial_number": "47457598-22", "device_model": "230", "address": 98}
    sim = await registry.simulators["mercury"].start(0, SimOptions(extra={"meters": [meter]}))
    try:
        async with stack(tmp_path, registry, config_text(tmp_path / "state", [])) as s:
            port = sim.devices[0]["port"]
            ports = await s.task("/api/serial/get-ports", {"include_all": True})
            assert ports["status"] == "success" and isinstance(ports["result"], list)
            device = {"port": port, "device_model": "230", "serial_number": "47457598-22"}
            failed = await s.task("/api/serial/devices/add", {"device": {**device, "address": 5}})
            assert failed["status"] == "failure" and "factory address" in failed["result"]
            added = await s.task("/api/serial/devices/add", {"device": device})
            assert added == {"status": "success", "result": True}
            devices = await s.ok("/api/serial/devices/get", {})
            assert [(d["serial_number"], d["address"], d["port"]) for d in devices] == [
                ("47457598-22", 98, port)]
            assert list(devices[0]) == ["port", "port_settings", "serial_number", "device_model",
                                        "address", "access_level", "password_1", "password_2"]
            deleted = await s.task("/api/serial/devices/delete",
                                   {"serial_number": "47457598-22"})
            assert deleted == {"status": "success", "result": True}
            assert await s.ok("/api/serial/devices/get", {}) == []
    finally:
        await sim.close()


async def test_agent_status_shows_a_refused_reload(farm: Stack):
    status = await farm.ok("/api/agent/get-status", {})
    assert status["reload_error"] is None and "inputs" in status and "miners" in status
    path = Path(farm.agent.config.path)
    good = await asyncio.to_thread(path.read_text)
    try:
        await asyncio.to_thread(path.write_text, good + "\n[bogus_section]\n")
        assert not await farm.agent.reload_from_file("test")
        status = await farm.ok("/api/agent/get-status", {})
        assert status["reload_error"] == "bogus_section: unknown key"
    finally:
        await asyncio.to_thread(path.write_text, good)
        await farm.agent.reload_from_file("test")
    status = await farm.ok("/api/agent/get-status", {})
    assert status["reload_error"] is None


async def test_ranges_without_a_driver_are_said_loudly_not_silently(tmp_path, registry):
    """A config with ranges but no miner driver (an operator who commented the drivers out):
    set-network answers a warning next to its task_id, the agent's status and every page say
    that nothing is swept."""
    text = config_text(tmp_path, [], web="enabled = true")
    async with stack(tmp_path, registry, text) as s:
        answer = await s.ok("/api/mining/set-network", {"ip_range_groups": [
            {"name": "подсобка", "ip_ranges": [{"name": "пятая стойка",
                                                 "first": "127.31.0.1",
                                                 "last": "127.31.0.9"}]}]})
        assert "task_id" in answer and "no miner driver" in answer["warnings"][0]
        await s.wait(answer["task_id"])
        status = await s.ok("/api/agent/get-status", {})
        assert "no miner driver" in status["miners"]["problem"]
        assert status["miners"]["addresses_by_state"]["pending"] == 9
        from webbo.web.ui.banners import banners

        assert any("драйвер" in text for text in banners(s.agent, "ru"))
