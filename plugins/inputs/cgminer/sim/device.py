"""Simulated generic cgminer devices: plain cgminer 4.x RPC on 4028 (privileged pool commands
when write access is granted) and an SSH server (asyncssh) that accepts ``reboot``.

Two personalities, mixed by seed (``extra["cgminer_profiles"]`` picks some only):

* ``AvalonMiner 1246``: Canaan's cgminer 4.11.1 whose ``version`` carries ``PROD``, ``MODEL``
  and ``MAC`` (12 hex digits; the agent reads the MAC from there); hashrates in MH/s; one ASC
  (the controller) in ``devs``; its ``summary`` writes ``"inf"`` for an undefined utility, as
  Avalon firmware does. ``estats``/``stats`` carry the ``MM ID0`` status string, ``ascset``
  turns the locate LED on and off and reports it, ``restart`` restarts the miner process
  (:mod:`.avalon`);
* a bare cgminer 4.12 device that tells no MAC (the agent derives one from its IP).

Both answer ``restart`` (``{"STATUS":"RESTART","id":1}``, then the RPC is gone for
``extra["restart_seconds"]`` (default 2) and comes back with its uptime from 0).

Pool state: ``addpool``/``removepool``/``switchpool``/``enablepool``/``disablepool``/
``poolpriority`` act on it and persist; ``pools`` never shows passwords (as on every cgminer).
SSH: user ``extra["ssh_user"]`` (default ``root``), password ``extra["ssh_password"]`` (default
``admin``) on port ``extra["ssh_port"]`` (default 2222); ``reboot`` (or ``/sbin/reboot``) makes
the device go away for ``extra["reboot_seconds"]`` and come back with its uptime reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import random
import time
from typing import Any

import asyncssh

from webbo.agent.plugin import SimOptions
from webbo.plugins.common.rpc4028.sim_server import (
    RpcDevice,
    SimCommandError,
    assign_faults,
    check_loopback,
    close_servers,
    derived_mac,
    listen_rpc,
    sim_mac,
    status,
)
from webbo.plugins.common.simpower import LOADS, PowerModel, PowerTiming
from webbo.plugins.inputs.cgminer.sim.avalon import ASC_COUNT, AvalonController, restart_reply

__all__ = ["CgminerSim", "GenericCgminer", "start"]

PROFILES = {
    "avalon": {"model": "AvalonMiner 1246", "boards": 3, "nominal_ths": 90.0,
               "version": "4.11.1", "oui": "B4:A2:EB", "mm_model": "1246",
               "mm_version": "21042001_4ec6bb0_61407fa", "dna": "020100008c3e4d47",
               "chips": 120, "wall_power_w": 3420.0, "power_w": 3420.0},
    "generic": {"model": "cgminer", "boards": 2, "nominal_ths": 14.0, "version": "4.12.1",
                "oui": "", "power_w": 1350},
}
"""``power_w``: the draw a simulated meter sees (the Avalon's is the wall power it reports;
neither offers a work mode through cgminer's RPC: a feed carries them as a load it cannot
steer)."""


class GenericCgminer(RpcDevice):
    def __init__(self, ip: str, profile: str, *, seed: int, fault: str = "",
                 quirks: tuple[str, ...] = (), write_access: bool = True,
                 reboot_seconds: float = 3.0, restart_seconds: float = 2.0,
                 slow_delay: float = 3.0,
                 power_timing: PowerTiming | None = None) -> None:
        spec = PROFILES[profile]
        mac = sim_mac(seed, ip, spec["oui"]) if spec["oui"] else derived_mac(ip).upper()
        if profile == "avalon" and "nonfinite" not in quirks:
            quirks = (*quirks, "nonfinite")
        super().__init__(ip, mac, fault=fault, quirks=quirks, write_access=write_access,
                         slow_delay=slow_delay)
        self.profile = profile
        self.spec = spec
        self.description = f"cgminer {spec['version']}"
        self.reboot_seconds = reboot_seconds
        self.restart_seconds = restart_seconds
        rng = random.Random(hashlib.blake2b(f"{seed}/{ip}".encode()).digest())
        self.phase = rng.uniform(0, 6.28)
        self.pools: list[dict[str, Any]] = [
            {"url": "stratum+tcp://btc.pool.example:3333", "user": "farm.generic", "pass": "x",
             "enabled": True},
            {"url": "stratum+tcp://btc-backup.pool.example:443", "user": "farm.generic",
             "pass": "x", "enabled": True},
        ]
        self.active = 0
        self.reboots = 0
        self.restarts = 0
        self.power_model = PowerModel(float(spec["power_w"]) * (
            1.0 if profile == "avalon" else rng.uniform(0.97, 1.03)),
                                      idle_w=20.0, timing=power_timing)
        self.commands = {
            "version": self._version, "summary": self._summary, "devs": self._devs,
            "edevs": self._devs, "pools": self._pools, "devdetails": self._devdetails,
            "stats": self._stats, "config": self._config,
            "addpool": self._addpool, "removepool": self._removepool,
            "switchpool": self._switchpool, "enablepool": self._enablepool,
            "disablepool": self._disablepool, "poolpriority": self._poolpriority,
            "estats": self._estats, "restart": self._restart,
        }
        self.avalon: AvalonController | None = None
        if profile == "avalon":
            self.avalon = AvalonController(
                model=spec["mm_model"], version=spec["mm_version"], dna=spec["dna"],
                boards=int(spec["boards"]), chips=int(spec["chips"]),
                nominal_ths=float(spec["nominal_ths"]),
                wall_power_w=float(spec["wall_power_w"]), seed=f"{seed}/{ip}/avalon",
                description=self.description)
            self.commands["ascset"] = self.avalon.ascset

    @property
    def model(self) -> str:
        return str(self.spec["model"])

    def on_reboot(self) -> None:
        self.reboots += 1
        if self.avalon is not None:
            self.avalon.on_restart()

    def _restart(self, _: str | None) -> dict[str, Any]:
        """cgminer answers, then its process exits and starts again: the RPC is gone for
        ``restart_seconds``, then back with the uptime from 0 (the device itself stays up)."""
        self.restarts += 1
        self.down_until = time.monotonic() + self.restart_seconds  # this reply still goes out
        self.started = time.time() + self.restart_seconds
        if self.avalon is not None:
            self.avalon.on_restart()
        return restart_reply()

    def _rates(self) -> list[float]:
        t = int(time.time() // 5) * 5.0
        boards = int(self.spec["boards"])
        per = float(self.spec["nominal_ths"]) * 1e6 / boards
        return [round(per * (1 + 0.01 * math.sin(t / 150 + self.phase + i)), 2)
                for i in range(boards)]

    def _version(self, _: str | None) -> dict[str, Any]:
        version: dict[str, Any] = {"CGMiner": self.spec["version"], "API": "3.7"}
        if self.profile == "avalon":
            version.update({"STM8": "20.08.01", "PROD": self.model,
                            "MODEL": self.spec["mm_model"], "HWTYPE": "MM3v2_X3",
                            "SWTYPE": "MM314", "VERSION": self.spec["mm_version"],
                            "LOADER": "d0d779de.00", "DNA": self.spec["dna"],
                            "MAC": self.mac.replace(":", "").lower(), "UPAPI": "2"})
        return {"STATUS": status(22, "CGMiner versions", self.description),
                "VERSION": [version], "id": 1}

    @property
    def log_interval(self) -> int:
        """cgminer's --log interval, which names the short hashrate average (``MHS 5s``);
        Avalon firmware runs with 30."""
        return 30 if self.profile == "avalon" else 5

    def _summary(self, _: str | None) -> dict[str, Any]:
        rates = self._rates()
        total = sum(rates)
        elapsed = self.elapsed
        accepted = int(elapsed * float(self.spec["nominal_ths"]) / 25)
        summary = {"Elapsed": elapsed, "MHS av": round(total * 0.998, 2),
                   f"MHS {self.log_interval}s": total,
                   "MHS 1m": round(total * 1.001, 2), "MHS 5m": round(total * 0.999, 2),
                   "MHS 15m": round(total * 0.998, 2), "Found Blocks": 0,
                   "Getworks": accepted // 2, "Accepted": accepted, "Rejected": elapsed // 3600,
                   "Hardware Errors": elapsed // 600, "Utility": 0.0, "Discarded": 0,
                   "Stale": 0, "Get Failures": 0, "Local Work": accepted * 3,
                   "Remote Failures": 0, "Network Blocks": 12, "Total MH": total * elapsed,
                   "Work Utility": 0.0, "Difficulty Accepted": float(accepted * 65536),
                   "Difficulty Rejected": 0.0, "Difficulty Stale": 0.0, "Best Share": 99281,
                   "Device Hardware%": 0.0, "Device Rejected%": 0.0, "Pool Rejected%": 0.0,
                   "Pool Stale%": 0.0, "Last getwork": int(time.time())}
        return {"STATUS": status(11, "Summary", self.description), "SUMMARY": [summary],
                "id": 1}

    def _devs(self, _: str | None) -> dict[str, Any]:
        if self.avalon is not None:  # one ASC: the controller with all its hash boards
            total = round(sum(self._rates()), 2)
            devs = [{"ASC": 0, "Name": "AVA10", "ID": 0, "Enabled": "Y", "Status": "Alive",
                     "Temperature": -273.0, "MHS av": round(total * 0.998, 2),
                     "MHS 30s": total, "MHS 1m": round(total * 1.001, 2),
                     "MHS 5m": round(total * 0.999, 2), "MHS 15m": round(total * 0.998, 2),
                     "Accepted": 0, "Rejected": 0, "Hardware Errors": self.elapsed // 600,
                     "Utility": 0.0, "Last Share Pool": 0, "Last Share Time": 0,
                     "Total MH": 0.0, "Diff1 Work": 0, "Device Elapsed": self.elapsed}]
            return {"STATUS": status(9, "1 ASC(s)", self.description), "DEVS": devs, "id": 1}
        devs = []
        for i, rate in enumerate(self._rates()):
            devs.append({"ASC": i, "Name": "GSF", "ID": i, "Enabled": "Y", "Status": "Alive",
                         "Temperature": round(68.0 + 3 * math.sin(time.time() // 5 / 60 + i), 1),
                         "MHS av": rate, "MHS 5s": rate, "Accepted": 0, "Rejected": 0,
                         "Hardware Errors": 0, "Utility": 0.0, "Last Share Pool": 0,
                         "Last Share Time": 0, "Total MH": 0.0, "Diff1 Work": 0,
                         "Device Elapsed": self.elapsed})
        return {"STATUS": status(9, f"{len(devs)} ASC(s)", self.description), "DEVS": devs,
                "id": 1}

    def _devdetails(self, _: str | None) -> dict[str, Any]:
        if self.avalon is not None:
            details = [{"DEVDETAILS": i, "Name": "AVA10", "ID": i, "Driver": "avalon10",
                        "Kernel": "", "Model": "", "Device Path": "1:3"}
                       for i in range(ASC_COUNT)]
        else:
            details = [{"DEVDETAILS": i, "Name": "GSF", "ID": i, "Driver": "gekko",
                        "Kernel": "", "Model": ""} for i in range(int(self.spec["boards"]))]
        return {"STATUS": status(69, "Device Details", self.description),
                "DEVDETAILS": details, "id": 1}

    def _device_stats(self) -> list[dict[str, Any]]:
        """The devices' entries of ``stats``/``estats`` (``estats`` has nothing else)."""
        if self.avalon is not None:
            return [self.avalon.stats_block(elapsed=self.elapsed, rates_mhs=self._rates(),
                                            hw_errors=self.elapsed // 600)]
        return [{"STATS": i, "ID": f"GSF{i}", "Elapsed": self.elapsed, "Calls": 0, "Wait": 0.0,
                 "Max": 0.0, "Min": 99999999.0} for i in range(int(self.spec["boards"]))]

    def _pool_stats(self, first: int) -> list[dict[str, Any]]:
        """The pools' entries that ``stats`` adds after the devices' (``POOL0``, ...)."""
        return [{"STATS": first + i, "ID": f"POOL{i}", "Elapsed": self.elapsed, "Calls": 0,
                 "Wait": 0.0, "Max": 0.0, "Min": 99999999.0, "Pool Calls": 0,
                 "Pool Attempts": 0, "Pool Wait": 0.0, "Pool Max": 0.0,
                 "Pool Min": 99999999.0, "Pool Av": 0.0, "Work Had Roll Time": False,
                 "Work Can Roll": False, "Work Had Expire": False, "Work Roll Time": 0,
                 "Work Diff": 65536.0 if i == self.active else 0.0,
                 "Min Diff": 65536.0 if i == self.active else 0.0,
                 "Max Diff": 65536.0 if i == self.active else 0.0,
                 "Min Diff Count": 0, "Max Diff Count": 0, "Times Sent": 3, "Bytes Sent": 289,
                 "Times Recv": 7, "Bytes Recv": 4954, "Net Bytes Sent": 289,
                 "Net Bytes Recv": 4954} for i in range(len(self.pools))]

    def _stats(self, _: str | None) -> dict[str, Any]:
        stats = self._device_stats()
        stats += self._pool_stats(len(stats))
        return {"STATUS": status(70, "CGMiner stats", self.description), "STATS": stats,
                "id": 1}

    def _estats(self, _: str | None) -> dict[str, Any]:
        """``stats`` without the pools' entries (cgminer's ``minerestats``)."""
        return {"STATUS": status(70, "CGMiner stats", self.description),
                "STATS": self._device_stats(), "id": 1}

    def _config(self, _: str | None) -> dict[str, Any]:
        asc_count = ASC_COUNT if self.avalon is not None else int(self.spec["boards"])
        config = {"ASC Count": asc_count, "PGA Count": 0, "Pool Count": len(self.pools),
                  "Strategy": "Failover", "Log Interval": self.log_interval,
                  "Device Code": "", "OS": "Linux", "Hotplug": "None"}
        return {"STATUS": status(33, "CGMiner config", self.description), "CONFIG": [config],
                "id": 1}

    def _pools(self, _: str | None) -> dict[str, Any]:
        out = []
        for i, pool in enumerate(self.pools):
            active = i == self.active
            out.append({"POOL": i, "URL": pool["url"],
                        "Status": "Alive" if pool["enabled"] else "Disabled",
                        "Priority": pool.get("priority", i),
                        "Quota": 1, "Long Poll": "N", "Getworks": 0,
                        "Accepted": self.elapsed // 25 if active else 0, "Rejected": 0,
                        "Works": 0, "Discarded": 0, "Stale": 0, "Get Failures": 0,
                        "Remote Failures": 0, "User": pool["user"], "Last Share Time": 0,
                        "Diff1 Shares": 0, "Proxy Type": "", "Proxy": "",
                        "Difficulty Accepted": 0.0, "Difficulty Rejected": 0.0,
                        "Difficulty Stale": 0.0, "Last Share Difficulty": 0.0,
                        "Work Difficulty": 0.0, "Has Stratum": True, "Stratum Active": active,
                        "Stratum URL": pool["url"].split("://")[-1].split(":")[0]
                        if active else "", "Stratum Difficulty": 65536.0, "Has Vmask": True,
                        "Has GBT": False, "Best Share": 0, "Pool Rejected%": 0.0,
                        "Pool Stale%": 0.0, "Bad Work": 0, "Current Block Height": 0,
                        "Current Block Version": 536870912})
        return {"STATUS": status(7, f"{len(out)} Pool(s)", self.description), "POOLS": out,
                "id": 1}

    # -- privileged -----------------------------------------------------------------------------

    def _index(self, parameter: str | None) -> int:
        try:
            index = int(str(parameter).strip())
        except ValueError:
            raise SimCommandError("Missing pool id parameter", 30) from None
        if not 0 <= index < len(self.pools):
            raise SimCommandError(f"Invalid pool id {index} - range is 0 - "
                                  f"{len(self.pools) - 1}", 31)
        return index

    def _ok(self, code: int, msg: str) -> dict[str, Any]:
        return {"STATUS": status(code, msg, self.description), "id": 1}

    def _addpool(self, parameter: str | None) -> dict[str, Any]:
        parts = _split_escaped(parameter or "")
        if len(parts) != 3 or not parts[0]:
            raise SimCommandError("Missing addpool details", 52)
        url, user, password = parts
        self.pools.append({"url": url, "user": user, "pass": password, "enabled": True})
        return self._ok(55, f"Added pool {len(self.pools) - 1}: '{url}'")

    def _removepool(self, parameter: str | None) -> dict[str, Any]:
        index = self._index(parameter)
        if len(self.pools) == 1:
            raise SimCommandError("Cannot remove last pool", 66)
        if index == self.active:
            raise SimCommandError(f"Cannot remove active pool {index}:'"
                                  f"{self.pools[index]['url']}'", 67)
        url = self.pools.pop(index)["url"]
        if self.active > index:
            self.active -= 1
        return self._ok(68, f"Removed pool {index}:'{url}'")

    def _switchpool(self, parameter: str | None) -> dict[str, Any]:
        index = self._index(parameter)
        self.pools[index]["enabled"] = True
        self.active = index
        return self._ok(27, f"Switching to pool {index}:'{self.pools[index]['url']}'")

    def _enablepool(self, parameter: str | None) -> dict[str, Any]:
        index = self._index(parameter)
        self.pools[index]["enabled"] = True
        return self._ok(47, f"Enabling pool {index}:'{self.pools[index]['url']}'")

    def _disablepool(self, parameter: str | None) -> dict[str, Any]:
        index = self._index(parameter)
        if index == self.active:
            raise SimCommandError(f"Cannot disable active pool {index}", 67)
        self.pools[index]["enabled"] = False
        return self._ok(48, f"Disabling pool {index}:'{self.pools[index]['url']}'")

    def _poolpriority(self, parameter: str | None) -> dict[str, Any]:
        try:
            order = [int(x) for x in (parameter or "").split(",") if x.strip()]
        except ValueError:
            raise SimCommandError("Invalid pool priority", 71) from None
        if len(order) != len(set(order)) or any(not 0 <= i < len(self.pools) for i in order):
            raise SimCommandError("Invalid pool priority", 71)
        rest = [i for i in range(len(self.pools)) if i not in order]
        for priority, index in enumerate(order + rest):
            self.pools[index]["priority"] = priority
        return self._ok(73, "Changed pool priorities")


def _split_escaped(text: str) -> list[str]:
    """cgminer's comma-separated parameter with ``\\,`` and ``\\\\`` escapes."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


# -- SSH ----------------------------------------------------------------------------------------


class _SshServer(asyncssh.SSHServer):
    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self.password = password

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == self.user and password == self.password


def _ssh_handler(device: GenericCgminer) -> Any:
    def handle(process: asyncssh.SSHServerProcess) -> None:
        command = (process.command or "").strip()
        if command in ("reboot", "/sbin/reboot", "reboot -f", "/sbin/reboot -f"):
            process.stdout.write("")
            process.exit(0)
            asyncio.get_running_loop().call_later(0.05, device.reboot, device.reboot_seconds)
        elif command in ("uptime", "cat /proc/uptime"):
            process.stdout.write(f"{device.elapsed}.00 {device.elapsed}.00\n")
            process.exit(0)
        else:
            process.stderr.write(f"sh: {command.split(' ')[0] if command else 'sh'}: "
                                 "not found\n")
            process.exit(127)
    return handle


_HOST_KEY: asyncssh.SSHKey | None = None


def host_key() -> asyncssh.SSHKey:
    global _HOST_KEY
    if _HOST_KEY is None:
        _HOST_KEY = asyncssh.generate_private_key("ssh-ed25519")
    return _HOST_KEY


class CgminerSim:
    def __init__(self, devices: list[GenericCgminer], servers: list[Any]) -> None:
        self.sims = devices
        self.by_ip = {d.ip: d for d in devices}
        self.servers = servers
        self.devices = []
        for d in devices:
            info = d.describe() | {"make": "Avalon" if d.profile == "avalon" else "cgminer",
                                   "model": d.model, "family": "cgminer"}
            if d.profile != "avalon":
                info["mac_source"] = "derived"
            self.devices.append(info)

    async def close(self) -> None:
        await close_servers(self.servers)
        for ip in self.by_ip:
            LOADS.unregister(ip)


async def start(addresses: list[str], options: SimOptions) -> CgminerSim:
    """Run one generic cgminer device per address (RPC on 4028 and SSH)."""
    addresses = check_loopback(addresses)
    extra = options.extra
    faults = assign_faults(addresses, options, "cgminer")
    rng = random.Random(f"{options.seed}:cgminer:profiles")
    profiles = list(extra.get("cgminer_profiles") or PROFILES)
    timing = PowerTiming.from_extra(extra)
    devices = [GenericCgminer(ip, profiles[rng.randrange(len(profiles))], seed=options.seed,
                              fault=faults.get(ip, ""),
                              write_access=bool(extra.get("cgminer_write_access", True)),
                              reboot_seconds=float(extra.get("reboot_seconds", 3.0)),
                              restart_seconds=float(extra.get("restart_seconds", 2.0)),
                              slow_delay=float(extra.get("slow_delay", 3.0)),
                              power_timing=timing)
               for ip in addresses]
    for device in devices:
        assert device.power_model is not None
        LOADS.register(device.ip, device.power_model)
    servers: list[Any] = []
    try:
        servers += await listen_rpc(devices, int(extra.get("rpc_port", 4028)))
        ssh_port = int(extra.get("ssh_port", 2222))
        if ssh_port:
            user = str(extra.get("ssh_user", "root"))
            password = str(extra.get("ssh_password", "admin"))
            for device in devices:
                if device.fault == "refuse":
                    continue
                servers.append(await asyncssh.create_server(
                    lambda: _SshServer(user, password), device.ip, ssh_port,
                    server_host_keys=[host_key()], process_factory=_ssh_handler(device),
                    reuse_address=True))
    except BaseException:
        with contextlib.suppress(Exception):
            await close_servers(servers)
        raise
    return CgminerSim(devices, servers)
