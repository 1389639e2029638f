"""Mercury 230-family wire format: the byte vectors of reference §13 exactly, the codecs, and
property tests that no parser crashes on any byte string."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webbo.plugins.inputs.mercury import protocol as p
from webbo.plugins.inputs.mercury.config import PortSettings
from webbo.plugins.inputs.mercury.link import SerialLink
from webbo.plugins.inputs.mercury.sim.bus import request_length
from webbo.plugins.inputs.mercury.sim.meter import MeterSpec, SimMeter


def hx(text: str) -> bytes:
    return bytes.fromhex(text)


# -- §13.1: published frames, every CRC checks ------------------------------------------------

PUBLISHED = [
    "00 00 01 B0",
    "01 00 00 20",
    "00 01 01 01 01 01 01 01 01 77 81",
    "00 01 02 12 13 14 15 16 17 34 17",
    "00 05 00 00 10 25",
    "00 30 00 28 C5 FF FF FF FF 04 00 9C 95 FF FF FF FF 44 AB",
    "00 08 11 11 4D BA",
    "00 00 40 5E B0 1C",
    "00 48 87 70 E2 26",
    "00 05 C1 B3",
    "00 02 80 71",
    "00 00 18 71 CA",
    "CB 12 05 07 24 05 16 00 00 00 00 02 00 9D D0",
    "FE 12 34 56 63 36 EB",
    "00 06 47 5E 63 23 58 02 64 00 05 88 45 C6",
    "00 A6 B7 20 27 00 26 56 16 00 13 70 91 00 00 00 00 00 00 00 00 47 78",
]


@pytest.mark.parametrize("text", PUBLISHED)
def test_published_frames_have_valid_crc(text):
    data = hx(text)
    assert p.crc_ok(data)
    assert p.frame(data[:-2]) == data
    broken = data[:-1] + bytes((data[-1] ^ 1,))
    assert not p.crc_ok(broken)


def test_published_wb_values_decode():
    assert p.dec3(hx("00 40 5E")) == 24128  # 241.28 V
    assert p.dec3(hx("48 87 70"), "active") == 553095  # reactive reverse only
    assert p.dec3(hx("48 87 70"), "reactive") == -553095
    assert p.dec3(hx("C8 87 70"), "active") == -553095
    reply = hx("00 30 00 28 C5 FF FF FF FF 04 00 9C 95 FF FF FF FF 44 AB")
    assert p.decode_energy(reply[1:-2]) == {
        "energy_active_import_kwh": 3196.2, "energy_reactive_import_kvarh": 300.444}
    assert int.from_bytes(hx("00 18"), "big", signed=True) == 24
    assert p.decode_single(0x70, hx("00 18")) == {"temperature_c": 24.0}


def test_manufacturer_examples_decode():
    assert p.dec3(hx("00 5B 56")) == 22107  # U1 221.07 V
    assert p.decode_single(0x40, hx("00 87 13")) == {"frequency_hz": 49.99}
    assert p.dec3(hx("40 2D 02"), "active") == 557  # PF 0.557, reactive reverse
    info = p.decode_serial(hx("29 5A 40 43 16 06 14"))
    assert (info.digits, info.made) == ("41906467", "22.06.2020")
    assert p.decode_energy(hx("00 00 70 0A FF FF FF FF 00 00 E8 03 00 00 00 00")) == {
        "energy_active_import_kwh": 2.672, "energy_reactive_import_kvarh": 1.0,
        "energy_reactive_export_kvarh": 0.0}
    v3 = p.decode_variant(hx("B4 E3 C2 97 DF 58"))
    assert (v3.phases, v3.two_directions, v3.reactive, v3.constant) == (3, False, True, 500)
    v1 = p.decode_variant(hx("B4 F5 C3 BD DB C8"))
    assert (v1.phases, v1.constant) == (1, 250)
    assert p.decode_group(p.Bwri.THD, hx("C9 00 C8 00 10 01")) == {
        "voltage_thd_l1_pct": 2.01, "voltage_thd_l2_pct": 2.0, "voltage_thd_l3_pct": 2.72}


# -- §13.2: the requested exchanges, byte for byte --------------------------------------------

DIGITS_1 = p.password_bytes("111111", "digits")
REQUESTS = [
    (p.test_request(1), "01 00 00 20"),
    (p.test_request(0), "00 00 01 B0"),
    (p.open_request(1, 1, DIGITS_1), "01 01 01 01 01 01 01 01 01 7A 11"),
    (p.open_request(1, 1, p.password_bytes("111111", "ascii")), "01 01 01 31 31 31 31 31 31 24 FE"),
    (p.open_request(1, 2, bytes([2] * 6)), "01 01 02 02 02 02 02 02 02 BD 97"),
    (p.open_request(0, 1, DIGITS_1), "00 01 01 01 01 01 01 01 01 77 81"),
    (p.open_request(0, 2, bytes(range(0x12, 0x18))), "00 01 02 12 13 14 15 16 17 34 17"),
    (p.serial_request(1), "01 08 00 27 C0"),
    (p.group_request(1, 0x11), "01 08 16 11 4E 76"),
    (p.single_request(1, 0x11), "01 08 11 11 4C 46"),
    (p.single_request(0, 0x11), "00 08 11 11 4D BA"),
    (p.group_request(1, 0x21), "01 08 16 21 4E 62"),
    (p.group_request(1, 0x00), "01 08 16 00 8E 7A"),
    (p.group_request(1, 0x40), "01 08 16 40 8F 8A"),
    (p.energy_request(1), "01 05 00 00 11 D9"),
    (p.energy_request(0), "00 05 00 00 10 25"),
    (p.energy_request(1, 1), "01 05 00 01 D0 19"),
    (p.energy_request(1, 0, array=6), "01 05 60 00 39 D9"),
    (p.variant_request(1), "01 08 12 A7 CD"),
    (p.address_request(0), "00 08 05 B6 03"),
    (p.close_request(1), "01 02 81 E1"),
]


@pytest.mark.parametrize(("request_", "wire"), REQUESTS, ids=[r[0].what for r in REQUESTS])
def test_requests_are_byte_exact(request_, wire):
    assert p.describe(request_.frame) == wire


REPLIES = [
    ("01 20 1D 4D 00 0F 03 11 7F 79", lambda d: p.decode_serial(d).digits, "32297700"),
    ("01 20 1D 4D 00 0F 03 11 7F 79", lambda d: p.decode_serial(d).made, "15.03.2017"),
    ("01 00 E4 59 00 CB 59 00 41 5A E0 5B", lambda d: p.decode_group(p.Bwri.VOLTAGE, d),
     {"voltage_l1_v": 230.12, "voltage_l2_v": 229.87, "voltage_l3_v": 231.05}),
    ("01 00 E4 59 8A E2", lambda d: p.decode_single(0x11, d), {"voltage_l1_v": 230.12}),
    ("01 00 03 14 00 C4 09 00 EE 02 0B FA", lambda d: p.decode_group(p.Bwri.CURRENT, d),
     {"current_l1_a": 5.123, "current_l2_a": 2.5, "current_l3_a": 0.75}),
    ("01 02 E0 FE 01 42 B7 01 26 01 00 78 46 2E 32", lambda d: p.decode_group(p.Bwri.POWER_P, d),
     {"power_active_w": 1963.2, "power_active_l1_w": 1124.5, "power_active_l2_w": 658.3,
      "power_active_l3_w": 180.4}),
    ("01 00 89 13 27 85", lambda d: p.decode_group(p.Bwri.FREQUENCY, d), {"frequency_hz": 50.01}),
    ("01 BC 00 4E 61 FF FF FF FF 23 00 CE CA 00 00 00 00 42 08", p.decode_energy,
     {"energy_active_import_kwh": 12345.678, "energy_reactive_import_kvarh": 2345.678,
      "energy_reactive_export_kvarh": 0.0}),
    ("01 B4 E3 C2 97 DF 58 00 3C", lambda d: p.decode_variant(d).raw, hx("B4 E3 C2 97 DF 58")),
    ("00 00 01 B0 00", lambda d: d[1], 1),
]


@pytest.mark.parametrize(("wire", "decode", "expected"), REPLIES)
def test_replies_decode_exactly(wire, decode, expected):
    frame = hx(wire)
    assert p.crc_ok(frame)
    assert decode(frame[1:-2]) == expected


@pytest.mark.parametrize(("wire", "status"), [
    ("01 00 00 20", 0), ("01 01 C1 E0", 1), ("01 03 40 21", 3), ("01 05 C0 23", 5),
    ("00 05 C1 B3", 5), ("00 02 80 71", 2)])
def test_status_frames(wire, status):
    frame = hx(wire)
    assert p.crc_ok(frame) and len(frame) == 4
    assert frame[1] & 0x0F == status
    assert p.status_text(status)


def test_fast_read_layout():
    parts = [p.enc3(196320), p.enc3(112450), p.enc3(65830), p.enc3(18040)]  # P
    parts += [p.enc3(10000, reactive_reverse=True)] * 4  # Q, capacitive
    parts += [p.enc3(200000)] * 4  # S
    parts += [p.enc3(23012), p.enc3(22987), p.enc3(23105)]  # U
    parts += [p.enc3(12000), p.enc3(24000), p.NO_VALUE_3]  # angles, U2-U3 unknown
    parts += [p.enc3(5123), p.enc3(2500), p.enc3(750)]  # I
    parts += [p.enc3(980), p.enc3(990), p.enc3(970), p.enc3(960)]  # PF
    parts += [p.enc3(5001)]  # f
    data = b"".join(parts)
    assert len(data) == p.FAST_READ_DATA
    fields = p.decode_fast_read(data)
    assert fields["power_active_w"] == 1963.2
    assert fields["power_reactive_l2_var"] == -100.0
    assert fields["voltage_l3_v"] == 231.05
    assert fields["angle_l1_l3_deg"] == 240.0
    assert "angle_l2_l3_deg" not in fields  # FF FF FF: absent, never 0
    assert fields["current_l1_a"] == 5.123
    assert fields["power_factor"] == 0.98
    assert fields["frequency_hz"] == 50.01
    tail = bytes.fromhex("C900C8001001") + (-5).to_bytes(2, "big", signed=True) + \
        p.enc3(39860) * 3
    extended = p.decode_fast_read(data + tail)
    assert extended["temperature_c"] == -5.0
    assert extended["voltage_l1_l2_v"] == 398.6
    with pytest.raises(p.ProtocolError):
        p.decode_fast_read(data[:-1])


# -- identities -------------------------------------------------------------------------------


@pytest.mark.parametrize(("serial", "d_model", "address"), [
    ("38395190", False, 190), ("38395790", False, 90), ("38395700", False, 1),
    ("38395190", True, 90), ("38395790", True, 90), ("38395700", True, 20),
    ("38395507", True, 17), ("32297700", False, 1), ("43099131", False, 131),
    ("47457598", False, 98),
])
def test_factory_address(serial, d_model, address):
    assert p.factory_address(serial, d_model=d_model) == address


def test_serial_number_formats():
    assert p.parse_serial_number("32297700-17") == ("32297700", 17)
    assert p.parse_serial_number("32297700") == ("32297700", None)
    for bad in ("3229770", "32297700-2017", "abcdefgh", "32297700-"):
        with pytest.raises(ValueError):
            p.parse_serial_number(bad)
    # two digits per byte, leading zeros kept (a real bug elsewhere drops them)
    info = p.SerialInfo("32297700", 15, 3, 17)
    assert p.encode_serial(info) == hx("20 1D 4D 00 0F 03 11")
    assert p.decode_serial(hx("01 02 03 04 01 01 18")).digits == "01020304"


def test_password_encodings():
    assert p.password_bytes("111111", "digits") == bytes([1] * 6)
    assert p.password_bytes("111111", "ascii") == b"111111"
    assert p.password_bytes("AAAAAA", "digits") == bytes([10] * 6)
    with pytest.raises(ValueError):
        p.password_bytes("qwerty", "digits")
    with pytest.raises(ValueError):
        p.password_bytes("11111", "digits")


# -- no parser crashes on any bytes -----------------------------------------------------------

DECODERS = [
    lambda d: p.decode_serial(d),
    lambda d: p.decode_variant(d),
    lambda d: p.decode_energy(d),
    lambda d: p.decode_fast_read(d),
    *[lambda d, q=q: p.decode_group(q, d) for q in p.QUANTITIES],
    *[lambda d, b=b: p.decode_single(b, d) for b in (0x00, 0x04, 0x08, 0x11, 0x21, 0x30, 0x40,
                                                      0x51, 0x61, 0x70, 0x81)],
]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=100), st.sampled_from(range(len(DECODERS))))
def test_decoders_never_crash(data, which):
    try:
        result = DECODERS[which](data)
    except p.ProtocolError:
        return
    assert result is not None


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=40))
def test_crc_roundtrip(body):
    framed = p.frame(body)
    assert p.crc_ok(framed)
    assert framed[:-2] == body


@given(st.integers(0, 0x3FFFFF), st.booleans(), st.booleans())
def test_three_byte_roundtrip(value, active, reactive):
    wire = p.enc3(value, active_reverse=active, reactive_reverse=reactive)
    if wire == p.NO_VALUE_3:
        return
    assert abs(p.dec3(wire)) == value
    assert p.dec3(wire, "active") == (-value if active else value)
    assert p.dec3(wire, "reactive") == (-value if reactive else value)


@given(st.integers(0, 0xFFFFFFFE))
def test_energy_roundtrip(value):
    assert p.dec4(p.enc4(value)) == value
    assert p.dec4(p.enc4(None)) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_simulated_meter_and_request_splitter_never_crash(data):
    meter = SimMeter(MeterSpec("32297700-17", "230", 1), random.Random(1))
    reply = meter.handle(data)
    if not p.crc_ok(data):
        assert reply is None
    assert 0 <= request_length(data) <= len(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.sampled_from(REQUESTS), st.booleans())
def test_reply_finder_never_crashes(data, item, settled):
    link = SerialLink("/dev/null", PortSettings())
    request = item[0]
    found = link._find_reply(bytearray(data), request, settled)
    if found is not None:
        assert p.crc_ok(found) and found[0] == request.address
        assert len(found) in (*request.reply_lengths, 4)
    error = link._failure(bytearray(data), request)
    assert str(error)
