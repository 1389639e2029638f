"""The Avalon side of a simulated AvalonMiner: what Canaan's cgminer 4.11.1 adds to the plain
cgminer RPC, as its replies look on the wire.

Sources (the facts and what could not be checked are listed in docs/plugins.md, "Firmware
facts"): the ``estats``/``stats`` block and its ``MM ID0`` string follow an AvalonMiner 15-194
capture (pyasic's test fixture) field by field and in its order, filled with this device's
numbers (of the per-chip arrays only the temperatures, ``PVT_Tn``, are kept); the LED
options and their answers follow the open-source ``driver-avalon10.c`` and Canaan's ``api.c``
(codes 118 info, 119 OK, 120 failed) and, for the ``1-255`` query the open-source driver does
not have, the stock-firmware answer that pyasic and asic-rs parse; ``restart`` answers
``{"STATUS":"RESTART","id":1}`` as cgminer's ``dorestart`` writes it.

:class:`AvalonController` holds the controller's state (the locate LED) and builds those
replies from the numbers the device gives it; it knows nothing of sockets.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

from webbo.plugins.common.rpc4028.sim_server import status

__all__ = ["ASC_COUNT", "MODULES", "AvalonController", "restart_reply"]

ASC_COUNT = 1
"""An AvalonMiner is one cgminer device (the controller with its hash boards): ``ASC 0``."""
MODULES = 7
"""``AVA10_DEFAULT_MODULARS``: module ids 1..6 are valid; an AvalonMiner has module 1 only."""
DRIVER_NAME = "AVA10"
"""The cgminer driver's short name (``DEVS[].Name``, ``STATS[].ID`` = name + device id)."""


def restart_reply() -> dict[str, Any]:
    """cgminer's answer to ``restart`` (a bare string STATUS), sent before the process exits."""
    return {"STATUS": "RESTART", "id": 1}


class AvalonController:
    """The locate LED and the ``MM ID0`` status of one simulated AvalonMiner."""

    def __init__(self, *, model: str, version: str, dna: str, boards: int, chips: int,
                 nominal_ths: float, wall_power_w: float, seed: str, description: str) -> None:
        self.model = model
        self.version = version
        self.dna = dna
        self.boards = boards
        self.chips = chips
        self.nominal_ths = nominal_ths
        self.wall_power_w = wall_power_w
        self.description = description
        self.led = 0
        self.module_reboots = 0
        rng = random.Random(seed)
        self.phase = rng.uniform(0, 6.28)
        self.chip_offsets = [[rng.randint(-4, 4) for _ in range(chips)] for _ in range(boards)]
        self._cache: tuple[tuple[Any, ...], str] | None = None

    def on_restart(self) -> None:
        """cgminer starts with the LED indicator off (it lives in the process's memory)."""
        self.led = 0
        self._cache = None

    # -- estats / stats --------------------------------------------------------------------------

    def board_temps(self, now: float) -> list[tuple[int, int]]:
        """(MTmax, MTavg) per board: the hottest and the average chip of each board."""
        tick = now // 5
        out = []
        for board in range(self.boards):
            average = round(70 + 2 * math.sin(tick / 60 + self.phase + board))
            out.append((average + max(self.chip_offsets[board]), average))
        return out

    def mm_id0(self, *, elapsed: int, rates_mhs: list[float], hw_errors: int,
               now: float | None = None) -> str:
        """The ``MM ID0`` string (cached per 5-second tick: the firmware updates it as often)."""
        now = time.time() if now is None else now
        key = (int(now // 5), elapsed, tuple(rates_mhs), hw_errors, self.led)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        text = self._build(elapsed, rates_mhs, hw_errors, now)
        self._cache = (key, text)
        return text

    def _build(self, elapsed: int, rates_mhs: list[float], hw_errors: int, now: float) -> str:
        tick = now // 5
        temps = self.board_temps(now)
        ghs = [rate / 1000 for rate in rates_mhs]
        wall = round(self.wall_power_w * (1 + 0.005 * math.sin(tick / 40 + self.phase)))
        ambient = round(26 + 2 * math.sin(tick / 720 + self.phase))
        fans = [round(4250 + 30 * math.sin(tick / 90 + self.phase + i)) for i in range(2)]
        expected = self.nominal_ths * 1000
        total = sum(ghs)
        n = self.boards

        def per_board(values: list[Any], fmt: str = "{}") -> str:
            return " ".join(fmt.format(v) for v in values)

        chip_temps = [
            "[" + " ".join(f"{average + off:3d}" for off in self.chip_offsets[b]) + "]"
            for b, (_, average) in enumerate(temps)]
        parts = [
            f"Ver[{self.model}-{self.version}]", f"DNA[{self.dna}]", "MEMFREE[1392832.1381104]",
            "NETFAIL[0 0 0 0 0 0 0 0]", f"SYSTEMSTATU[Work: In Work, Hash Board: {n} ]",
            f"Elapsed[{elapsed}]", "BOOTBY[0x04.00000000]", f"LW[{elapsed * 732}]",
            f"MH[{per_board([0] * n)}]", "DHW[0]", f"HW[{hw_errors}]", "DH[1.299%]",
            f"Temp[{ambient}]", f"TMax[{max(t for t, _ in temps)}]",
            f"TAvg[{round(sum(a for _, a in temps) / n)}]",
            f"Fan1[{fans[0]}]", f"Fan2[{fans[1]}]", "FanR[49%]", "Vo[296]",
            f"PS[0 1209 1187 297 {round(wall * 0.945)} 1188 {wall}]", f"WALLPOWER[{wall}]",
            *(f"PLL{b}[3346 2549 4722 13703]" for b in range(n)),
            f"GHSspd[{total:.2f}]", "DHspd[1.299%]", f"GHSmm[{expected:.2f}]",
            f"GHSavg[{total * 0.998:.2f}]", f"WU[{total * 12.9:.2f}]", "Freq[345.94]",
            f"Led[{self.led}]", f"MGHS[{per_board(ghs, '{:.2f}')}]",
            f"MTmax[{per_board([t for t, _ in temps])}]",
            f"MTavg[{per_board([a for _, a in temps])}]", f"MVavg[{per_board([285.7] * n)}]",
            f"TA[{self.chips * n}]", "Core[A3197S]", "PING[131]", "POWS[0]",
            f"EEPROM[{per_board([self.chips] * n)}]", f"HASHS[{per_board([0] * n)}]",
            "POOLS[0]", "SoftOFF[0]", f"ECHU[{per_board([0] * n)}]", "ECMM[0]",
            *(f"SF{b}[300 318 339 360]" for b in range(n)),
            *(f"PVT_T{b}{chip_temps[b]}" for b in range(n)),
            f"CRC[{per_board([0] * n)}]", f"COMCRC[{per_board([0] * n)}]",
            f"ADJ[1] COP[{per_board([0] * n)}] MPO[{round(self.wall_power_w * 0.94)}] MVL[87]",
            "WORKMODE[1]",
        ]
        return " ".join(parts)

    def stats_block(self, *, elapsed: int, rates_mhs: list[float], hw_errors: int
                    ) -> dict[str, Any]:
        """The controller's entry of ``STATS`` (``estats`` has only this one)."""
        return {"STATS": 0, "ID": f"{DRIVER_NAME}0", "Elapsed": elapsed, "Calls": 0,
                "Wait": 0.0, "Max": 0.0, "Min": 99999999.0,
                "MM ID0": self.mm_id0(elapsed=elapsed, rates_mhs=rates_mhs,
                                      hw_errors=hw_errors),
                "MM Count": 1, "Smart Speed": 1, "Voltage Level Offset": 0, "Nonce Mask": 25}

    # -- ascset ----------------------------------------------------------------------------------

    def _reply(self, code: int, msg: str, letter: str) -> dict[str, Any]:
        return {"STATUS": status(code, msg, self.description, letter), "id": 1}

    def ascset(self, parameter: str | None) -> dict[str, Any]:
        """``ascset|ASC,OPTION[,SETTING]`` as Canaan's api.c parses it and the avalon10 driver
        answers: LED on/off (``led,1-1``/``led,1-0``: "ASC 0 set OK"), the stock firmware's
        query (``led,1-255``: "ASC 0 set info: LED[n]"), a hash module's reboot flag
        (``reboot,1``), everything else "set failed"."""
        if not parameter:
            return self._reply(15, "Missing device id parameter", "E")
        asc_text, comma, rest = parameter.partition(",")
        if not comma or not rest:
            return self._reply(116, "Missing option after ASC number", "E")
        asc = _atoi(asc_text)
        if not 0 <= asc < ASC_COUNT:
            return self._reply(107, f"Invalid ASC id {asc} - range is 0 - {ASC_COUNT - 1}", "E")
        option, _, setting = rest.partition(",")
        error, info = self._set(option, setting)
        if error:
            return self._reply(120, f"ASC {asc} set failed: {error}", "E")
        if info:
            return self._reply(118, f"ASC {asc} set info: {info}", "I")
        return self._reply(119, f"ASC {asc} set OK", "S")

    def _set(self, option: str, setting: str) -> tuple[str, str]:
        """(error, info) of one option; both empty means "set OK"."""
        option = option.lower()
        if option == "reboot":
            return self._reboot_module(setting), ""
        if option != "led":
            return f"Unknown option: {option}", ""
        if not setting:
            return "missing module_id setting", ""
        module_text, dash, led_text = setting.partition("-")
        module = _atoi(module_text)
        if not 1 <= module < MODULES:
            return f"invalid module_id: {module}, valid range 1-{MODULES}", ""
        if module != 1:
            return f"the current module was disabled {module}", ""
        if not dash:
            self.led = 1 - self.led  # no state given: toggle, as the driver does
            self._cache = None
            return "", ""
        wanted = _atoi(led_text)
        if wanted == 255:
            return "", f"LED[{self.led}]"
        if wanted not in (0, 1):
            return f"invalid LED status: {wanted}, valid value 0|1", ""
        self.led = wanted
        self._cache = None
        return "", ""


    def _reboot_module(self, setting: str) -> str:
        """``reboot,MODULE`` as the open-source driver takes it: flags one hash module for a
        reboot (the controller and cgminer stay up). What stock firmware answers to
        ``0,reboot,0`` (module 0) is not known; the open-source driver refuses it."""
        if not setting:
            return "missing reboot value"
        module = _atoi(setting)
        if not 1 <= module < MODULES:
            return f"invalid module_id: {module}, valid range 1-{MODULES}"
        self.module_reboots += 1
        return ""


def _atoi(text: str) -> int:
    """C's atoi: the leading integer of ``text``, 0 when there is none."""
    text = text.strip()
    end = 1 if text[:1] and text[:1] in "+-" else 0
    while end < len(text) and text[end].isdigit():
        end += 1
    try:
        return int(text[:end])
    except ValueError:
        return 0
