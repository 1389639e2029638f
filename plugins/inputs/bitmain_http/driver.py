"""The ``bitmain_http`` miner driver: Antminer stock firmware.

* Identification: ``GET /`` answers 401 with ``realm="antMiner...`` (no credentials needed,
  one request); then ``get_system_info.cgi`` (digest auth) gives model, MAC, firmware, hostname
  and serial, cached in the inventory.
* Poll (the hot path): one RPC connection, ``summary+stats+pools`` (one command per connection
  for firmwares that refuse ``+``, remembered per device). Where the RPC port is closed the JSON
  CGIs (``summary.cgi``, ``stats.cgi``, ``pools.cgi``) are read instead.
* Work mode and LED status cost HTTP digest round trips, so they are read every
  ``settings_every`` polls (spread over the cycles by MAC, and right after a control action
  changed them) and carried in the readings in between.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from dataclasses import dataclass
from typing import Any

from webbo.agent.plugin import (
    PRIORITY_FIRMWARE,
    BoardReading,
    ConfigError,
    Device,
    DeviceError,
    DeviceUnreachable,
    DriverContext,
    Duration,
    ErrorCode,
    Identity,
    LedStatus,
    MinerInputConfig,
    PoolReading,
    Probe,
    Reading,
    WorkMode,
    normalise_mac,
)
from webbo.plugins.common.cooling import cooling_from_name
from webbo.plugins.common.numbers import as_float, as_int, to_ths
from webbo.plugins.common.rpc4028 import client as rpc
from webbo.plugins.common.rpc4028.parse import reading_from
from webbo.plugins.inputs.bitmain_http.control import AntminerControl, work_mode_of
from webbo.plugins.inputs.bitmain_http.web import WebClient, get_root

__all__ = ["BitmainConfig", "BitmainDriver"]

class BitmainConfig(MinerInputConfig, kw_only=True):
    """``[[inputs.bitmain_http]]``."""

    username: str = "root"
    password: str = "root"
    """Web (digest) password; keep it in the environment: password = "${ANTMINER_PASSWORD}"."""
    web_port: int = 80
    rpc_port: int = 4028
    timeout: Duration | None = None
    """Time limit of one read (default: [agent] timeout)."""
    conf_timeout: Duration = Duration(30.0)
    """Time limit of set_miner_conf.cgi (real firmware takes up to ~21 s to answer)."""
    readback_timeout: Duration = Duration(20.0)
    """How long to keep reading back a changed work mode or pool list before calling it failed."""
    settings_every: int = 10
    """Read work mode and LED status every this many polls (0: never during polls)."""
    multi_command: bool = True
    raw_writes: bool = False
    """Let /api/mining/miners/command send RPC commands that change the miner (the stock
    firmware usually denies privileged RPC anyway). Reads are always allowed."""

    def check(self) -> Any:
        for key in ("web_port", "rpc_port"):
            if not 0 < getattr(self, key) < 65536:
                yield ConfigError(key, "must be a TCP port (1-65535)")
        if self.settings_every < 0:
            yield ConfigError("settings_every", "must be 0 or more")
        if self.conf_timeout < 1:
            yield ConfigError("conf_timeout", "must be at least 1s")


@dataclass(slots=True)
class _Settings:
    mode: WorkMode | None = None
    led: LedStatus | None = None
    due: int = 0
    """Polls left until the next read (0: read at the next poll)."""


class BitmainDriver(AntminerControl):
    """Antminer stock firmware: RPC stats, CGI identity and control."""

    name = "bitmain_http"
    priority = PRIORITY_FIRMWARE
    make = "Antminer"
    config: BitmainConfig

    def __init__(self, config: BitmainConfig, context: DriverContext) -> None:
        super().__init__(config, context)
        self.ports = (config.web_port, config.rpc_port)
        self.timeout = float(config.timeout) if config.timeout else None
        self.web = WebClient(self.net, config.username, config.password, config.web_port,
                             self.timeout)
        self.no_multi: set[str] = set()
        self.no_rpc: set[str] = set()
        self.settings: dict[str, _Settings] = {}
        self.conf_timeout = float(config.conf_timeout)
        self.readback_timeout = float(config.readback_timeout)

    # -- identification ---------------------------------------------------------------------

    async def identify(self, probe: Probe) -> Identity | None:
        port = self.config.web_port
        if port not in await probe.open_ports():
            return None

        async def root() -> tuple[int, str, str]:
            answer = await get_root(self.net, probe.ip, port)
            probe.note(f"GET / on {port}: {answer[0]} {answer[1][:80]}".strip())
            return answer

        status, challenge, _ = await probe.ask(("http-root", port), root)
        if status != 401 or 'realm="antMiner' not in challenge:
            return None
        # That 401 carried the digest challenge: answer it straight away (one round trip less).
        self.web.digest.learn(f"{probe.ip}:{port}", challenge)
        info = await self.web.json(probe.ip, "/cgi-bin/get_system_info.cgi")
        mac = normalise_mac(str(info.get("macaddr", "")))
        if mac is None:
            network = await self.web.json(probe.ip, "/cgi-bin/get_network_info.cgi")
            mac = normalise_mac(str(network.get("macaddr", "")))
        if mac is None:
            raise DeviceError("get_system_info.cgi tells no usable MAC")
        model = str(info.get("minertype") or "").strip()
        if not model:
            version = await rpc.probe_call(probe, "version", port=self.config.rpc_port)
            model = str((version.get("VERSION") or [{}])[0].get("Type", "Antminer"))
        serial = info.get("serinum") or info.get("serial_no") or ""
        return Identity(driver=self.name, mac=mac, make="Antminer", model=model,
                        firmware=str(info.get("system_filesystem_version", "")),
                        hostname=str(info.get("hostname", "")), serial=str(serial))

    # -- polling ------------------------------------------------------------------------------

    async def poll(self, device: Device) -> Reading:
        reading = None
        if device.mac not in self.no_rpc:
            try:
                reading = await self._poll_rpc(device)
            except DeviceUnreachable:
                reading = await self._poll_cgi(device)  # raises if the web is gone too
                self.no_rpc.add(device.mac)
        else:
            reading = await self._poll_cgi(device)
        await self._settings_into(device, reading)
        reading.cooling = cooling_from_name(device.model) or ("air" if reading.fans_rpm else None)
        if reading.cooling != "air":
            reading.fans_rpm = []  # a hydro model's firmware may still list empty fan slots
        return reading

    async def _poll_rpc(self, device: Device) -> Reading:
        allow = self.config.multi_command and device.mac not in self.no_multi
        parts, joined = await rpc.multicall(self.net, device.ip, ("summary", "stats", "pools"),
                                            port=self.config.rpc_port, timeout=self.timeout,
                                            allow_multi=allow)
        if allow and not joined:
            self.no_multi.add(device.mac)
        return reading_from(parts)

    async def _poll_cgi(self, device: Device) -> Reading:
        summary, stats, pools = await asyncio.gather(
            self.web.json(device.ip, "/cgi-bin/summary.cgi"),
            self.web.json(device.ip, "/cgi-bin/stats.cgi"),
            self.web.json(device.ip, "/cgi-bin/pools.cgi"))
        return reading_from_cgi(summary, stats, pools)

    async def _settings_into(self, device: Device, reading: Reading) -> None:
        every = self.config.settings_every
        state = self.settings.get(device.mac)
        if state is None:
            # Spread the settings reads of a farm over the cycles instead of all at once.
            state = self.settings[device.mac] = _Settings(due=zlib.crc32(device.mac.encode())
                                                          % every if every else 0)
        if every and state.due <= 0:
            await self.refresh_settings(device, state)
            state.due = every
        state.due -= 1
        reading.work_mode = state.mode
        reading.led = state.led
        if state.mode == WorkMode.SLEEP:
            reading.is_mining = False

    async def refresh_settings(self, device: Device, state: _Settings | None = None) -> None:
        """Read work mode and LED now (failures keep the previous values)."""
        if state is None:
            state = self.settings.setdefault(device.mac, _Settings())
        conf, blink = await asyncio.gather(
            self.web.json(device.ip, "/cgi-bin/get_miner_conf.cgi"),
            self.web.json(device.ip, "/cgi-bin/get_blink_status.cgi"),
            return_exceptions=True)
        if isinstance(conf, dict):
            state.mode = work_mode_of(conf)
        if isinstance(blink, dict) and isinstance(blink.get("blink"), bool):
            state.led = LedStatus.BLINK if blink["blink"] else LedStatus.NORMAL

    async def raw(self, device: Device, command: str, params: dict[str, Any],
                  write: bool) -> Any:
        """A command of the miner's RPC (bmminer on 4028) as it is."""
        return await rpc.raw_call(self.net, device.ip, command, params, write=write,
                                  writes_allowed=self.config.raw_writes,
                                  setting="[[inputs.bitmain_http]] raw_writes",
                                  port=self.config.rpc_port, timeout=self.timeout)

    def remember(self, device: Device, *, mode: WorkMode | None = None,
                 led: LedStatus | None = None) -> None:
        """What a control action verified; the next poll reads the settings again anyway."""
        state = self.settings.setdefault(device.mac, _Settings())
        if mode is not None:
            state.mode = mode
        if led is not None:
            state.led = led
        state.due = 0


# -- the JSON CGIs ---------------------------------------------------------------------------


def _num(value: Any) -> float | None:
    return as_float(value)


def _max_positive(values: Any) -> float | None:
    if not isinstance(values, list):
        return None
    numbers = [n for n in (as_float(v) for v in values) if n is not None and n > 0]
    return max(numbers) if numbers else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _first(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return value[0]
    return value if isinstance(value, dict) else {}


def reading_from_cgi(summary: dict[str, Any], stats: dict[str, Any], pools: dict[str, Any]
                     ) -> Reading:
    """A Reading from ``summary.cgi``, ``stats.cgi`` and ``pools.cgi`` (never raises)."""
    s = _first(summary, "SUMMARY")
    st = _first(stats, "STATS")
    unit = str(st.get("rate_unit") or s.get("rate_unit") or "GH/s")
    boards = []
    chains = _list(st.get("chain"))
    for position, chain in enumerate(chains):
        if not isinstance(chain, dict):
            continue
        index = as_int(chain.get("index"))
        boards.append(BoardReading(
            index=index if index is not None else position,
            hashrate_ths=to_ths(chain.get("rate_real"), unit),
            expected_hashrate_ths=to_ths(chain.get("rate_ideal"), unit),
            temp_board_c=_max_positive(chain.get("temp_pcb")),
            temp_chip_c=_max_positive(chain.get("temp_chip")),
            chips=as_int(chain.get("asic_num")), hw_errors=as_int(chain.get("hw")),
            frequency_mhz=_num(chain.get("freq_avg")),
            serial=chain.get("sn") if isinstance(chain.get("sn"), str) else None))
    fan_raw = st.get("fan")
    fan_values = [as_float(x) for x in fan_raw] if isinstance(fan_raw, list) else []
    speeds = [int(f) for f in fan_values if f is not None and 0 <= f < 1e6]
    fan_num = as_int(st.get("fan_num"))
    # fan_num tells how many of the list are fans (a stopped one reads 0); without it a 0
    # cannot be told from an empty slot
    fans = speeds[:fan_num] if fan_num is not None and fan_num >= 0 else \
        [f for f in speeds if f > 0]
    errors = []
    for item in _list(s.get("status")):
        if isinstance(item, dict) and item.get("status") in ("w", "e"):
            errors.append(ErrorCode(code=f"{item.get('type', '')}:{item.get('code', '')}",
                                    message=str(item.get("msg", ""))))
    pool_list = []
    for position, pool in enumerate(_list(pools.get("POOLS"))):
        if not isinstance(pool, dict) or not pool.get("url"):
            continue
        index = as_int(pool.get("index"))
        pool_list.append(PoolReading(
            index=index if index is not None else position, url=str(pool.get("url")),
            user=str(pool.get("user", "")), status=str(pool.get("status", "")),
            active=position == 0 and str(pool.get("status", "")).lower() == "alive",
            accepted=as_int(pool.get("accepted")), rejected=as_int(pool.get("rejected"))))
    temps_board = [b.temp_board_c for b in boards if b.temp_board_c is not None]
    temps_chip = [b.temp_chip_c for b in boards if b.temp_chip_c is not None]
    hashrate = to_ths(s.get("rate_5s", st.get("rate_5s")), unit)
    return Reading(
        time_ns=time.time_ns(), hashrate_ths=hashrate,
        hashrate_avg_ths=to_ths(s.get("rate_avg", st.get("rate_avg")), unit),
        expected_hashrate_ths=to_ths(s.get("rate_ideal", st.get("rate_ideal")), unit),
        temp_board_max_c=max(temps_board) if temps_board else None,
        temp_chip_max_c=max(temps_chip) if temps_chip else None, fans_rpm=fans,
        uptime_s=as_int(s.get("elapsed", st.get("elapsed"))),
        hw_errors=as_int(s.get("hw_all")),
        is_mining=None if hashrate is None else hashrate > 0,
        boards=boards, pools=pool_list, errors=errors)
