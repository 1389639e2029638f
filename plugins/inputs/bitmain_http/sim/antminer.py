"""Simulated Antminers (stock firmware): bmminer's RPC on 4028 and the lighttpd CGI web
interface with digest auth, byte for byte as reference §1 and §2 describe them.

Models: Antminer S19, S19j Pro, S19 XP, S21, T21 (the default mix), and S21 Hyd., a hydro
model without fans (``fan_num`` 0), when ``extra["models"]`` names it. Each device has a stable
MAC, serial and
hostname, hash boards whose hashrate and temperatures drift smoothly (values change every
5 seconds, like the firmware's "5s" averages, so RPC and CGI readers agree), fans that follow
the load, and state that control changes and keeps:

* work mode: ``set_miner_conf.cgi`` honours ``miner-mode`` (int or string) and ignores a
  ``bitmain-work-mode``-only write, as field reports say; ``get_miner_conf.cgi`` then reads
  ``bitmain-work-mode``. Sleep → hashrate 0, fans slow, boards cool. Models without low-power
  mode (the S19 here) answer OK to mode 3 and keep mining normally;
* pools: posted pools persist (RPC ``pools`` shows them, without passwords);
* the locate LED (``blink.cgi`` / ``get_blink_status.cgi``);
* reboot: the device goes away for ``extra["reboot_seconds"]`` and comes back with uptime 0.

Firmware variants (``extra["quirks"]`` shares or ``quirks_by_ip``, besides the §1.4 quirks):
``fan_stopped`` — one fan of the miner stands still and reads 0 rpm (``fan2``; ``fan_num``
still counts it), as a dead fan does.

``set_miner_conf.cgi`` takes ``extra["conf_delay"]`` seconds (real firmware: up to ~21 s).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import time
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from webbo.agent.plugin import SimOptions
from webbo.plugins.common.rpc4028.sim_server import (
    QUIRKS,
    HttpDevice,
    assign_faults,
    check_loopback,
    close_servers,
    listen_http,
    listen_rpc,
    servers_at,
    sim_mac,
    status,
)
from webbo.plugins.common.simpower import LOADS, PowerModel, PowerTiming
from webbo.plugins.inputs.bitmain_http.sim.digest_server import DigestServer

__all__ = ["DEFAULT_MODELS", "MODELS", "VARIANTS", "AntminerSim", "SimAntminer", "start"]

REALM = "antMiner Configuration"
_json = msgspec.json.Encoder()


@dataclass(frozen=True)
class Model:
    name: str
    chips: int
    nominal_ths: float
    freq: int
    fans: int
    low_power: bool
    compile_time: str
    fs_version: str
    miner_version: str
    sn_prefix: str
    serial_key: str = "serinum"
    has_miner_type_cgi: bool = True
    power_w: int = 3250
    """Draw at full hashrate (the stock firmware does not report it; the simulated meter and
    the power controller's estimates see it)."""


MODELS: dict[str, Model] = {m.name: m for m in (
    Model("Antminer S19", 76, 95.0, 650, 4, False, "Wed Mar 24 14:54:38 CST 2021",
          "Wed Mar 24 14:54:38 CST 2021", "49.0.1.3", "JYZZD", has_miner_type_cgi=False,
          power_w=3250),
    Model("Antminer S19j Pro", 126, 104.0, 525, 4, True, "Tue Dec  6 16:12:30 CST 2022",
          "Mon Dec 26 17:31:32 CST 2022", "49.0.1.3", "SMTTD", power_w=3068),
    Model("Antminer S19 XP", 110, 141.0, 575, 4, True, "Thu Jun 20 11:42:17 CST 2024",
          "FR-1.8(240620-S19XP)", "uart_trans.1.3", "HKYZD", power_w=3010),
    Model("Antminer S21", 108, 200.0, 490, 4, True, "Thu Oct  9 18:55:45 CST 2025",
          "FR-1.12(251009-S21)", "uart_trans.1.3", "THQIN", power_w=3500),
    Model("Antminer T21", 108, 190.0, 490, 4, True, "Fri Aug 15 10:20:31 CST 2025",
          "FR-1.10(250815-T21)", "uart_trans.1.3", "TKZZD", power_w=3610),
    Model("Antminer S21 Hyd.", 216, 335.0, 500, 0, True, "Thu Oct  9 18:55:45 CST 2025",
          "FR-1.12(251009-S21Hyd)", "uart_trans.1.3", "THHYD", power_w=5360),
)}
DEFAULT_MODELS = ("Antminer S19", "Antminer S19j Pro", "Antminer S19 XP", "Antminer S21",
                  "Antminer T21")
"""The mix of a farm that names no models (the hydro model only when asked for)."""
VARIANTS = ("fan_stopped",)
"""Firmware variants this family shows, besides the §1.4 quirks of every 4028 device."""
BOARDS = 3
ANTMINER_OUI = "E0:A5:09"  # a Bitmain vendor prefix seen on control boards
IDLE_W = 30
"""Asleep: the control board and the fans at their slowest."""
LOW_POWER_SHARE = 0.72
"""Low-power mode's share of the full draw."""


def _wave(t: float, period: float, phase: float) -> float:
    return math.sin(2 * math.pi * t / period + phase)


class SimAntminer(HttpDevice):
    """One Antminer: RPC personality (bmminer) plus the CGI web interface."""

    description = "cgminer 1.0.0"

    def __init__(self, ip: str, model: Model, *, seed: int, fault: str = "",
                 quirks: tuple[str, ...] = (), password: str = "root",
                 conf_delay: float = 0.2, reboot_seconds: float = 3.0,
                 slow_delay: float = 3.0, power_timing: PowerTiming | None = None) -> None:
        super().__init__(ip, sim_mac(seed, ip, ANTMINER_OUI), fault=fault, quirks=quirks,
                         write_access=False, slow_delay=slow_delay)
        self.model = model
        self.password = password
        self.conf_delay = conf_delay
        self.reboot_seconds = reboot_seconds
        digest = hashlib.blake2b(f"{seed}/{ip}".encode(), digest_size=16).digest()
        self.rng = random.Random(digest)
        self.phase = [self.rng.uniform(0, 6.28) for _ in range(8)]
        self.serial = model.sn_prefix + "".join(
            self.rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(12))
        self.board_sn = [f"{model.sn_prefix[:4]}{self.rng.randrange(10**11):011d}"
                         for _ in range(BOARDS)]
        self.hostname = "Antminer"
        self.miner_id = digest[:8].hex()
        self.board_factor = [self.rng.uniform(0.97, 1.03) for _ in range(BOARDS)]
        self.full_w = model.power_w * sum(self.board_factor) / BOARDS
        """This unit's draw at full hashrate (a few % off the model's nominal)."""
        self.ambient = self.rng.uniform(22.0, 30.0)
        account = f"farm{self.rng.randrange(1, 9)}"
        worker = "x".join(ip.split(".")[2:])
        self.pools = [
            {"url": "stratum+tcp://btc.pool.example:3333", "user": f"{account}.{worker}",
             "pass": "x"},
            {"url": "stratum+tcp://btc-backup.pool.example:443", "user": f"{account}.{worker}",
             "pass": "x"},
            {"url": "", "user": "", "pass": ""},
        ]
        self.work_mode = 0
        self.blink = False
        self.fan_ctrl = False
        self.fan_pwm = "100"
        self.freq_level = "100"
        self.digest = DigestServer(REALM)
        self.conf_writes = 0
        self.power_model = PowerModel(self.steady_power(), idle_w=IDLE_W, timing=power_timing)
        self._snap_key = -1
        self._snap: dict[str, Any] = {}
        self.commands = {
            "version": self._version,
            "summary": self._summary,
            "stats": self._stats,
            "estats": self._stats,
            "pools": self._pools,
            "devs": self._devs,
            "devdetails": self._devdetails,
        }

    # -- the physics ---------------------------------------------------------------------

    def on_reboot(self) -> None:
        self.blink = False
        self._snap_key = -1

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name == "work_mode" and self.__dict__.get("power_model") is not None:
            self.power_model.follow(value != 1, self.steady_power())

    def steady_power(self) -> float:
        if self.work_mode == 1:
            return float(IDLE_W)
        low = self.work_mode == 3 and self.model.low_power
        return self.full_w * (LOW_POWER_SHARE if low else 1.0)

    def load(self) -> float:
        """The hash boards' share of full work now: follows the draw (waking up, sleeping)."""
        watts = self.power_model.watts() if self.power_model is not None else self.full_w
        return min(1.0, max(0.0, (watts - IDLE_W) / (self.full_w - IDLE_W)))

    def snapshot(self) -> dict[str, Any]:
        """Everything that drifts, fixed for 5-second windows (RPC and CGI agree); the load
        follows the draw, so a miner waking up shows its hashrate climbing."""
        now = time.time()
        load = round(self.load(), 2)
        key = int(now // 5) * 1_000_000 + self.steer_version % 1_000_000
        if key == self._snap_key and load == self._snap.get("load"):
            return self._snap
        t = int(now // 5) * 5.0
        steer = self.steering
        heat_extra = steer.get("heat_c", 0.0)
        hash_factor = steer.get("hash_factor", 1.0)
        dead_boards = int(steer.get("dead_boards", 0))
        p = self.phase
        asleep = self.work_mode == 1 and load == 0.0
        low = self.work_mode == 3 and self.model.low_power
        # what the firmware expects of its mode (not of the moment: a board waking up is
        # below it until it has tuned)
        nominal_share = 0.0 if self.work_mode == 1 else (LOW_POWER_SHARE if low else 1.0)
        nominal_gh = self.model.nominal_ths * 1000.0
        boards = []
        for i in range(BOARDS):
            drift = 1 + 0.012 * _wave(t, 173 + 31 * i, p[i]) + 0.004 * _wave(t, 41, p[i + 3])
            dead = i >= BOARDS - dead_boards
            rate = nominal_gh / BOARDS * self.board_factor[i] * drift * load * hash_factor
            rate *= 0.0 if dead else 1.0
            heat = 0.0 if asleep else (14.0 if low else 22.0) * min(1.0, hash_factor)
            pcb = self.ambient + 20.0 + heat * (1 + 0.05 * _wave(t, 211, p[i])) + i
            if asleep:
                pcb = self.ambient + 4.0 + i * 0.3
            pcb += heat_extra
            chip = pcb + (0.0 if asleep else 12.0 + 1.5 * _wave(t, 97, p[i + 2]))
            boards.append({
                "rate": round(rate, 2),
                "ideal": round(nominal_gh / BOARDS * nominal_share, 2),
                "pcb": [round(pcb - 2), round(pcb - 24), round(pcb - 7), round(pcb - 6)],
                "chip": [round(chip - 2), round(chip - 24), round(chip - 7), round(chip - 6)],
                "pic": [round(pcb - 12), round(pcb - 34), round(pcb - 17), round(pcb - 16)],
                "hw": int(self.elapsed_at(now) / 300) + i * 3,
                "dead": dead,
            })
        base_fan = 1200 if asleep else (3900 if low else 5200)
        dead_fans = int(steer.get("dead_fans", 0))
        fans = [0 if j < dead_fans else int(base_fan + 180 * _wave(t, 127, p[j % 8]) -
                                            90 * (j >= 2))
                for j in range(self.model.fans)]
        if "fan_stopped" in self.quirks and len(fans) > 1:
            fans[1] = 0
        total = sum(b["rate"] for b in boards)
        elapsed = self.elapsed_at(now)
        snap = {
            "load": load, "boards": boards, "fans": fans, "rate": round(total, 2),
            "rate_avg": round(nominal_gh * load * (0.995 + 0.003 * _wave(t, 900, p[5])), 2),
            "rate_30m": round(nominal_gh * load * (0.997 + 0.002 * _wave(t, 1800, p[6])), 2),
            "elapsed": elapsed,
            "accepted": int(elapsed * self.model.nominal_ths / 25 * (load > 0 or 0.0001)),
            "rejected": int(elapsed / 3600),
            "hw": sum(b["hw"] for b in boards),
        }
        self._snap, self._snap_key = snap, key
        return snap

    def elapsed_at(self, now: float) -> int:
        return max(0, int(now - self.started))

    # -- RPC ----------------------------------------------------------------------------------

    def _header(self) -> dict[str, Any]:
        return {"BMMiner": "1.0.0", "Miner": self.model.miner_version,
                "CompileTime": self.model.compile_time, "Type": self.model.name}

    def _num(self, value: float) -> Any:
        return f"{value:.2f}" if "strings" in self.quirks else value

    def _version(self, _: str | None) -> dict[str, Any]:
        version = {"BMMiner": "1.0.0", "API": "3.1", "Miner": self.model.miner_version,
                   "CompileTime": self.model.compile_time, "Type": self.model.name}
        return {"STATUS": status(22, "CGMiner versions", self.description), "VERSION": [version],
                "id": 1}

    def _summary(self, _: str | None) -> dict[str, Any]:
        s = self.snapshot()
        summary = {
            "Elapsed": s["elapsed"], "GHS 5s": self._num(s["rate"]), "GHS av": s["rate_avg"],
            "GHS 30m": s["rate_30m"], "Found Blocks": 0, "Getworks": s["accepted"] // 2,
            "Accepted": s["accepted"], "Rejected": s["rejected"], "Hardware Errors": s["hw"],
            "Utility": 0.0, "Discarded": s["accepted"] * 3, "Stale": 0, "Get Failures": 0,
            "Local Work": s["accepted"] * 4, "Remote Failures": 0, "Network Blocks": 82,
            "Total MH": round(s["rate_avg"] * 1000 * s["elapsed"], 1), "Work Utility": 0.0,
            "Difficulty Accepted": float(s["accepted"] * 65536),
            "Difficulty Rejected": float(s["rejected"] * 65536), "Difficulty Stale": 0.0,
            "Best Share": 12904207043, "Device Hardware%": 0.0, "Device Rejected%": 0.0,
            "Pool Rejected%": 0.0, "Pool Stale%": 0.0, "Last getwork": int(time.time()),
        }
        return {"STATUS": status(11, "Summary", self.description), "SUMMARY": [summary],
                "id": 1}

    def _stats(self, _: str | None) -> dict[str, Any]:
        s = self.snapshot()
        b = s["boards"]
        chips = self.model.chips
        block: dict[str, Any] = {
            "STATS": 0, "ID": "BTM_SOC0", "Elapsed": s["elapsed"], "Calls": 0, "Wait": 0.0,
            "Max": 0.0, "Min": 99999999.0, "GHS 5s": self._num(s["rate"]),
            "GHS av": s["rate_avg"], "rate_30m": s["rate_30m"], "Mode": 2,
            "miner_count": BOARDS, "frequency": self.model.freq,
            "fan_num": len(s["fans"]),
        }
        for j, rpm in enumerate(s["fans"], 1):
            block[f"fan{j}"] = rpm
        block["temp_num"] = BOARDS
        for i in range(BOARDS):
            block[f"temp{i + 1}"] = max(b[i]["pcb"])
            block[f"temp2_{i + 1}"] = max(b[i]["chip"])
        for i in range(4):
            if i < BOARDS:
                pcb, chip, pic = b[i]["pcb"], b[i]["chip"], b[i]["pic"]
            else:
                pcb = chip = pic = [0, 0, 0, 0]
            block[f"temp_pcb{i + 1}"] = "-".join(map(str, pcb))
            block[f"temp_chip{i + 1}"] = "-".join(map(str, chip))
            block[f"temp_pic{i + 1}"] = "-".join(map(str, pic))
        block.update({
            "total_rateideal": round(sum(x["ideal"] for x in b), 2), "rate_unit": "GH",
            "total_freqavg": self.model.freq, "total_acn": chips * BOARDS,
            "total rate": s["rate"], "temp_max": 0, "no_matching_work": s["hw"],
        })
        for i in range(4):
            present = i < BOARDS and not b[i]["dead"]
            block[f"chain_acn{i + 1}"] = chips if present else 0
        for i in range(4):
            present = i < BOARDS and not b[i]["dead"]
            block[f"chain_acs{i + 1}"] = (" " + " ".join(["oooooooo"] * (chips // 8)) +
                                          " " + "o" * (chips % 8)) if present else ""
        for i in range(4):
            block[f"chain_hw{i + 1}"] = b[i]["hw"] if i < BOARDS else 0
        for i in range(4):
            block[f"chain_rate{i + 1}"] = f"{b[i]['rate']:.2f}" if i < BOARDS else ""
        for i in range(4):
            block[f"freq{i + 1}"] = self.model.freq if i < BOARDS else 0
        block["miner_version"] = self.model.miner_version
        block["miner_id"] = self.miner_id
        return {"STATUS": status(70, "CGMiner stats", self.description),
                "STATS": [self._header(), block], "id": 1}

    def _pools(self, _: str | None) -> dict[str, Any]:
        s = self.snapshot()
        pools = []
        active_index = next((i for i, p in enumerate(self.pools) if p["url"]), -1)
        for i, pool in enumerate(self.pools):
            if not pool["url"]:
                continue
            active = i == active_index and self.work_mode != 1
            accepted = s["accepted"] if active else 0
            pools.append({
                "POOL": i, "URL": pool["url"], "Status": "Alive", "Priority": i, "Quota": 1,
                "Long Poll": "N", "Getworks": accepted // 2, "Accepted": accepted,
                "Rejected": s["rejected"] if active else 0, "Discarded": accepted * 3,
                "Stale": 0, "Get Failures": 0, "Remote Failures": 0, "User": pool["user"],
                "Last Share Time": "0:00:03" if active else "0", "Diff": "524K",
                "Diff1 Shares": 0, "Proxy Type": "", "Proxy": "",
                "Difficulty Accepted": float(accepted * 65536), "Difficulty Rejected": 0.0,
                "Difficulty Stale": 0.0, "Last Share Difficulty": 524288.0,
                "Has Stratum": True, "Stratum Active": active,
                "Stratum URL": pool["url"].split("://")[-1].split(":")[0] if active else "",
                "Has GBT": False, "Best Share": 12904207043.0, "Pool Rejected%": 0.0,
                "Pool Stale%%": 0.0,
            })
        return {"STATUS": status(7, f"{len(pools)} Pool(s)", self.description), "POOLS": pools,
                "id": 1}

    def _devs(self, _: str | None) -> dict[str, Any]:
        dev = {"ASC": 0, "Name": "BTM_SOC", "ID": 0, "Enabled": "Y", "Status": "Alive",
               "Tenperature": 0.0, "MHS av": 0.0, "MHS 5s": 0.0, "Accepted": 0, "Rejected": 0,
               "Hardware Errors": 0, "Utility": 0.0, "Last Share Pool": 0,
               "Last Share Time": 0, "Total MH": 0.0, "Diff1 Work": 0,
               "Difficulty Accepted": 0.0, "Difficulty Rejected": 0.0,
               "Last Share Difficulty": 0.0, "Last Valid Work": 0, "Device Hardware%": 0.0,
               "Device Rejected%": 0.0, "Device Elapsed": self.elapsed}
        return {"STATUS": status(9, "1 ASC(s)", self.description), "DEVS": [dev], "id": 1}

    def _devdetails(self, _: str | None) -> dict[str, Any]:
        detail = {"DEVDETAILS": 0, "Name": "BTM_SOC", "ID": 0, "Driver": "bitmain_soc",
                  "Kernel": "", "Model": ""}
        return {"STATUS": status(69, "Device Details", self.description),
                "DEVDETAILS": [detail], "id": 1}

    # -- web --------------------------------------------------------------------------------

    async def http(self, request: Any) -> web.StreamResponse:
        ok, stale = self.digest.check(request.headers.get("Authorization"), request.method,
                                      "root", self.password)
        if not ok:
            return web.Response(
                status=401, text="<html><body><h1>401 Unauthorized</h1></body></html>",
                content_type="text/html",
                headers={"WWW-Authenticate": self.digest.challenge(stale),
                         "Server": "lighttpd/1.4.69"})
        path = request.path
        handler = _ROUTES.get(path)
        if handler is None:
            return web.Response(status=404, text="<h1>404 Not Found</h1>",
                                content_type="text/html", headers={"Server": "lighttpd/1.4.69"})
        result = await handler(self, request)
        if isinstance(result, web.StreamResponse):
            return result
        return web.Response(body=_json.encode(result), content_type="text/html",
                            headers={"Server": "lighttpd/1.4.69"})

    async def _index(self, _: web.BaseRequest) -> web.Response:
        return web.Response(text=f"<html><head><title>{self.model.name}</title></head>"
                            "<body>Antminer</body></html>", content_type="text/html")

    async def _system_info(self, _: web.BaseRequest) -> dict[str, Any]:
        info = {
            "minertype": self.model.name, "nettype": "DHCP", "netdevice": "eth0",
            "macaddr": self.mac, "hostname": self.hostname, "ipaddress": self.ip,
            "netmask": "255.0.0.0", "gateway": "", "dnsservers": "", "system_mode": "GNU/Linux",
            "system_kernel_version": "Linux 4.9.113 #1 SMP PREEMPT " + self.model.compile_time,
            "system_filesystem_version": self.model.fs_version, "firmware_type": "Release",
        }
        info[self.model.serial_key] = self.serial
        return info

    async def _network_info(self, _: web.BaseRequest) -> dict[str, Any]:
        return {"nettype": "DHCP", "netdevice": "eth0", "macaddr": self.mac,
                "ipaddress": self.ip, "netmask": "255.0.0.0", "conf_nettype": "DHCP",
                "conf_hostname": self.hostname, "conf_ipaddress": "", "conf_netmask": "",
                "conf_gateway": "", "conf_dnsservers": ""}

    def miner_conf(self) -> dict[str, Any]:
        return {"pools": [dict(p) for p in self.pools], "api-listen": True,
                "api-network": True, "api-groups": "A:stats:pools:devs:summary:version",
                "api-allow": "A:0/0,W:*", "bitmain-fan-ctrl": self.fan_ctrl,
                "bitmain-fan-pwm": self.fan_pwm, "bitmain-use-vil": True,
                "bitmain-freq": str(self.model.freq), "bitmain-voltage": "1400",
                "bitmain-ccdelay": "0", "bitmain-pwth": "0",
                "bitmain-work-mode": str(self.work_mode), "bitmain-freq-level": self.freq_level}

    async def _get_conf(self, _: web.BaseRequest) -> dict[str, Any]:
        return self.miner_conf()

    async def _set_conf(self, request: web.BaseRequest) -> dict[str, Any]:
        raw = await request.read()
        try:
            body = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return {"stats": "error", "code": "M001", "msg": "Illegal json!"}
        if not isinstance(body, dict):
            return {"stats": "error", "code": "M001", "msg": "Illegal json!"}
        await asyncio.sleep(self.conf_delay)
        self.conf_writes += 1
        pools = body.get("pools")
        if isinstance(pools, list):
            fresh = []
            for i in range(3):
                item = pools[i] if i < len(pools) and isinstance(pools[i], dict) else {}
                fresh.append({"url": str(item.get("url", "")), "user": str(item.get("user", "")),
                              "pass": str(item.get("pass", ""))})
            self.pools = fresh
        if "bitmain-fan-ctrl" in body:
            self.fan_ctrl = bool(body["bitmain-fan-ctrl"])
        if "bitmain-fan-pwm" in body:
            self.fan_pwm = str(body["bitmain-fan-pwm"])
        if "freq-level" in body:
            self.freq_level = str(body["freq-level"])
        mode = body.get("miner-mode")  # bitmain-work-mode alone is ignored, as on real units
        if mode is not None:
            try:
                value = int(str(mode))
            except ValueError:
                value = -1
            if value in (0, 1) or (value == 3 and self.model.low_power):
                self.work_mode = value  # the draw follows (__setattr__)
                self._snap_key = -1
        return {"stats": "success", "code": "M000", "msg": "OK!"}

    async def _blink(self, request: web.BaseRequest) -> dict[str, Any]:
        raw = await request.read()
        try:
            body = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return {"code": "B001"}
        value = body.get("blink") if isinstance(body, dict) else None
        if value in ("true", True):
            self.blink = True
            return {"code": "B000"}
        if value in ("false", False):
            self.blink = False
            return {"code": "B100"}
        return {"code": "B001"}

    async def _blink_status(self, _: web.BaseRequest) -> dict[str, Any]:
        return {"blink": self.blink}

    async def _reboot(self, _: web.BaseRequest) -> web.Response:
        asyncio.get_running_loop().call_later(0.05, self.reboot, self.reboot_seconds)
        return web.Response(text="", content_type="text/html")

    async def _summary_cgi(self, _: web.BaseRequest) -> dict[str, Any]:
        s = self.snapshot()
        asleep = self.work_mode == 1
        items = [{"type": "rate", "status": "s" if not asleep else "w", "code": 0,
                  "msg": "" if not asleep else "sleep mode"},
                 {"type": "network", "status": "s", "code": 0, "msg": ""},
                 {"type": "fans", "status": "s", "code": 0, "msg": ""},
                 {"type": "temp", "status": "s", "code": 0, "msg": ""}]
        return {
            "STATUS": {"STATUS": "S", "when": int(time.time()), "Msg": "summary",
                       "api_version": "1.0.0"},
            "INFO": {"miner_version": self.model.miner_version,
                     "CompileTime": self.model.compile_time, "type": self.model.name},
            "SUMMARY": [{"elapsed": s["elapsed"], "rate_5s": s["rate"],
                         "rate_30m": s["rate_30m"], "rate_avg": s["rate_avg"],
                         "rate_ideal": round(sum(b["ideal"] for b in s["boards"]), 2),
                         "rate_unit": "GH/s", "hw_all": s["hw"], "bestshare": 12904207043,
                         "status": items}],
        }

    async def _stats_cgi(self, _: web.BaseRequest) -> dict[str, Any]:
        s = self.snapshot()
        chains = []
        for i, b in enumerate(s["boards"]):
            chains.append({
                "index": i, "freq_avg": self.model.freq, "rate_ideal": b["ideal"],
                "rate_real": b["rate"], "asic_num": self.model.chips, "temp_pic": b["pic"],
                "temp_pcb": b["pcb"], "temp_chip": b["chip"], "hw": b["hw"],
                "eeprom_loaded": True, "sn": self.board_sn[i],
            })
        return {
            "STATUS": {"STATUS": "S", "when": int(time.time()), "Msg": "stats",
                       "api_version": "1.0.0"},
            "INFO": {"miner_version": self.model.miner_version,
                     "CompileTime": self.model.compile_time, "type": self.model.name},
            "STATS": [{"elapsed": s["elapsed"], "rate_5s": s["rate"], "rate_30m": s["rate_30m"],
                       "rate_avg": s["rate_avg"],
                       "rate_ideal": round(sum(b["ideal"] for b in s["boards"]), 2),
                       "rate_unit": "GH/s", "chain_num": BOARDS, "fan_num": len(s["fans"]),
                       "fan": s["fans"], "hwp_total": 0.0, "miner-mode": self.work_mode,
                       "freq-level": int(self.freq_level) if self.freq_level.isdigit() else 100,
                       "chain": chains}],
        }

    async def _pools_cgi(self, _: web.BaseRequest) -> dict[str, Any]:
        rpc = self._pools(None)["POOLS"]
        pools = [{"index": p["POOL"], "url": p["URL"], "user": p["User"],
                  "status": p["Status"], "priority": p["Priority"], "getworks": p["Getworks"],
                  "accepted": p["Accepted"], "rejected": p["Rejected"],
                  "discarded": p["Discarded"], "stale": 0, "diff": p["Diff"], "diff1": 0,
                  "diffa": p["Difficulty Accepted"], "diffr": 0.0, "diffs": 0.0,
                  "lsdiff": 524288.0, "lstime": p["Last Share Time"]} for p in rpc]
        return {"STATUS": {"STATUS": "S", "when": int(time.time()), "Msg": "pools",
                           "api_version": "1.0.0"}, "INFO": {}, "POOLS": pools}

    async def _miner_type(self, _: web.BaseRequest) -> Any:
        if not self.model.has_miner_type_cgi:
            return web.Response(status=404, text="<h1>404 Not Found</h1>",
                                content_type="text/html")
        return {"miner_type": self.model.name, "subtype": "BHB42XXX_AML",
                "fw_version": self.model.fs_version}


_ROUTES: dict[str, Any] = {
    "/": SimAntminer._index,
    "/index.html": SimAntminer._index,
    "/cgi-bin/get_system_info.cgi": SimAntminer._system_info,
    "/cgi-bin/get_network_info.cgi": SimAntminer._network_info,
    "/cgi-bin/get_miner_conf.cgi": SimAntminer._get_conf,
    "/cgi-bin/set_miner_conf.cgi": SimAntminer._set_conf,
    "/cgi-bin/blink.cgi": SimAntminer._blink,
    "/cgi-bin/get_blink_status.cgi": SimAntminer._blink_status,
    "/cgi-bin/reboot.cgi": SimAntminer._reboot,
    "/cgi-bin/summary.cgi": SimAntminer._summary_cgi,
    "/cgi-bin/stats.cgi": SimAntminer._stats_cgi,
    "/cgi-bin/pools.cgi": SimAntminer._pools_cgi,
    "/cgi-bin/miner_type.cgi": SimAntminer._miner_type,
}


def quirks_for(addresses: list[str], options: SimOptions, family: str
               ) -> dict[str, tuple[str, ...]]:
    """Which addresses show which §1.4 quirks: ``extra["quirks"]`` shares (by seed) plus
    ``extra["quirks_by_ip"]``."""
    rng = random.Random(f"{options.seed}:{family}:quirks")
    chosen: dict[str, set[str]] = {}
    for quirk, share in sorted(dict(options.extra.get("quirks", {})).items()):
        if quirk not in QUIRKS and quirk not in VARIANTS:
            continue  # another family's quirk (the shares are shared by every family)
        for ip in rng.sample(addresses, round(len(addresses) * float(share))):
            chosen.setdefault(ip, set()).add(quirk)
    for ip, quirks in dict(options.extra.get("quirks_by_ip", {})).items():
        chosen.setdefault(str(ip), set()).update(quirks)
    return {ip: tuple(sorted(q)) for ip, q in chosen.items()}


class AntminerSim:
    """A running family of simulated Antminers (the :class:`Simulation` protocol).

    Tests steer the devices at run time: ``sim.by_ip[ip].steer(heat_c=20)`` (see
    :meth:`~webbo.plugins.common.rpc4028.sim_server.RpcDevice.steer`), and
    :meth:`power_off` / :meth:`power_on` (nothing listens while it is off: connection
    refused, as from a miner without power behind a switch that answers for it)."""

    def __init__(self, devices: list[SimAntminer], servers: list[Any], rpc_port: int = 4028,
                 http_port: int = 80) -> None:
        self.sims = devices
        self.servers = servers
        self.rpc_port = rpc_port
        self.http_port = http_port
        self.by_ip = {d.ip: d for d in devices}
        self.devices = [d.describe() | {
            "make": "Antminer", "model": d.model.name, "family": "antminer",
            "hostname": d.hostname, "serial": d.serial, "firmware": d.model.fs_version,
        } for d in devices]

    async def power_off(self, ip: str) -> None:
        """Stop every listener of the device at ``ip``."""
        gone = servers_at(self.servers, ip)
        self.servers = [s for s in self.servers if s not in gone]
        await close_servers(gone)

    async def power_on(self, ip: str) -> None:
        """Listen again at ``ip``; the device starts afresh (uptime 0)."""
        device = self.by_ip[ip]
        if servers_at(self.servers, ip):
            return
        device.started = time.time()
        device.on_reboot()
        self.servers += await listen_rpc([device], self.rpc_port)
        self.servers += await listen_http([device], self.http_port)

    async def close(self) -> None:
        await close_servers(self.servers)
        for ip in self.by_ip:
            LOADS.unregister(ip)


async def start(addresses: list[str], options: SimOptions) -> AntminerSim:
    """Run one simulated Antminer per address: RPC on 4028 (``extra["rpc_port"]``), web on
    ``options.http_port``. ``extra["models"]`` limits the mix of models."""
    addresses = check_loopback(addresses)
    extra = options.extra
    names = list(extra.get("models") or DEFAULT_MODELS)
    for name in names:
        if name not in MODELS:
            raise ValueError(f"unknown Antminer model {name!r} (known: {', '.join(MODELS)})")
    faults = assign_faults(addresses, options, "antminer")
    quirks = quirks_for(addresses, options, "antminer")
    rng = random.Random(f"{options.seed}:antminer:models")
    timing = PowerTiming.from_extra(extra)
    devices = [
        SimAntminer(ip, MODELS[names[rng.randrange(len(names))]] if len(names) > 1
                    else MODELS[names[0]], seed=options.seed, fault=faults.get(ip, ""),
                    quirks=quirks.get(ip, ()), password=str(extra.get("web_password", "root")),
                    conf_delay=float(extra.get("conf_delay", 0.2)),
                    reboot_seconds=float(extra.get("reboot_seconds", 3.0)),
                    slow_delay=float(extra.get("slow_delay", 3.0)), power_timing=timing)
        for ip in addresses
    ]
    for device in devices:
        assert device.power_model is not None
        LOADS.register(device.ip, device.power_model)
    servers: list[Any] = []
    try:
        servers += await listen_rpc(devices, int(extra.get("rpc_port", 4028)))
        servers += await listen_http(devices, options.http_port)
    except BaseException:
        await close_servers(servers)
        raise
    return AntminerSim(devices, servers, int(extra.get("rpc_port", 4028)), options.http_port)
