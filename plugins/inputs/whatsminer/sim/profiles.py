"""The simulated Whatsminer models and firmwares, with the quirks each one shows.

Figures are those of the real models (nominal hashrate, power, boards, chips); the firmware
generations differ the way real ones do (reference §3.1–§3.2, §1.4):

* ``v1``: API "whatsminer v1.4.0" — ``status`` says ``btmineroff``, no ``get_error_code`` (the
  codes are ``Error Code N`` fields of ``summary``), no MAC in ``get_miner_info`` (it is the
  summary's ``MAC``), and new pools only apply after btminer restarts (pyasic #325);
* ``error_code_list``: API 2.0.4 sends ``"error_code":["111":"…",…]``, a list shaped like a dict;
* ``temp0_comma``: the 2023-01-06 build drops the comma before ``"temp0"`` in ``get_psu``;
* ``encrypted_errors``: refusals of encrypted writes come back encrypted (other builds send
  them in clear);
* v3 firmware (2024-11 on) answers API v3 on 4433 and v2 *reads* on 4028.

M56S is an immersion model and M53S a hydro one (MicroBT's M_3_ and M_6_ series): no fans of
their own, both fan fields read 0 and ``Liquid Cooling`` is true. M53S is not in the default
mix (:data:`DEFAULT_PROFILES`); name it in ``profiles`` to run it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DEFAULT_PROFILES", "PROFILES", "Profile"]


@dataclass(frozen=True)
class Profile:
    key: str
    model: str
    """As ``devdetails`` ``Model`` / v3 ``miner.type`` say it."""
    boards: int
    chips: int
    """Effective chips per board."""
    factory_ghs: float
    """Nominal hashrate of the whole miner in GH/s (``Factory GHS``)."""
    power_w: int
    power_limit_w: int
    fans: bool
    """False for hydro models: their fan fields read 0."""
    api: str
    """"v2" (4028 only) or "v3" (4433, and v2-compat reads on 4028)."""
    api_ver: str
    fw_ver: str
    platform: str = "H616"
    chip: str = "K88Z001-2206 BINV05-198503C"
    freq_mhz: int = 600
    quirks: frozenset[str] = field(default_factory=frozenset)


PROFILES: dict[str, Profile] = {p.key: p for p in (
    Profile("m30s", "M30S_VE10", 3, 105, 88000.0, 3344, 3600, True, "v2",
            "whatsminer v1.4.0", "20210322.22.REL", platform="H6OS", freq_mhz=560,
            chip="K40P10-2008 BINV01-194503B",
            quirks=frozenset({"v1", "pools_need_restart"})),
    Profile("m50", "M50_VH50", 3, 105, 118000.0, 3304, 3500, True, "v2",
            "2.0.4", "20230106.16.REL", freq_mhz=610,
            quirks=frozenset({"error_code_list", "temp0_comma"})),
    Profile("m56s", "M56S_VH30", 4, 152, 212000.0, 5550, 5800, False, "v2",
            "2.0.5", "20240624.18.REL", freq_mhz=590,
            chip="K88Z002-2212 BINV03-196504A",
            quirks=frozenset({"encrypted_errors"})),
    Profile("m60", "M60_VK40", 3, 180, 172000.0, 3422, 3600, True, "v3",
            "3.0.1", "20250321.14.REL", platform="H6OS", freq_mhz=640,
            chip="K90B003-2401 BINV05-199004E"),
    Profile("m56s-v3", "M56S_VH30", 4, 152, 212000.0, 5550, 5800, False, "v3",
            "3.0.3", "20250110.12.REL", freq_mhz=590,
            chip="K88Z002-2212 BINV03-196504A"),
    Profile("m53s", "M53S_VH30", 4, 160, 226000.0, 6554, 6800, False, "v2",
            "2.0.5", "20240624.18.REL", freq_mhz=600,
            chip="K88Z002-2212 BINV03-196504A"),
)}
DEFAULT_PROFILES = ("m30s", "m50", "m56s", "m60", "m56s-v3")
"""The models of a farm that names none, in turn."""
