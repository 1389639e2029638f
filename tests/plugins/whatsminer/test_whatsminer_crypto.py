"""Whatsminer cryptography and parsers: the reference's test vectors byte for byte, and
property tests proving no parser or decryptor crashes on any input."""

from __future__ import annotations

import base64
import hashlib
import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webbo.agent.core.config import ConfigError, parse_config
from webbo.agent.core.errors import DeviceError
from webbo.agent.fleet.model import Reading
from webbo.plugins.common.rpc4028.client import GarbledReply
from webbo.plugins.inputs.whatsminer.api_v2 import V2Api
from webbo.plugins.inputs.whatsminer.commands import COMMANDS, parse_command
from webbo.plugins.inputs.whatsminer.crypto import (
    CryptoError,
    aes_ecb_decrypt,
    aes_ecb_encrypt,
    md5crypt_body,
    strip_padding,
    v2_decrypt,
    v2_encrypt,
    v2_keys,
    v3_decrypt_param,
    v3_encrypt_param,
    v3_token,
)
from webbo.plugins.inputs.whatsminer.errors import NotAllowed
from webbo.plugins.inputs.whatsminer.normalise import (
    cooling_of,
    error_codes,
    v2_hashing,
    v2_reading,
    v3_reading,
)
from webbo.plugins.inputs.whatsminer.wire import frame, split_frames, unframe

# -- reference §3.4: the worked v2 vector ------------------------------------------------------


def test_v2_worked_vector_byte_for_byte():
    keys = v2_keys("admin", "BQ5hoXV9", "2vg5Ll5O", "6144")
    assert keys.key == "RxmaDUO33TS7O26yeMHZ81"
    assert keys.sign == "kbp1khVgyYHqSZ2PxXcUY."
    assert keys.aeskey.hex() == ("199e0a202039bb7b558db7a54697dca2"
                                 "9cb278055b7e659a127fb844d5a2fbf6")
    plaintext = json.dumps({"cmd": "set_led", "param": "auto", "token": keys.sign}).encode()
    data = v2_encrypt(keys.aeskey, plaintext)
    assert data == ("K5NDiWBAqb++VrZy8g0NEQIjuugciGp5pA1ArzU2pL6M2MqgWrCDTimzsFZ7u2WulPzGpmwkjrW/"
                    "pemIDfp/QPKQ83NFrjVsNytR4FP0KTk=")
    assert v2_decrypt(keys.aeskey, data) == plaintext


def test_v2_request_bytes_match_the_known_clients():
    """Our encrypted request is what pyasic and the whatsminer package send: the vector's
    plaintext (json.dumps spacing, token last) inside {"enc": 1, "data": ...}."""
    keys = v2_keys("admin", "BQ5hoXV9", "2vg5Ll5O", "6144")
    request = json.loads(V2Api(None).encrypt(keys, "set_led", {"param": "auto"}))  # type: ignore[arg-type]
    assert request == {"enc": 1, "data": ("K5NDiWBAqb++VrZy8g0NEQIjuugciGp5pA1ArzU2pL6M2MqgWrCDTim"
                                          "zsFZ7u2WulPzGpmwkjrW/pemIDfp/QPKQ83NFrjVsNytR4FP0KTk=")}


def test_md5crypt_matches_openssl_passwd_field():
    assert md5crypt_body("admin", "BQ5hoXV9") == "RxmaDUO33TS7O26yeMHZ81"
    with pytest.raises(CryptoError):
        md5crypt_body("admin", "bad salt!")


# -- reference §3.6: v3 vectors ---------------------------------------------------------------


def test_v3_token_vectors():
    assert v3_token("set.system.led", "super", "5QAHiKMb", 1692685512)[0] == "T2SlzLcb"
    token, key = v3_token("set.miner.pools", "abcdefg", "QbVy1Ou3", 1700000000)
    assert token == "8XdQZJdP"
    assert key.hex() == "f1775064974f5a81dc7463de110a096abbfa0b3f2e999864e282a01da36289fe"


def test_v3_param_roundtrip_accepts_both_paddings():
    key = v3_token("set.miner.pools", "abcdefg", "QbVy1Ou3", 1700000000)[1]
    pools = [{"pool": "stratum+tcp://a:3333", "worker": "w.1", "passwd": "x"}]
    assert v3_decrypt_param(key, v3_encrypt_param(key, pools)) == pools
    # PKCS#7 (what one client family sends) is accepted too
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    padder = padding.PKCS7(128).padder()
    padded = padder.update(json.dumps(pools).encode()) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    text = base64.b64encode(enc.update(padded) + enc.finalize()).decode()
    assert v3_decrypt_param(key, text) == pools


def test_padding_rules():
    assert strip_padding(b'{"a":1}\0\0\0') == b'{"a":1}'
    assert strip_padding(b'{"a":1}' + bytes([9]) * 9) == b'{"a":1}'
    assert strip_padding(b'{"a":1}') == b'{"a":1}'
    key = hashlib.sha256(b"k").digest()
    assert aes_ecb_decrypt(key, aes_ecb_encrypt(key, b"x" * 16)) == b"x" * 16
    with pytest.raises(CryptoError):
        aes_ecb_decrypt(key, b"short")


def test_v3_framing_and_heartbeats():
    body = b'{"code":0,"msg":"ok"}'
    assert unframe(frame(body)) == {"code": 0, "msg": "ok"}
    assert unframe(b"\0\0\0\0" + frame(body)) == {"code": 0, "msg": "ok"}  # heartbeat first
    frames, used = split_frames(frame(b"{}") + frame(b"[1]") + b"\x05\0")
    assert frames == [b"{}", b"[1]"] and used == 2 * 4 + 2 + 3
    with pytest.raises(GarbledReply, match="cut short"):
        unframe(frame(body)[:-3])


# -- property tests: nothing crashes ----------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=30,
)
KEY = hashlib.sha256(b"RxmaDUO33TS7O26yeMHZ81").digest()


@given(st.text(max_size=200) | st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_decryptors_only_raise_crypto_errors(data):
    for decrypt in (lambda d: v2_decrypt(KEY, d),
                    lambda d: v3_decrypt_param(KEY, d if isinstance(d, str) else d.decode(
                        "latin-1"))):
        try:
            decrypt(data)
        except CryptoError:
            pass


@given(st.binary(max_size=400))
@settings(max_examples=300, deadline=None)
def test_write_reply_reader_fails_only_per_device(raw):
    keys = v2_keys("admin", "BQ5hoXV9", "2vg5Ll5O", "6144")
    try:
        reply = V2Api(None).open_reply(keys, raw, "set_led")  # type: ignore[arg-type]
    except DeviceError:
        return
    assert isinstance(reply, dict)


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_unframe_fails_only_as_garbled(raw):
    try:
        assert isinstance(unframe(raw), dict)
    except GarbledReply:
        pass


@given(json_values, json_values, json_values, json_values, json_values, json_values,
       st.text(max_size=12))
@settings(max_examples=300, deadline=None)
def test_v2_normaliser_never_crashes(summary, devs, pools, status, info, errors, model):
    if isinstance(summary, dict):
        assert v2_hashing(summary) in (True, False)
    for s in (summary, {"SUMMARY": [summary]}, {"Msg": summary}):
        try:
            reading = v2_reading(1, s, devs, pools, status=status, info=info, errors=errors,
                                 psu=info, model=model)
        except GarbledReply:
            continue
        assert isinstance(reading, Reading)
        msgspec.json.encode(reading)


@given(json_values, json_values, json_values, json_values, st.text(max_size=12))
@settings(max_examples=300, deadline=None)
def test_v3_normaliser_never_crashes(summary, edevs, info, setting, model):
    for status in (summary, {"summary": summary, "pools": edevs}):
        try:
            reading = v3_reading(1, status, edevs, info=info, setting=setting, model=model)
        except GarbledReply:
            continue
        assert isinstance(reading, Reading)


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_error_code_parser_never_crashes(value):
    for code in error_codes(value):
        assert isinstance(code.code, str)


@given(st.sampled_from([*COMMANDS, "factory_reset", "net_config"]) | st.text(max_size=20),
       json_values)
@settings(max_examples=300, deadline=None)
def test_allow_list_accepts_or_refuses_clearly(name, args):
    try:
        command, checked = parse_command({"name": name, "args": args})
    except NotAllowed as exc:
        assert str(exc).startswith("command")
        return
    assert command.name == name
    assert isinstance(command.v2(checked), tuple) and isinstance(command.v3(checked), tuple)


def test_allow_list_has_no_pass_through():
    with pytest.raises(NotAllowed, match="not allowed"):
        parse_command({"name": "factory_reset", "args": {}})
    with pytest.raises(NotAllowed, match="percent"):
        parse_command({"name": "set_power_pct", "args": {"percent": 150}})
    with pytest.raises(NotAllowed, match="unknown field"):
        parse_command({"name": "set_hostname", "args": {"hostname": "a", "cmd": "reboot"}})
    with pytest.raises(NotAllowed, match="hostname"):
        parse_command({"name": "set_hostname", "args": {"hostname": "bad name"}})
    command, args = parse_command({"name": "adjust_power_limit", "args": {"power_limit": 3300}})
    assert command.v2(args) == ("adjust_power_limit", {"power_limit": "3300"})
    assert command.v3(args) == ("set.miner.power_limit", 3300)


# -- config -----------------------------------------------------------------------------------


def _config(registry, body: str):
    return parse_config(f"[[inputs.whatsminer]]\n{body}\n", registry, env={"WM_PW": "s3cret"})


def test_config_defaults_secret_and_checks(registry):
    config = _config(registry, 'password = "${WM_PW}"\ngroups = ["room 1"]')
    (inst,) = config.inputs
    assert inst.config.password == "s3cret" and inst.config.v3_password == "super"
    for body, where in (('token_lifetime = "31m"', "token_lifetime"), ('api = "v4"', "api"),
                        ("port = 0", "port"), ('write_timeout = "0s"', "write_timeout")):
        with pytest.raises(ConfigError, match=rf"inputs\.whatsminer\[0\]\.{where}"):
            _config(registry, body)


@pytest.mark.parametrize(("model", "liquid", "cooling"), [
    ("M30S_VE10", None, "air"), ("M50_VH50", False, "air"), ("M60_VK40", None, "air"),
    ("M53S_VH30", True, "hydro"), ("M33S++_VG40", None, "hydro"),
    ("M56S_VH30", True, "immersion"), ("M66S", None, "immersion"),
    ("Whatsminer", True, "hydro"), ("Whatsminer", "false", "air"), ("", None, None),
])
def test_cooling_from_the_model_series_or_the_liquid_flag(model, liquid, cooling):
    assert cooling_of(model, liquid) == cooling
