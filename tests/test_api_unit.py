"""The pieces of the API that need no network: pools merge, task life cycle, request decoding,
passwords, API keys, login limits, the state file."""

from __future__ import annotations

import asyncio
import os
import stat
import uuid

import msgspec
import pytest
from api_helpers import MANUAL_POOLS
from hypothesis import given, settings
from hypothesis import strategies as st

from webbo.agent.core.config import IPRange, IPRangeGroup, NetworkSection
from webbo.agent.fleet.control import (
    AuditLog,
    PoolSpec,
    Selector,
    TaskRegistry,
    merge_pools,
    redact,
    select,
    worker_with_suffix,
)
from webbo.agent.fleet.inventory import Device
from webbo.web.api.core import METHODS, ApiError, decode_params
from webbo.web.api.schemas import MinersParams, SetPoolsParams
from webbo.web.auth import (
    LoginLimiter,
    TooManyAttempts,
    authenticate_user,
    create_api_key,
    hash_password,
    verify_api_key,
    verify_password,
)
from webbo.web.state import StateStore

# -- pools ---------------------------------------------------------------------------------------



def test_manual_worked_example_of_set_pools():
    """§3.5.7: only the second slot changes; james with suffix ip on 10.30.0.16."""
    requested = [None, PoolSpec("stratum+tcp://super-duper.pool:443", "james", "654321", "ip"),
                 None]
    merged = merge_pools(MANUAL_POOLS, requested, "10.30.0.16")
    assert merged == [
        MANUAL_POOLS[0],
        {"address": "stratum+tcp://super-duper.pool:443", "worker": "james.0x16",
         "passwd": "654321"},
        MANUAL_POOLS[2],
    ]


@pytest.mark.parametrize(("suffix_type", "ip", "current", "expected"), [
    ("ip", "10.30.0.16", "john-doe.001", "james.0x16"),
    ("ip", "10.30.123.234", "", "james.123x234"),
    ("no_change", "10.30.0.16", "john-doe.001", "james.001"),
    ("no_change", "10.30.0.16", "john-doe.rack.7", "james.rack.7"),
    ("no_change", "10.30.0.16", "john-doe", "james"),
    ("no_change", "10.30.0.16", "", "james"),
    ("empty", "10.30.0.16", "john-doe.001", "james"),
])
def test_worker_suffix_rules(suffix_type, ip, current, expected):
    assert worker_with_suffix("james", suffix_type, ip, current) == expected


def test_all_null_keeps_everything():
    assert merge_pools(MANUAL_POOLS, [None, None, None], "10.30.0.16") == MANUAL_POOLS


# -- selectors -----------------------------------------------------------------------------------


def _device(mac: str, ip: str) -> Device:
    return Device(mac=mac, ip=ip, driver="x", make="M", model="m")


NETWORK = NetworkSection(ip_range_groups=[IPRangeGroup(
    name="g", uuid="2a67feee-08f0-4ce1-89cd-7f8282bd1369", ip_ranges=[
        IPRange(name="a", uuid="7c1cfbf8-76b5-41e1-a61e-6dcb5fb40dbd",
                first="10.30.0.0", last="10.30.0.127"),
        IPRange(name="b", uuid="8c1cfbf8-76b5-41e1-a61e-6dcb5fb40dbd",
                first="10.30.1.0", last="10.30.1.255")])])
DEVICES = [_device("00:00:00:00:00:02", "10.30.1.5"), _device("00:00:00:00:00:01", "10.30.0.16"),
           _device("00:00:00:00:00:03", "10.30.0.200")]


def test_selectors_resolve_by_mac_range_and_ids():
    assert [d.mac for d in select(DEVICES, NETWORK, Selector(macs="*")).devices] == [
        "00:00:00:00:00:01", "00:00:00:00:00:03", "00:00:00:00:00:02"]
    chosen = select(DEVICES, NETWORK, Selector(macs=("00:00:00:00:00:02", "00:00:00:00:00:09")))
    assert [d.mac for d in chosen.devices] == ["00:00:00:00:00:02"]
    assert chosen.missing == ["00:00:00:00:00:09"]
    by_span = select(DEVICES, NETWORK, Selector(ip_range=("10.30.0.10", "10.30.0.128")))
    assert [d.ip for d in by_span.devices] == ["10.30.0.16"]
    by_range = select(DEVICES, NETWORK,
                      Selector(ip_range_id="8c1cfbf8-76b5-41e1-a61e-6dcb5fb40dbd"))
    assert [d.ip for d in by_range.devices] == ["10.30.1.5"]
    by_group = select(DEVICES, NETWORK,
                      Selector(ip_range_group_id="2a67feee-08f0-4ce1-89cd-7f8282bd1369"))
    assert [d.ip for d in by_group.devices] == ["10.30.0.16", "10.30.1.5"]


@pytest.mark.parametrize("selector", [
    Selector(ip_range_id=str(uuid.uuid4())),
    Selector(ip_range_group_id=str(uuid.uuid4())),
    Selector(ip_range=("10.30.0.9", "10.30.0.1")),
])
def test_unresolvable_selectors_are_errors(selector):
    from webbo.agent.fleet.control import SelectionError

    with pytest.raises(SelectionError):
        select(DEVICES, NETWORK, selector)


# -- tasks ---------------------------------------------------------------------------------------


async def test_task_life_cycle_reports_once_then_unknown():
    tasks = TaskRegistry(ttl=3600)
    gate = asyncio.Event()

    async def body(_):
        await gate.wait()
        return {"x": 1}

    task = tasks.run(tasks.create("m", "who"), body)
    assert uuid.UUID(task.id).version == 4
    assert tasks.info(task.id) == {"status": "pending", "result": None}
    assert tasks.info(task.id.upper()) == {"status": "pending", "result": None}
    gate.set()
    await task.handle
    assert tasks.info(task.id) == {"status": "success", "result": {"x": 1}}
    assert tasks.info(task.id) == {"status": "unknown", "result": None}
    assert tasks.info("nope") == {"status": "invalid", "result": None}
    assert tasks.info(str(uuid.uuid1())) == {"status": "invalid", "result": None}
    assert tasks.info(str(uuid.uuid4())) == {"status": "unknown", "result": None}


async def test_finished_unread_tasks_expire():
    tasks = TaskRegistry(ttl=10)

    async def body(_):
        return True

    task = tasks.run(tasks.create("m", "who"), body)
    await task.handle
    assert tasks.expire(now=task.finished + 5) == 0
    assert tasks.expire(now=task.finished + 11) == 1
    assert tasks.info(task.id)["status"] == "unknown"


async def test_cancel_of_a_pending_task():
    tasks = TaskRegistry(ttl=3600)
    started = asyncio.Event()

    async def body(task):
        started.set()
        while not task.cancel_requested:  # noqa: ASYNC110 (the flag is what cancel sets)
            await asyncio.sleep(0.01)
        return "partial"

    task = tasks.run(tasks.create("m", "who"), body)
    await started.wait()
    assert await tasks.cancel(task.id) == {"status": "canceled", "result": None}
    assert tasks.info(task.id) == {"status": "canceled", "result": None}
    assert tasks.info(task.id)["status"] == "unknown"
    assert (await tasks.cancel("bad"))["status"] == "invalid"


def test_audit_log_is_0600_and_reads_newest_first(tmp_path):
    audit = AuditLog(tmp_path / "audit.log")
    for i in range(5):
        audit.write({"event": "x", "task_id": str(i), "who": "key:1"})
    assert stat.S_IMODE(os.stat(tmp_path / "audit.log").st_mode) == 0o600
    assert [e["task_id"] for e in audit.read(limit=2)] == ["4", "3"]
    assert [e["task_id"] for e in audit.read(task_id="1")] == ["1"]
    assert redact({"pools": [{"passwd": "s"}, None], "password_1": "111111"}) == {
        "pools": [{"passwd": "***"}, None], "password_1": "***"}


# -- decoding ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "status", "fragment"), [
    (b"", 400, "empty"),
    (b"{", 400, "not valid JSON"),
    (b"[]", 422, "expected object"),
    (b"{}", 422, "exactly one of macs, ip_range, ip_range_id, ip_range_group_id"),
    (b'{"macs":"*","ip_range_id":"2a67feee-08f0-4ce1-89cd-7f8282bd1369"}', 422, "got 2"),
    (b'{"macs":["CE:86:7E:E5:1B:33"]}', 422, "macs[0]: expected a lower-case MAC"),
    (b'{"macs":"all"}', 422, "macs: invalid value 'all'"),
    (b'{"ip_range_id":"not-a-uuid"}', 422, "ip_range_id: expected a UUID4"),
    (b'{"ip_range":{"first":"10.30.0.300","last":"10.30.0.1"}}', 422, "ip_range.first"),
    (b'{"ip_range":{"first":"10.30.0.9","last":"10.30.0.1"}}', 422, "before first"),
    (b'{"macs":"*","extra":1}', 422, "extra: unknown field"),
])
def test_selector_errors_name_the_rule(body, status, fragment):
    with pytest.raises(ApiError) as info:
        decode_params(body, MinersParams)
    assert info.value.status_code == status
    assert fragment in info.value.detail


def test_pools_errors():
    pool = {"address": "a", "worker": "w", "passwd": "p"}
    for pools, fragment in [([pool] * 4, "exactly three slots"),
                            ([pool], "exactly three slots"),
                            ([None, {**pool, "suffix_type": "x"}, None],
                             "pools[1].suffix_type: invalid value 'x'"),
                            ([None, {"address": "a"}, None], "pools[1].worker: required")]:
        body = msgspec.json.encode({"macs": "*", "pools": pools})
        with pytest.raises(ApiError) as info:
            decode_params(body, SetPoolsParams)
        assert info.value.status_code == 422
        assert fragment in info.value.detail, info.value.detail


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_no_body_crashes_the_decoder(body):
    """Any byte string: decoded, or refused with a 400/422 — never another exception."""
    for method in METHODS.methods:
        try:
            decode_params(body, method.params)
        except ApiError as exc:
            assert exc.status_code in (400, 422)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["macs", "ip_range", "ip_range_id", "ip_range_group_id",
                                        "pools", "status", "mode", "task_id", "device",
                                        "serial_number", "ip_range_groups", "first", "last"]),
                       json_values, max_size=4))
def test_no_json_object_crashes_the_decoder(data):
    body = msgspec.json.encode(data)
    for method in METHODS.methods:
        try:
            decode_params(body, method.params)
        except ApiError as exc:
            assert exc.status_code in (400, 422)


# -- auth ----------------------------------------------------------------------------------------


def test_password_hashing():
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("wrong", stored)
    assert not verify_password("x", "garbage")


def test_api_keys_are_shown_once_stored_hashed_and_revocable(tmp_path):
    store = StateStore(tmp_path / "state")
    key, record = create_api_key(store, "ci")
    assert key.split(".")[1] == record.id
    text = (tmp_path / "state" / "web.json").read_text()
    assert key.split(".")[2] not in text and record.hash in text
    assert stat.S_IMODE(os.stat(tmp_path / "state" / "web.json").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "state").st_mode) == 0o700
    # another process's store (the CLI) sees the key at once
    other = StateStore(tmp_path / "state")
    assert verify_api_key(other, key) is not None
    assert verify_api_key(other, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert verify_api_key(other, "wbk.000000000000.x") is None
    assert verify_api_key(other, "") is None
    assert other.remove_key(record.id)
    assert verify_api_key(store, key) is None


def test_last_used_is_recorded(tmp_path):
    store = StateStore(tmp_path)
    _, record = create_api_key(store)
    assert store.touch_key(record.id, now=1000.0)
    store.flush()
    assert StateStore(tmp_path).key(record.id).last_used == 1000.0
    assert not store.touch_key(record.id, now=1001.0)  # within the resolution: memory only


def test_first_start_creates_miner_once(tmp_path):
    store = StateStore(tmp_path)
    password = store.ensure_default_user()
    assert password and len(password) >= 20
    assert store.ensure_default_user() is None
    assert verify_password(password, store.data.users["miner"].password_hash)
    assert store.data.session_secret


def test_logins_are_rate_limited_per_address_and_user(tmp_path):
    store = StateStore(tmp_path)
    store.set_password("miner", "s3cret-pass")
    limiter = LoginLimiter(attempts=3, window=60)
    for _ in range(3):
        assert authenticate_user(store, limiter, "127.10.0.1", "miner", "nope") is None
    with pytest.raises(TooManyAttempts):
        authenticate_user(store, limiter, "127.10.0.1", "miner", "s3cret-pass")
    # another address, or another user name, is not locked out
    assert authenticate_user(store, limiter, "127.10.0.2", "miner", "s3cret-pass") is not None
    assert authenticate_user(store, limiter, "127.10.0.1", "admin", "x") is None
    # the window slides
    limiter.check("127.10.0.1", "miner", now=10**9)


def test_limiter_memory_is_bounded():
    limiter = LoginLimiter(attempts=1, window=60, max_pairs=100)
    for i in range(1000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}", "miner", now=1.0)
    assert len(limiter._failures) == 100
