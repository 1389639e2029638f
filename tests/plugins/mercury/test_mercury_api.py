"""Meters through the HTTP API (manual §3.5.8–3.5.9), end to end: add a simulated meter →
the agent polls it → its readings land in a real InfluxDB → delete it. And every failure of
``devices/add`` with its reason: no answer, wrong serial, wrong password, port busy, already
added, unknown serial on delete."""

from __future__ import annotations

import contextlib

import pytest
import serial
from api_helpers import stack

from webbo.agent.core.contract import SerialBackend, SimOptions
from webbo.plugins.inputs.mercury.backend import MercuryBackend
from webbo.plugins.inputs.mercury.bus import MeterBuses
from webbo.plugins.inputs.mercury.sim import bus as simulator

MANUAL_DEVICE = {"port": "/dev/ttyACM0", "device_model": "230", "serial_number": "43099131-20"}


def config(state_dir, influx_url: str = "", db: str = "") -> str:
    output = (f'[[outputs.influxdb]]\nurls = ["{influx_url}"]\ndatabase = "{db}"\n'
              if influx_url else "")
    return f"""# meters added through the API: this comment must survive
[agent]
interval = "1s"
flush_interval = "200ms"
internal_metrics = false
[web]
state_dir = "{state_dir}"

## OUTPUTS
{output}
## INPUTS: the API appends meters below
"""


@contextlib.asynccontextmanager
async def simulated(meters):
    sim = await simulator.start(0, SimOptions(extra={"meters": meters}))
    try:
        yield sim
    finally:
        await sim.close()


async def test_add_poll_store_delete_through_the_api(tmp_path, registry, influx_db):
    server, db = influx_db
    server.create_database(db)
    meters = [{"serial_number": "43099131-20", "device_model": "230"}]  # factory address 131
    async with simulated(meters) as sim, \
            stack(tmp_path, registry, config(tmp_path / "state", server.url, db)) as s:
        port = sim.bus.path
        ports = await s.task("/api/serial/get-ports", {})
        assert ports["status"] == "success" and isinstance(ports["result"], list)
        assert await s.ok("/api/serial/devices/get", {}) == []

        # the manual's example body (port, model, serial: no address), with the simulator's
        # port: the meter is found at its factory address, which its serial number gives
        info = await s.task("/api/serial/devices/add", {"device": {**MANUAL_DEVICE,
                                                                   "port": port}})
        assert info == {"status": "success", "result": True}
        devices = await s.ok("/api/serial/devices/get", {})
        assert devices == [{
            "port": port,
            "port_settings": {"baudrate": 9600, "bytesize": 8, "parity": "N", "stopbits": 1,
                              "timeout": None, "xonxoff": False, "rtscts": False,
                              "write_timeout": None, "dsrdtr": False,
                              "inter_byte_timeout": None},
            "serial_number": "43099131-20", "device_model": "230", "address": 131,
            "access_level": 1, "password_1": "111111", "password_2": "222222"}]
        text = s.config_path.read_text()
        assert text.startswith("# meters added through the API: this comment must survive")
        assert text.index("## INPUTS") < text.index("[[inputs.mercury]]")

        def stored() -> list[dict]:
            try:
                return server.rows("SELECT * FROM meter WHERE serial = '43099131-20' "
                                   "AND online = true", db)
            except RuntimeError:
                return []

        await s.wait_for(lambda: len(stored()) >= 2, 60, "meter readings in InfluxDB")
        row = stored()[-1]
        assert row["model"] == "230" and row["port"] == port and row["address"] == "131"
        # the port meters are read on is offered for the next one (a pty is not a USB port)
        ports = await s.task("/api/serial/get-ports", {})
        assert port in ports["result"]
        assert 200 < row["voltage_l1_v"] < 260 and 49 < row["frequency_hz"] < 51
        assert row["energy_active_import_kwh"] > 0
        assert row.get("energy_active_export_kwh") is None  # one-direction: absent, not 0

        again = await s.task("/api/serial/devices/add", {"device": {**MANUAL_DEVICE,
                                                                    "port": port}})
        assert again["status"] == "failure" and "already added" in again["result"]

        info = await s.task("/api/serial/devices/delete", {"serial_number": "43099131-20"})
        assert info == {"status": "success", "result": True}
        assert await s.ok("/api/serial/devices/get", {}) == []
        assert "[[inputs.mercury]]" not in s.config_path.read_text()
        assert s.config_path.read_text().startswith("# meters added through the API")
        assert s.agent.shared.get(MeterBuses).buses == {}  # polling stopped, port closed
        unknown = await s.task("/api/serial/devices/delete", {"serial_number": "43099131-20"})
        assert unknown["status"] == "failure" and "no meter with serial number" in \
            unknown["result"]


async def test_add_failures_say_why(tmp_path, registry):
    meters = [{"serial_number": "32297700-17", "device_model": "230", "address": 1},
              {"serial_number": "47457598-22", "device_model": "230", "address": 98},
              {"serial_number": "20481234-21", "device_model": "204", "address": 34}]
    async with simulated(meters) as sim, \
            stack(tmp_path, registry, config(tmp_path / "state")) as s:
        port = sim.bus.path

        async def add(**device) -> str:
            info = await s.task("/api/serial/devices/add", {"device": {**MANUAL_DEVICE,
                                                                       "port": port, **device}})
            assert info["status"] == "failure", info
            return info["result"]

        # the manual's body for 43099131-20, which is not on this line: nothing answers at its
        # factory addresses (131, or 31 for a "D" meter)
        message = await add()
        assert "does not answer" in message and "factory address (131, 31)" in message
        # an address given: there another meter answers, with its own serial number
        assert "has serial number 32297700, not 43099131" in await add(address=1)
        # 47457598-22 sits at its factory address 98, not at the 1 given; with a line where
        # nothing answers at 1: "no answer", and the factory address is suggested
        sim.meter("32297700-17").fault = "silent"
        message = await add(serial_number="47457598-22", address=1)
        assert "no answer" in message and "factory address of serial 47457598 is 98" in message
        sim.meter("32297700-17").fault = None
        assert "refused the level 1 password" in await add(serial_number="32297700-17",
                                                            address=1, password_1="123456")
        assert "refused the level 2 password" in await add(serial_number="32297700-17",
                                                            address=1, access_level=2,
                                                            password_2="654321")
        assert "not present" in await add(port="/dev/ttyNOPE-webbo")
        holder = serial.Serial(port, exclusive=True)
        try:
            assert "busy" in await add(serial_number="32297700-17", address=1)
        finally:
            holder.close()
        code, answer = await s.call("/api/serial/devices/add", {"device": {
            **MANUAL_DEVICE, "device_model": "200"}})
        assert code in (400, 422) and answer["success"] is False
        assert await s.ok("/api/serial/devices/get", {}) == []
        assert "[[inputs.mercury]]" not in s.config_path.read_text()


async def test_backend_adds_meters_at_other_addresses_and_models(tmp_path, registry):
    """The backend itself (the API's schema may not pass every key): three Mercury 230 of the
    manual on one port at their factory addresses, and a single-phase model check."""
    meters = [{"serial_number": "32297700-17", "device_model": "230", "address": 1},
              {"serial_number": "43099131-20", "device_model": "230", "address": 131},
              {"serial_number": "47457598-22", "device_model": "230", "address": 98},
              {"serial_number": "20481234-21", "device_model": "204", "address": 34,
               "password_encoding": "ascii"}]
    async with simulated(meters) as sim, \
            stack(tmp_path, registry, config(tmp_path / "state")) as s:
        backend = s.agent.service(SerialBackend)
        assert isinstance(backend, MercuryBackend)
        for meter in meters[:3]:
            assert await backend.add_device({"port": sim.bus.path, **meter})
        with pytest.raises(ValueError, match="already used by meter 32297700-17"):
            await backend.add_device({"port": sim.bus.path, "serial_number": "11111111",
                                      "device_model": "230", "address": 1})
        with pytest.raises(Exception, match="reports 1 phase"):
            await backend.add_device({"port": sim.bus.path, "serial_number": "20481234-21",
                                      "device_model": "230", "address": 34})
        # the password is ASCII: the digits encoding is refused, ASCII tried and written down
        assert await backend.add_device({"port": sim.bus.path, "serial_number": "20481234-21",
                                          "device_model": "204", "address": 34})
        assert 'password_encoding = "ascii"' in s.config_path.read_text()
        assert [d["address"] for d in backend.get_devices()] == [1, 131, 98, 34]
        bus = s.agent.shared.get(MeterBuses).buses[sim.bus.path]
        await s.wait_for(lambda: all(slot.readings >= 1 for slot in bus.slots.values()), 30,
                         "every meter read")
        assert len(bus.slots) == 4 and all(slot.readings >= 1 for slot in bus.slots.values())
        first = bus.slots[1]
        assert await backend.delete_device("43099131")  # the 8 digits are enough
        assert bus.slots[1] is first and 131 not in bus.slots  # the others kept polling
        with pytest.raises(ValueError, match="no meter with serial number"):
            await backend.delete_device("43099131-20")
        usb, every = await backend.get_ports(), await backend.get_ports(include_all=True)
        assert set(usb) <= set(every) and all(isinstance(name, str) for name in every)
