"""One simulated Whatsminer's state: what it mines, how, its LED, pools, power, tokens.

Both API servers (v2 on 4028, v3 on 4433) read and change this one state, so a change made
through either shows in both, as on a real miner. Times that matter to the protocol (token
expiry, uptime) come from a :class:`SimClock` that tests can move forward.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from webbo.plugins.common.simpower import PowerModel, PowerTiming
from webbo.plugins.inputs.whatsminer.crypto import md5crypt_body, v2_aeskey
from webbo.plugins.inputs.whatsminer.sim.profiles import Profile

__all__ = ["MAX_TOKENS_PER_IP", "TOKEN_LIFE", "SimClock", "SimDevice"]

TOKEN_LIFE = 30 * 60.0
MAX_TOKENS_PER_IP = 32
SALT_CHARS = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MODE_FACTORS = {"Normal": (1.0, 1.0), "Low": (0.8, 0.74), "High": (1.12, 1.22)}
"""Power mode → (hashrate factor, power factor)."""
IDLE_W = 14
"""What a Whatsminer draws with btminer powered off (control board, fans barely turning)."""
HASH_EXPONENT = 0.8
"""Hashrate ∝ power ** 0.8 below a mode's full draw: a miner held under its power (power
percent) runs cooler chips at lower voltage, a little more efficient per terahash."""
_POWER_STATE = frozenset({"mining", "power_mode", "power_pct", "power_limit", "rebooting"})
KNOWN_ERRORS = ("110", "111", "218", "233", "531", "2010", "5070")


class SimClock:
    """Wall-clock seconds, shifted by whatever tests ``advance``."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def _salt(rng: random.Random) -> str:
    return "".join(rng.choice(SALT_CHARS) for _ in range(8))


@dataclass
class Pool:
    url: str
    user: str
    passwd: str


@dataclass
class SimDevice:
    ip: str
    profile: Profile
    mac: str
    serial: str
    clock: SimClock
    password: str = "admin"
    v3_password: str = "super"
    fault: str | None = None
    seed: int = 0
    hostname: str = "WhatsMiner"
    mining: bool = True
    power_mode: str = "Normal"
    led: Any = "auto"
    """"auto", or the manual pattern(s) last set."""
    write_enabled: bool = True
    fast_boot: bool = False
    web_pools: bool = True
    power_limit: int = 0
    target_freq_pct: int = 0
    power_pct: int = 100
    timezone: tuple[str, str] = ("CST-8", "Asia/Shanghai")
    pools: list[Pool] = field(default_factory=list)
    pending_pools: list[Pool] | None = None
    errors: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, dict[str, float]] = field(default_factory=dict)
    """client address → {sign: issued at} (v2 tokens)."""
    log: list[tuple[str, Any]] = field(default_factory=list)
    """Every write that took effect, in order: (command, parameters)."""
    token_requests: int = 0
    wire_quirks: frozenset[str] = frozenset()
    """Broken-JSON quirks ``webbo simulate --quirks`` gave this miner, on top of its
    firmware's own."""
    power_timing: PowerTiming = field(default_factory=PowerTiming)
    """How fast the draw follows sleep, wake-up and power changes (simpower)."""

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.seed}:{self.ip}:state")
        self.salt = _salt(self.rng)
        self.v3_salt = _salt(self.rng)
        self.power_limit = self.power_limit or self.profile.power_limit_w
        now = self.clock.now()
        self.boot_time = now - self.rng.uniform(3600, 40 * 86400)
        self.btminer_start = self.boot_time + 60
        if not self.pools:
            worker = f"farm.{self.ip.split('.')[-2]}x{self.ip.split('.')[-1]}"
            self.pools = [Pool("stratum+tcp://btc.f2pool.com:1314", worker, "123"),
                          Pool("stratum+tcp://btc-asia.f2pool.com:1314", worker, "123"),
                          Pool("stratum+tcp://btc-euro.f2pool.com:1314", worker, "123")]
        if not self.errors and self.rng.random() < 0.3:
            self.errors = {self.rng.choice(KNOWN_ERRORS): self.when(now - 7200)}
        if self.fault == "oversized":
            self.errors = {str(1000 + i): self.when(now - 60 * i) for i in range(400)}
        self.accepted = self.rng.randint(1000, 90000)
        self.rejected = self.accepted // 400
        self.env_temp = round(self.rng.uniform(24.0, 33.0), 1)
        self.rebooting = False
        self.power_model = PowerModel(self.steady_power(), mining=self.powered,
                                      idle_w=IDLE_W, timing=self.power_timing)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in _POWER_STATE and "power_model" in self.__dict__:
            self.power_model.follow(self.powered, self.steady_power())

    # -- keys ------------------------------------------------------------------------------

    @property
    def key(self) -> str:
        """md5crypt(admin password, salt): what the miner keeps instead of the password."""
        cached = getattr(self, "_key", None)
        if cached is None or cached[0] != self.password:
            cached = (self.password, md5crypt_body(self.password, self.salt))
            self._key = cached
        return cached[1]

    @property
    def aeskey(self) -> bytes:
        return v2_aeskey(self.key)

    @staticmethod
    def when(ts: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))

    # -- figures ---------------------------------------------------------------------------

    def elapsed(self) -> int:
        return max(0, int(self.clock.now() - self.btminer_start))

    def uptime(self) -> int:
        return max(0, int(self.clock.now() - self.boot_time))

    @property
    def powered(self) -> bool:
        """Hash boards running (btminer on and the miner not rebooting)."""
        return self.mining and not self.rebooting

    def full_power(self) -> float:
        """The draw of the current power mode with nothing holding it back."""
        return self.profile.power_w * MODE_FACTORS.get(self.power_mode, (1.0, 1.0))[1]

    def steady_power(self) -> float:
        """Where the draw settles in the current state: the mode's draw, held under the power
        limit, and under ``power_pct`` % of the power limit (a temporary power percent, as
        ``set_power_pct`` and ``set.miner.power_percent`` set it); idle while powered off."""
        if not self.powered:
            return float(IDLE_W)
        return min(self.full_power(), self.power_limit,
                   self.power_limit * self.power_pct / 100.0)

    def hashrate_mhs(self, jitter: float = 0.01) -> float:
        """Current whole-miner hashrate in MH/s: follows the draw (0 while powered off)."""
        if not self.powered:
            return 0.0
        full = self.full_power()
        share = max(0.0, self.power_model.watts() - IDLE_W) / max(1.0, full - IDLE_W)
        factor = MODE_FACTORS.get(self.power_mode, (1.0, 1.0))[0]
        base = self.profile.factory_ghs * 1000.0 * factor * min(1.0, share) ** HASH_EXPONENT
        return round(base * (1.0 + self.rng.uniform(-jitter, jitter)), 2)

    def power(self) -> int:
        """The draw now, as the summary's ``Power`` says it."""
        return int(self.power_model.watts() * (1.0 + self.rng.uniform(-0.005, 0.005)))

    def board_temps(self) -> list[float]:
        base = 38.0 if not self.mining else (62.0 if self.profile.fans else 55.0)
        return [round(base + i * 1.3 + self.rng.uniform(-0.5, 0.5), 2)
                for i in range(self.profile.boards)]

    def chip_temps(self, board: int) -> tuple[float, float, float]:
        temp = self.board_temps()[board] + (12.0 if self.mining else 0.0)
        return round(temp - 6.5, 2), round(temp, 2), round(temp + 7.1, 2)

    def fan_speeds(self) -> tuple[int, int]:
        """(intake, outlet) rpm; 0 for a model without fans, and for a stopped fan."""
        if not self.profile.fans:
            return 0, 0
        if not self.mining:
            fan_in, fan_out = 1200, 1170
        else:
            fan_in, fan_out = 5400 + self.rng.randint(-60, 60), 5280 + self.rng.randint(-60, 60)
        return fan_in, 0 if "fan_stopped" in self.quirks else fan_out

    def psu_fan(self) -> int:
        return 0 if not self.profile.fans else 6300 + self.rng.randint(-50, 50)

    def listed_pools(self) -> list[tuple[int, Pool, bool]]:
        """(1-based slot, pool, mined on now) of the slots that hold a pool: the first one is
        the active pool while the miner hashes."""
        listed = [(n, pool) for n, pool in enumerate(self.pools, start=1) if pool.url]
        return [(n, pool, self.mining and i == 0) for i, (n, pool) in enumerate(listed)]

    @property
    def quirks(self) -> frozenset[str]:
        return self.profile.quirks | self.wire_quirks

    @property
    def ledstat(self) -> str:
        return "auto" if self.led == "auto" else "manual"

    # -- v2 tokens -------------------------------------------------------------------------

    def _live_tokens(self, client: str) -> dict[str, float]:
        now = self.clock.now()
        live = {sign: at for sign, at in self.tokens.get(client, {}).items()
                if now - at < TOKEN_LIFE}
        self.tokens[client] = live
        return live

    def issue_token(self, client: str) -> dict[str, str] | None:
        """``get_token``'s ``Msg``, or None when this client holds 32 live tokens already."""
        self.token_requests += 1
        live = self._live_tokens(client)
        if len(live) >= MAX_TOKENS_PER_IP:
            return None
        stamp = f"{int(self.clock.now()) % 10000:04d}"
        newsalt = _salt(self.rng)
        live[md5crypt_body(self.key + stamp, newsalt)] = self.clock.now()
        return {"time": stamp, "salt": self.salt, "newsalt": newsalt}

    def token_valid(self, client: str, sign: Any) -> bool:
        return isinstance(sign, str) and sign in self._live_tokens(client)

    # -- changes ---------------------------------------------------------------------------

    def record(self, command: str, params: Any = None) -> None:
        self.log.append((command, params))

    def restart_btminer(self) -> None:
        self.btminer_start = self.clock.now()
        if self.pending_pools is not None:
            self.pools, self.pending_pools = self.pending_pools, None

    def set_pools(self, pools: list[Pool]) -> None:
        if "pools_need_restart" in self.quirks:
            self.pending_pools = pools
        else:
            self.pools = pools

    def after_reboot(self) -> None:
        now = self.clock.now()
        self.boot_time = now
        self.btminer_start = now + 1
        self.led = "auto"
        self.mining = True
        self.tokens.clear()
        if self.pending_pools is not None:
            self.pools, self.pending_pools = self.pending_pools, None
