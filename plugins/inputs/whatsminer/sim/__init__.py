"""Simulated Whatsminers: the ``whatsminer`` simulator family (``webbo simulate``, tests, demo).

One miner per loopback address (127.0.0.0/8 only), models M30S, M50, M56S and M60 in turn,
the older firmwares on API v2 (4028 only), the newer on API v3 (4433, with v2 reads on 4028).
Each keeps a state (mining or asleep, power mode, LED, pools, power limit, errors) that both
APIs read and change, enforces the v2 token rules (30-minute life, 32 per client address,
"check token err") and answers encrypted writes encrypted.

Family options, in ``SimOptions.extra["whatsminer"]`` (all optional)::

    password        v2 admin password of every miner (default "admin")
    v3_password     password of account "super" (default "super")
    profiles        model keys to use, e.g. ["m60"] (default: DEFAULT_PROFILES, in turn;
                    "m53s" is a hydro model outside that mix)
    faults_by_ip    {"127.4.0.9": "silent", ...}: exact faults, over SimOptions.faults
    quirks_by_ip    {"127.4.0.9": ["no_status"], ...}: exact quirks, over the shares
    reboot_seconds  how long a reboot keeps the miner away (default 5)
    slow_seconds    how late the "slow" fault answers (default 3)
    clock           a :class:`SimClock` to share (tests move it forward to age tokens)

The draw follows the state as :mod:`webbo.plugins.common.simpower` models it
(``SimOptions.extra["power"]``: speed, sleep/boot/wake/ramp seconds); a power percent caps the
draw at that share of the power limit.

Faults (``SimOptions.faults`` shares or ``faults_by_ip``): ``silent``, ``garbage``, ``slow``,
``refuse``, ``half``, ``oversized`` (400 error codes, a reply the firmware cuts at 8 KiB) and
``write_disabled`` (the API switch off: "can't access write cmd"). Quirk shares
(``SimOptions.extra["quirks"]``, as ``webbo simulate --quirks`` passes them): the broken JSON
of some builds, ``no_multi``, ``trailing_comma``, ``newlines``, ``strings``, and the firmware
variants a reader must cope with (reference §3.2: each firmware sends what it sends):
``no_mhs_1m`` (a summary without ``MHS 1m``, v3 without ``hash-1min``), ``no_status`` (no
``status`` command: "invalid cmd"), ``no_psu_fan`` (a summary without ``Power Fanspeed``; the PSU
fan is in ``get_psu``), ``fan_stopped`` (one fan stands still and reads 0) and, on API v3,
``status_documented_only`` (``get.miner.status`` takes only the params the vendor documents:
``summary+pools+edevs`` is refused). Names of other families' faults and quirks are left to
them.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from webbo.agent.plugin import SimOptions
from webbo.plugins.common.simpower import LOADS, PowerTiming
from webbo.plugins.inputs.whatsminer.sim.profiles import DEFAULT_PROFILES, PROFILES, Profile
from webbo.plugins.inputs.whatsminer.sim.servers import DeviceServers
from webbo.plugins.inputs.whatsminer.sim.state import SimClock, SimDevice

__all__ = ["FAULTS", "PROFILES", "SimClock", "SimDevice", "WhatsminerSimulation", "start"]

FAULTS = ("silent", "garbage", "slow", "refuse", "half", "oversized", "write_disabled")
WIRE_QUIRKS = ("no_multi", "trailing_comma", "newlines", "strings", "no_mhs_1m", "no_status",
               "no_psu_fan", "fan_stopped", "status_documented_only")
"""The ``--quirks`` of ``webbo simulate`` that btminer builds show (the others are other
makes' and ignored here)."""
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")


def _loopback(address: str) -> str:
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        raise ValueError(f"not an IPv4 address: {address!r}") from None
    if ip not in LOOPBACK:
        raise ValueError(f"simulated miners live on 127.0.0.0/8 only, not {address}")
    return str(ip)


def pick_fault(seed: int, ip: str, shares: dict[str, float]) -> str | None:
    """A fault for this address, chosen deterministically so each has about its share."""
    draw = random.Random(f"{seed}:{ip}:fault").random()
    total = 0.0
    for name in sorted(shares):
        total += max(0.0, float(shares[name]))
        if draw < total:
            return name
    return None


def make_mac(ip: str) -> str:
    """A stable, unique MAC per loopback address (MicroBT-like prefix + the address)."""
    b = ipaddress.IPv4Address(ip).packed
    return f"C4:7A:{b[1]:02X}:{b[2]:02X}:{b[3]:02X}:{(b[1] ^ b[2] ^ b[3]) & 0xFF:02X}"


class WhatsminerSimulation:
    """A running family: ``devices`` (JSON-ready), the state of each, ``close()``."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.devices: list[dict[str, Any]] = []
        self.by_ip: dict[str, SimDevice] = {}
        self.servers: dict[str, DeviceServers] = {}

    def device(self, ip: str) -> SimDevice:
        return self.by_ip[ip]

    def reboot(self, ip: str) -> None:
        self.servers[ip].reboot()

    async def close(self) -> None:
        for servers in self.servers.values():
            await servers.close()
        self.servers.clear()
        for ip in self.by_ip:
            LOADS.unregister(ip)


async def start(addresses: list[str], options: SimOptions) -> WhatsminerSimulation:
    """Run one simulated Whatsminer per address."""
    family = options.extra.get("whatsminer") or {}
    if not isinstance(family, dict):
        raise ValueError('SimOptions.extra["whatsminer"] must be a table of options')
    keys = family.get("profiles") or list(DEFAULT_PROFILES)
    unknown = [k for k in keys if k not in PROFILES]
    if unknown:
        raise ValueError(f"unknown Whatsminer profiles {unknown}; known: {sorted(PROFILES)}")
    profiles: list[Profile] = [PROFILES[k] for k in keys]
    faults_by_ip = {_loopback(ip): f for ip, f in (family.get("faults_by_ip") or {}).items()
                    if f}
    bad = sorted({f for f in faults_by_ip.values() if f not in FAULTS})
    if bad:
        raise ValueError(f"unknown Whatsminer faults {bad}; known: {', '.join(FAULTS)}")
    # Shares name faults and quirks of every family: use ours, leave the others' alone.
    fault_shares = {k: v for k, v in options.faults.items() if k in FAULTS}
    quirks = options.extra.get("quirks")
    quirk_shares = {k: v for k, v in (quirks if isinstance(quirks, dict) else {}).items()
                    if k in WIRE_QUIRKS}
    quirks_by_ip = {_loopback(ip): frozenset(q) for ip, q in
                    (family.get("quirks_by_ip") or {}).items()}
    odd = sorted({q for qs in quirks_by_ip.values() for q in qs if q not in WIRE_QUIRKS})
    if odd:
        raise ValueError(f"unknown Whatsminer quirks {odd}; known: {', '.join(WIRE_QUIRKS)}")
    clock = family.get("clock") or SimClock()
    sim = WhatsminerSimulation(clock)
    reboot_seconds = float(family.get("reboot_seconds", options.extra.get("reboot_seconds", 5)))
    slow_seconds = float(family.get("slow_seconds", options.extra.get("slow_seconds", 3)))
    timing = PowerTiming.from_extra(options.extra)
    try:
        for index, address in enumerate(addresses):
            ip = _loopback(address)
            if ip in sim.by_ip:
                raise ValueError(f"{ip} is listed twice")
            profile = profiles[(index + options.seed) % len(profiles)]
            fault = faults_by_ip.get(ip) or pick_fault(options.seed, ip, fault_shares)
            quirk = pick_fault(options.seed, f"{ip}:quirk", quirk_shares)
            own = quirks_by_ip.get(ip, frozenset()) | ({quirk} if quirk else set())
            device = SimDevice(
                ip=ip, profile=profile, mac=make_mac(ip), clock=clock, seed=options.seed,
                serial=f"HTM{profile.model[:3]}{ipaddress.IPv4Address(ip).packed.hex().upper()}",
                password=str(family.get("password", "admin")),
                v3_password=str(family.get("v3_password", "super")), fault=fault,
                write_enabled=fault != "write_disabled",
                wire_quirks=frozenset(own), power_timing=timing)
            servers = DeviceServers(device, http_port=options.http_port,
                                    reboot_seconds=reboot_seconds, slow_seconds=slow_seconds)
            await servers.listen()
            sim.by_ip[ip] = device
            sim.servers[ip] = servers
            LOADS.register(ip, device.power_model)
            sim.devices.append({
                "ip": ip, "mac": device.mac, "make": "Whatsminer", "model": profile.model,
                "api": profile.api, "firmware": profile.fw_ver, "serial": device.serial,
                "ports": servers.ports, "fault": fault, "password": device.password,
                "v3_password": device.v3_password, "quirks": sorted(device.quirks),
            })
    except BaseException:
        await sim.close()
        raise
    return sim
