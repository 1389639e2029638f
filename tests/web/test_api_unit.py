"""The pieces of the API that need no network: request decoding, passwords, API keys, login
limits, the state file."""

from __future__ import annotations

import os
import stat

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webbo.web.api.core import METHODS, ApiError, decode_params
from webbo.web.api.schemas import MinersParams, SetPoolsParams
from webbo.web.auth import (
    LoginLimiter,
    TooManyAttempts,
    authenticate_user,
    create_api_key,
    verify_api_key,
)
from webbo.web.passwords import hash_password, verify_password
from webbo.web.state import StateStore

# -- pools ---------------------------------------------------------------------------------------









# -- selectors -----------------------------------------------------------------------------------










# -- tasks ---------------------------------------------------------------------------------------










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
