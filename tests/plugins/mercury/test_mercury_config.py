"""``[[inputs.mercury]]`` is the manual's device object: defaults, and a clear key-path error for
every mistake (alone or across meters)."""

from __future__ import annotations

import tomllib

import pytest
from project import ROOT

from webbo.agent.core.config import ConfigError, load_config, parse_config
from webbo.plugins.inputs.mercury.backend import device_config

SAMPLE = ROOT / "plugins" / "inputs" / "mercury" / "sample.toml"


def meter(serial="32297700-17", model="230", port="/dev/ttyUSB0", **extra) -> str:
    lines = ["[[inputs.mercury]]", f'port = "{port}"', f'serial_number = "{serial}"',
             f'device_model = "{model}"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def error_of(text: str, registry) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, registry, env={})
    return str(info.value)


def test_defaults_are_the_manuals(registry):
    config = parse_config(meter(), registry, env={})
    (m,) = config.instances("inputs", "mercury")
    assert m.as_manual() == {
        "port": "/dev/ttyUSB0",
        "port_settings": {"baudrate": 9600, "bytesize": 8, "parity": "N", "stopbits": 1,
                          "timeout": None, "xonxoff": False, "rtscts": False,
                          "write_timeout": None, "dsrdtr": False, "inter_byte_timeout": None},
        "serial_number": "32297700-17", "device_model": "230", "address": 1,
        "access_level": 1, "password_1": "111111", "password_2": "222222"}
    assert m.password_encoding == "digits"


@pytest.mark.parametrize(("text", "expected"), [
    (meter(model="200"), "inputs.mercury[0].device_model: unsupported model '200' "
                                      "(supported: 203.2TD, 204, 208, 230, 231, 234, 236, 238)"),
    (meter(password_1='"11111"'), "inputs.mercury[0].password_1: must be exactly 6 characters"),
    (meter(password_2='"2222222"'), "inputs.mercury[0].password_2: must be exactly 6 characters"),
    (meter(password_1='"qwerty"'), 'inputs.mercury[0].password_1: with password_encoding = '
                                   '"digits" every character is 0-9 or A-F'),
    (meter(serial="3229770"), "inputs.mercury[0].serial_number: expected 8 digits"),
    (meter(access_level=3), "inputs.mercury[0].access_level: must be 1 or 2"),
    (meter(address=241), "inputs.mercury[0].address: must be 1..240"),
    (meter(port="COM3"), 'inputs.mercury[0].port: expected a device path'),
    (meter(password_encoding='"hex"'), "inputs.mercury[0].password_encoding: "),
    (meter(port_settings="{ baudrate = 9601 }"),
     "inputs.mercury[0].port_settings.baudrate: 9601 is not a speed"),
    (meter(port_settings='{ parity = "X" }'), "inputs.mercury[0].port_settings.parity: must be"),
    (meter(port_settings="{ stopbits = 3 }"), "inputs.mercury[0].port_settings.stopbits"),
    (meter(port_settings="{ timeout = -1 }"),
     "inputs.mercury[0].port_settings.timeout: cannot be negative"),
    (meter(port_settings="{ exclusive = true }"),
     "inputs.mercury[0].port_settings.exclusive: unknown key"),
    (meter(bogus=1), "inputs.mercury[0].bogus: unknown key"),
    (meter() + meter(serial="32297700"),
     "inputs.mercury[1].serial_number: meter 32297700 is already configured as "
     "inputs.mercury[0]"),
    (meter() + meter(serial="43099131-20"),
     "inputs.mercury[1].address: address 1 on /dev/ttyUSB0 is already used by "
     "inputs.mercury[0]"),
    (meter() + meter(serial="43099131-20", address=131, port_settings="{ baudrate = 19200 }"),
     "inputs.mercury[1].port_settings: differ from inputs.mercury[0] on the same port"),
    (meter(address=0) + meter(serial="43099131-20", address=131),
     "inputs.mercury[0].address: address 0 makes every meter"),
])
def test_errors_name_the_key(registry, text, expected):
    assert expected in error_of(text, registry)


def test_same_address_on_two_ports_is_fine(registry):
    text = meter() + meter(serial="43099131-20", port="/dev/ttyUSB1")
    assert len(parse_config(text, registry, env={}).inputs) == 2


def test_none_port_settings_are_left_out_of_toml(registry):
    text = meter(port_settings="{ baudrate = 19200, timeout = 0.5 }")
    (m,) = parse_config(text, registry, env={}).instances("inputs", "mercury")
    assert m.port_settings.as_table() == {"baudrate": 19200, "bytesize": 8, "parity": "N",
                                          "stopbits": 1, "timeout": 0.5, "xonxoff": False,
                                          "rtscts": False, "dsrdtr": False}
    assert m.port_settings.as_manual()["write_timeout"] is None


def test_sample_toml_is_valid(registry, tmp_path):
    text = SAMPLE.read_text()
    tomllib.loads(text)
    path = tmp_path / "webbo.toml"
    path.write_text(text)
    config = load_config(path, registry)
    assert len(config.instances("inputs", "mercury")) >= 1


def test_api_device_objects_are_validated_like_the_file():
    config = device_config({"port": "/dev/ttyACM0", "device_model": "230",
                            "serial_number": "43099131-20"})
    assert (config.address, config.access_level, config.port_settings.baudrate) == (1, 1, 9600)
    for device, expected in [
        ({"port": "/dev/ttyACM0", "device_model": "250", "serial_number": "43099131-20"},
         "device.device_model: unsupported model '250'"),
        ({"port": "/dev/ttyACM0", "device_model": "230"},
         "device.serial_number: required key is missing"),
        ({"port": "/dev/ttyACM0", "device_model": "230", "serial_number": "43099131-20",
          "password_1": "1"}, "device.password_1: must be exactly 6 characters"),
        ({"port": "/dev/ttyACM0", "device_model": "230", "serial_number": "43099131-20",
          "interval": "1s"}, "device.interval: unknown key"),
        ({"port": "/dev/ttyACM0", "device_model": "230", "serial_number": "43099131-20",
          "port_settings": {"baudrate": 9600, "exclusive": True}},
         "device.port_settings.exclusive: unknown key"),
        ({"port": "/dev/ttyACM0", "device_model": "230", "serial_number": "43099131-20",
          "address": "1"}, "device.address: expected int, got str"),
        ("nope", "device: expected an object"),
    ]:
        with pytest.raises(ValueError) as info:
            device_config(device)
        assert expected in str(info.value)


def test_transformer_ratios(registry):
    config = parse_config(meter(current_ratio=100), registry, env={})
    (m,) = config.instances("inputs", "mercury")
    assert (m.current_ratio, m.voltage_ratio) == (100, 1)
    assert "inputs.mercury[0].current_ratio: must be 1..10000, not 0" in error_of(
        meter(current_ratio=0), registry)
