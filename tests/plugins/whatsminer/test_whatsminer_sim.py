"""The simulated Whatsminers on the wire: what a client sees byte for byte on 4028, 4433 and
the web port, the token rules, the state shared by both APIs, and every fault."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from whatsminer_support import running

from webbo.agent.core.contract import SimOptions
from webbo.plugins.common.rpc4028 import client as rpc
from webbo.plugins.inputs.whatsminer import sim
from webbo.plugins.inputs.whatsminer.crypto import (
    v2_decrypt,
    v2_encrypt,
    v2_keys,
    v3_encrypt_param,
    v3_token,
)


async def ask(ip: str, payload: bytes, port: int = 4028, timeout: float = 10.0) -> bytes:
    """One request; everything the miner sends until it closes."""
    reader, writer = await asyncio.open_connection(ip, port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


async def cmd(ip: str, name: str, key: str = "cmd") -> dict:
    return json.loads(await ask(ip, json.dumps({key: name}).encode()))


async def framed(reader, writer, body: dict) -> dict:
    raw = json.dumps(body).encode()
    writer.write(len(raw).to_bytes(4, "little") + raw)
    size = int.from_bytes(await asyncio.wait_for(reader.readexactly(4), 10), "little")
    return json.loads(await asyncio.wait_for(reader.readexactly(size), 10))


async def v3(ip: str, body: dict) -> dict:
    reader, writer = await asyncio.open_connection(ip, 4433)
    try:
        return await framed(reader, writer, body)
    finally:
        writer.close()


async def keys_of(ip: str, password: str = "admin"):
    reply = await cmd(ip, "get_token")
    assert reply["STATUS"] == "S" and reply["Code"] == 134, reply
    msg = reply["Msg"]
    return v2_keys(password, msg["salt"], msg["newsalt"], msg["time"])


async def write(ip: str, keys, name: str, **params) -> dict:
    body = json.dumps({"cmd": name, **params, "token": keys.sign}).encode()
    raw = await ask(ip, json.dumps({"enc": 1, "data": v2_encrypt(keys.aeskey, body)}).encode())
    outer = json.loads(raw)
    if set(outer) == {"enc"}:
        return {"encrypted": True, **json.loads(v2_decrypt(keys.aeskey, outer["enc"]))}
    return outer


def v3_write(device, name: str, param=None, *, password=None, ts=None, account="super"):
    ts = int(device.clock.now()) if ts is None else ts
    token, key = v3_token(name, password or device.v3_password, device.v3_salt, ts)
    body = {"cmd": name, "ts": ts, "token": token, "account": account}
    if param is not None:
        body["param"] = param
    return body, key


# -- 4028 reads -------------------------------------------------------------------------------


async def test_reads_in_both_key_styles_no_nul_and_close():
    async with running(profiles=["m56s"]) as s:
        ip = s.devices[0]["ip"]
        raw = await ask(ip, b'{"command":"summary"}')
        assert not raw.endswith(b"\x00")  # btminer sends no NUL (unlike cgminer on Antminers)
        a = json.loads(raw)
        b = await cmd(ip, "summary")
        for reply in (a, b):
            status = reply["STATUS"][0]
            assert status["STATUS"] == "S" and status["Code"] == 11
            assert status["Description"] == "cgminer 4.9.2" and reply["id"] == 1
        summary = b["SUMMARY"][0]
        for key in ("MHS 1m", "Factory GHS", "Power", "Power Limit", "Env Temp", "Power Mode",
                    "Fan Speed In", "Fan Speed Out", "Elapsed", "MAC"):
            assert key in summary
        version = await cmd(ip, "get_version")
        assert version["STATUS"] == "S" and version["Code"] == 131  # flat style
        assert version["Msg"]["fw_ver"] == "20240624.18.REL" and version["Description"] == ""
        details = await cmd(ip, "devdetails", key="command")
        assert {d["Driver"] for d in details["DEVDETAILS"]} == {"bitmicro"}
        assert details["DEVDETAILS"][0]["Model"] == "M56S_VH30"
        assert len(details["DEVDETAILS"]) == 4


async def test_multi_command_nests_full_replies_but_never_get_commands():
    async with running(profiles=["m50"]) as s:
        ip = s.devices[0]["ip"]
        reply = await cmd(ip, "summary+edevs+pools", key="command")
        assert set(reply) == {"summary", "edevs", "pools", "id"}
        assert reply["edevs"][0]["DEVS"][2]["ASC"] == 2
        assert reply["pools"][0]["POOLS"][0]["POOL"] == 1
        refused = await cmd(ip, "summary+get_version", key="command")
        assert refused["STATUS"] == "E" and refused["Code"] == 14
        assert (await cmd(ip, "nonsense"))["Msg"] == "invalid cmd"
        garbled = json.loads(await ask(ip, b"not json at all"))
        assert garbled["STATUS"] == "E" and garbled["Code"] == 23
        plain_write = await cmd(ip, "reboot")  # writes must come encrypted
        assert plain_write["STATUS"] == "E" and plain_write["Code"] == 45
        assert not s.device(ip).log


async def test_firmware_quirks_on_the_wire():
    async with running(3, profiles=["m30s", "m50", "m56s"]) as s:
        old, mid, new = (d["ip"] for d in s.devices)
        for ip in (old, mid):
            s.device(ip).errors = {"111": "2024-06-15 10:30:00", "531": "2024-06-16 08:00:00"}
        # v1: btmineroff, codes in the summary, no get_error_code, no MAC in get_miner_info
        assert "btmineroff" in (await cmd(old, "status"))["Msg"]
        summary = (await cmd(old, "summary"))["SUMMARY"][0]
        assert summary["Error Code Count"] == 2 and summary["Error Code 0"] == 111
        assert (await cmd(old, "get_error_code"))["Code"] == 14
        assert "mac" not in (await cmd(old, "get_miner_info"))["Msg"]
        # 2.0.4: the error_code "list" that is really a dict; 2023-01-06: ""temp0
        raw = await ask(mid, b'{"cmd":"get_error_code"}')
        assert b'"error_code":["111":"2024-06-15 10:30:00","531":' in raw
        with pytest.raises(json.JSONDecodeError):
            json.loads(raw)
        assert rpc.decode(raw)["Msg"]["error_code"] == {"111": "2024-06-15 10:30:00",
                                                         "531": "2024-06-16 08:00:00"}
        psu = await ask(mid, b'{"cmd":"get_psu"}')
        assert b'""temp0"' in psu and "temp0" in rpc.decode(psu)["Msg"]
        # 2.0.5: clean JSON
        assert json.loads(await ask(new, b'{"cmd":"get_error_code"}'))["Code"] == 131


# -- 4028 writes and tokens -------------------------------------------------------------------


async def test_encrypted_write_changes_state_and_answers_encrypted():
    async with running(profiles=["m50"], password="s3cret") as s:
        ip = s.devices[0]["ip"]
        keys = await keys_of(ip, "s3cret")
        reply = await write(ip, keys, "set_led", color="red", period=1000, duration=500, start=0)
        assert reply == {"encrypted": True, "STATUS": "S", "When": reply["When"], "Code": 131,
                         "Msg": "API command OK", "Description": ""}
        assert (await cmd(ip, "get_miner_info"))["Msg"]["ledstat"] == "manual"
        reply = await write(ip, keys, "set_low_power")  # the same token, again
        assert reply["Code"] == 131
        assert (await cmd(ip, "summary"))["SUMMARY"][0]["Power Mode"] == "Low"
        assert [c for c, _ in s.device(ip).log] == ["set_led", "set_low_power"]


async def test_token_rules_30_minutes_and_32_per_address():
    async with running(2, profiles=["m50", "m56s"]) as s:
        clear, quirky = (d["ip"] for d in s.devices)
        keys = await keys_of(clear)
        for _ in range(31):
            await keys_of(clear)
        over = await cmd(clear, "get_token")
        assert over["STATUS"] == "E" and over["Code"] == 136 and over["Msg"] == "over max connect"
        assert (await write(clear, keys, "set_normal_power"))["Code"] == 131  # still valid
        s.clock.advance(30 * 60 + 1)
        expired = await write(clear, keys, "set_normal_power")
        assert expired == {"STATUS": "E", "When": expired["When"], "Code": 135,
                           "Msg": "check token err", "Description": ""}
        fresh = await keys_of(clear)  # the quota freed as the old tokens died
        assert (await write(clear, fresh, "set_normal_power"))["Code"] == 131
        # the encrypted_errors firmware sends the same refusal encrypted
        keys = await keys_of(quirky)
        s.clock.advance(30 * 60 + 1)
        refusal = await write(quirky, keys, "set_normal_power")
        assert refusal["encrypted"] and refusal["Code"] == 135


async def test_wrong_key_write_switch_off_and_bad_params():
    async with running(2, profiles=["m56s"], faults_by_ip=[None, "write_disabled"],
                       password="right") as s:
        ip, locked = (d["ip"] for d in s.devices)
        wrong = await keys_of(ip, "wrong")  # a token, but the key of another password
        assert (await write(ip, wrong, "reboot"))["Msg"] == "json cmd err"
        keys = await keys_of(ip, "right")
        bad = await write(ip, keys, "update_pools", pool1="stratum+tcp://a:1")
        assert bad["Code"] == 132 and "param" in bad["Msg"]
        off = await write(locked, await keys_of(locked, "right"), "set_led", param="auto")
        assert off["STATUS"] == "E" and off["Msg"] == "can't access write cmd"
        assert not s.device(ip).log and not s.device(locked).log


# -- 4433 ---------------------------------------------------------------------------------------


async def test_v3_framing_reads_and_persistent_connection():
    async with running(profiles=["m60"]) as s:
        ip = s.devices[0]["ip"]
        reader, writer = await asyncio.open_connection(ip, 4433)
        try:
            writer.write(b"\0\0\0\0")  # a heartbeat is no request
            info = await framed(reader, writer, {"cmd": "get.device.info"})
            assert info["code"] == 0 and info["desc"] == "get.device.info"
            assert set(info["msg"]) >= {"network", "miner", "system", "power", "salt",
                                        "error-code"}
            assert info["msg"]["miner"]["type"] == "M60_VK40"
            salt = await framed(reader, writer, {"cmd": "get.device.info", "param": "salt"})
            assert salt["msg"] == {"salt": s.device(ip).v3_salt}
            status = await framed(reader, writer, {"cmd": "get.miner.status",
                                                   "param": "summary+pools+edevs"})
            assert set(status["msg"]) == {"summary", "pools", "edevs"}
            assert status["msg"]["summary"]["factory-hash"] == 172.0
            missing = await framed(reader, writer, {"cmd": "get.miner.status"})
            assert missing["code"] == -3
            unknown = await framed(reader, writer, {"cmd": "get.nothing"})
            assert unknown == {"code": -2, "when": unknown["when"], "msg": "invalid command",
                               "desc": "get.nothing"}
        finally:
            writer.close()
        # the v2-compat port answers reads, not writes
        assert (await cmd(ip, "get_version"))["Msg"]["fw_ver"] == "20250321.14.REL"
        assert (await cmd(ip, "get_token"))["STATUS"] == "E"


async def test_v3_writes_tokens_permission_and_encrypted_pools():
    async with running(2, profiles=["m60"], faults_by_ip=[None, "write_disabled"],
                       v3_password="farm123") as s:
        ip, locked = (d["ip"] for d in s.devices)
        device = s.device(ip)
        body, _ = v3_write(device, "set.system.led", "auto")
        assert (await v3(ip, body))["msg"] == "ok"
        body, _ = v3_write(device, "set.system.led", "auto", password="super")
        assert (await v3(ip, body))["code"] == -4
        body, _ = v3_write(device, "set.system.led", "auto", ts=int(time.time()) - 3600)
        assert (await v3(ip, body))["code"] == -4  # stale timestamp
        body, _ = v3_write(device, "set.system.led", "auto", account="user1")
        assert (await v3(ip, body))["code"] == -4
        pools = [{"pool": "stratum+tcp://p:1", "worker": "w.1", "passwd": "x"}]
        body, _ = v3_write(device, "set.miner.pools", pools)
        assert (await v3(ip, body))["code"] == -3  # pools must come encrypted
        body, key = v3_write(device, "set.miner.pools")
        body["param"] = v3_encrypt_param(key, pools)
        assert (await v3(ip, body))["code"] == 0
        assert device.pools[0].url == "stratum+tcp://p:1" and device.pools[0].passwd == "x"
        body, _ = v3_write(device, "set.miner.service", "stop")
        assert (await v3(ip, body))["code"] == 0
        assert (await cmd(ip, "status"))["Msg"]["mineroff"] == "true"  # one state, two APIs
        body, _ = v3_write(s.device(locked), "set.system.led", "auto")
        assert (await v3(locked, body))["code"] == -4


# -- web port, faults, reboot, options ----------------------------------------------------------


async def test_web_port_redirects_to_luci():
    async with running(profiles=["m56s"], http_port=18480) as s:
        ip = s.devices[0]["ip"]
        raw = await ask(ip, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", port=18480)
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 307")
        assert f"Location: https://{ip}/cgi-bin/luci".encode() in head
        assert b"/cgi-bin/luci" in body


async def test_faults():
    faults = ["refuse", "silent", "garbage", "slow", "oversized"]
    async with running(5, profiles=["m56s"], faults_by_ip=faults) as s:
        refuse, silent, garbage, slow, oversized = (d["ip"] for d in s.devices)
        with pytest.raises(ConnectionRefusedError):
            await ask(refuse, b'{"cmd":"summary"}')
        with pytest.raises(TimeoutError):
            await ask(silent, b'{"cmd":"summary"}', timeout=0.5)
        junk = await ask(garbage, b'{"cmd":"summary"}')
        with pytest.raises(rpc.GarbledReply):
            rpc.decode(junk)
        started = time.monotonic()
        assert json.loads(await ask(slow, b'{"cmd":"summary"}'))["SUMMARY"]
        assert time.monotonic() - started >= 0.9
        raw = await ask(oversized, b'{"cmd":"get_error_code"}')
        assert len(raw) == 8192 and not raw.endswith(b"}")  # the firmware cut it
        codes = rpc.decode(rpc.repair(raw))["Msg"]["error_code"]
        assert 100 < len(codes) < 400


async def test_reboot_goes_away_and_comes_back_fresh():
    async with running(profiles=["m50"], reboot_seconds=1.5) as s:
        ip = s.devices[0]["ip"]
        device = s.device(ip)
        keys = await keys_of(ip)
        await write(ip, keys, "set_led", param="auto")
        body = json.dumps({"cmd": "reboot", "token": keys.sign}).encode()
        raw = await ask(ip, json.dumps({"enc": 1, "data": v2_encrypt(keys.aeskey, body)}).encode())
        assert raw == b""  # btminer hangs up and reboots
        with pytest.raises(ConnectionRefusedError):
            await ask(ip, b'{"cmd":"summary"}')
        for _ in range(400):  # back after reboot_seconds; wait up to 20 s
            if not device.rebooting:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
        summary = (await cmd(ip, "summary"))["SUMMARY"][0]
        assert summary["Uptime"] < 5
        assert (await write(ip, keys, "set_led", param="auto"))["Code"] == 135  # tokens gone


async def test_family_options_are_checked():
    with pytest.raises(ValueError, match=r"127\.0\.0\.0/8"):
        await sim.start(["10.0.0.1"], SimOptions())
    with pytest.raises(ValueError, match="faults"):
        await sim.start(["127.4.0.1"], SimOptions(
            extra={"whatsminer": {"faults_by_ip": {"127.4.0.1": "fire"}}}))
    with pytest.raises(ValueError, match="profiles"):
        await sim.start(["127.4.0.1"], SimOptions(extra={"whatsminer": {"profiles": ["s19"]}}))


async def test_devices_describe_themselves_and_faults_follow_shares():
    async with running(40, faults={"silent": 0.25, "refuse": 0.25}, seed=7) as s:
        assert len(s.devices) == 40
        first = s.devices[0]
        assert {"ip", "mac", "make", "model", "api", "firmware"} <= set(first)
        assert first["make"] == "Whatsminer"
        assert {d["model"] for d in s.devices} == {"M30S_VE10", "M50_VH50", "M56S_VH30",
                                                   "M60_VK40"}
        assert {d["api"] for d in s.devices} == {"v2", "v3"}
        assert len({d["mac"] for d in s.devices}) == 40
        faulty = [d["fault"] for d in s.devices if d["fault"]]
        assert 8 <= len(faulty) <= 32 and set(faulty) == {"silent", "refuse"}


async def test_simulate_cli_faults_and_quirks_apply_to_whatsminers():
    """``webbo simulate`` hands every family the same shares: ours are used, others' ignored."""
    async with running(2, profiles=["m56s"], faults={"half": 1.0, "fire": 0.0},
                       quirks={"trailing_comma": 1.0, "missing_comma": 1.0}) as s:
        ip = s.devices[0]["ip"]
        assert s.devices[0]["fault"] == "half" and "trailing_comma" in s.devices[0]["quirks"]
        raw = await ask(ip, b'{"cmd":"get_version"}')
        assert raw.startswith(b'{"STATUS":"S"') and not raw.rstrip().endswith(b"}")
    async with running(profiles=["m56s"], quirks={"trailing_comma": 1.0}) as s:
        raw = await ask(s.devices[0]["ip"], b'{"command":"summary"}')
        assert raw.endswith(b'"id":1,}') and rpc.decode(raw)["SUMMARY"]
