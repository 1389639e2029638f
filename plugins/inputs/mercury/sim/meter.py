"""One simulated Mercury meter: the protocol state machine and its drifting physics.

No I/O here: :meth:`SimMeter.handle` takes one request frame and returns the reply frame (or
None for silence), so it is unit-testable byte for byte. :mod:`.simulator` puts several of these
on a pseudo-terminal.

Behaviour follows the reference's simulator checklist (§11): silent on a bad CRC, a foreign
address, a request of the wrong length or a write to address 0; broadcast ``FE`` executes
silently; address 0 answers with address byte 0; a session opened with the right password
lasts 240 s (configurable) and every correct request refreshes it; ``08 00`` and the test need
no session; status 5 without one, 3 for a level-1 session asking a level-2 write, 1 for an
unknown request or a wrong password.

Choices where the reference is uncertain (stated so tests and readers know):

* a wrong password answers status 1;
* single-phase models answer ``08 16`` group reads (and the fast read) with status 1 — the
  poller reads them with ``08 11``;
* three-phase models answer the fast read ``08 16 A0`` (78 bytes) unless ``fast_read`` is off;
* ``08 14`` (frozen data) and most writes are not modelled: status 1 (writes at level 1: 3);
* per-period energy arrays (year, month, day, …) are derived from the running totals at the
  meter's average rate, so "from reset ≥ year ≥ day" and "sum = T1+…+T4" always hold.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from webbo.plugins.common.simpower import LOADS, parse_span
from webbo.plugins.inputs.mercury import protocol as p
from webbo.plugins.inputs.mercury.protocol import Bwri, Code, Param

# Variant bytes from the manufacturer's examples: 3-phase 230 V 5(60) A, 500 imp/kWh, RS-485;
# 1-phase, 250 imp/kWh. Byte 2 bit 7 (one direction) and byte 3 bits 5-4 (A only) are adjusted
# per simulated meter.
VARIANT_3PH = bytes.fromhex("B4E3C297DF58")
VARIANT_1PH = bytes.fromhex("B4F5C3BDDBC8")
VARIANT_TAIL = bytes.fromhex("32440C000000")
FIRMWARE = {1: bytes((2, 1, 7)), 3: bytes((9, 0, 0))}

FAULTS = ("silent", "bad_crc", "truncated", "slow", "status2", "garbage")
"""Per-meter faults: never answer; answer with a wrong CRC; answer a frame cut short; answer
later than any poller waits; answer every read with status 2 (internal error); answer noise."""


@dataclass
class MeterSpec:
    """What a simulated meter is (the explicit ``meters`` list of the simulator takes these
    keys)."""

    serial_number: str
    device_model: str
    address: int | None = None
    """None: the factory address its serial number gives (as a meter leaves the factory)."""
    password_1: str = "111111"
    password_2: str = "222222"
    password_encoding: p.PasswordEncoding = "digits"
    fault: str | None = None
    fast_read: bool | None = None
    """Answer ``08 16 A0``; None: yes for three-phase models."""
    two_directions: bool | None = None
    """Counts export (A−); None: by model (236 and 238 yes)."""
    active_only: bool = False
    """An "A" meter: no reactive quantities (reads answer status 1, energies ``FFFFFFFF``)."""
    made: str | None = None
    """Date of manufacture "DD.MM.YYYY"; None: a seeded day in the serial's "-YY" year."""
    measures: list[str] | None = None
    """Address spans of simulated miners this meter measures (``"127.77.0.1-127.77.0.50"``):
    its active power is their draw (:data:`webbo.plugins.common.simpower.LOADS`, miners of
    the same process) plus ``base_load_w``, its currents follow. None: a drifting load."""
    base_load_w: float = 0.0
    """What else the measured feed carries (cooling, lights), in watts."""
    current_ratio: int = 1
    """The current transformers' ratio Kт (500/5 A → 100): the meter sees the load divided by
    it, as a meter on CTs does, and says it in ``08 02``. One value must stay under 41.9 kW
    on the meter's side (its 3-byte format)."""


# --------------------------------------------------------------------------------------------
# Physics
# --------------------------------------------------------------------------------------------


class Physics:
    """Per-phase voltage, current and power factor that drift, and energy that integrates.

    Values move as a mean-reverting random walk scaled by the time since the last look, so
    reads a few milliseconds apart agree and minutes apart differ, like a real load.
    """

    def __init__(self, rng: random.Random, phases: int, wall: Callable[[], float]) -> None:
        self.rng = rng
        self.phases = phases
        self.wall = wall
        self.u = [230.0 + rng.uniform(-4, 4) for _ in range(phases)]
        self.i_mean = [rng.uniform(1.0, 16.0) for _ in range(phases)]
        self.i = list(self.i_mean)
        self.pf = [rng.uniform(0.86, 0.98) for _ in range(phases)]
        self.f = 50.0 + rng.uniform(-0.05, 0.05)
        self.temperature = rng.uniform(18, 32)
        self.angles = [120.0 + rng.uniform(-0.5, 0.5), 240.0 + rng.uniform(-0.5, 0.5),
                       120.0 + rng.uniform(-0.5, 0.5)]
        self.thd = [rng.uniform(1.0, 4.0) for _ in range(phases)]
        # Energy, Wh, per tariff 1..4: [A+, A-, R+, R-]. A seeded past, then integrated.
        past_kwh = rng.uniform(800, 60_000)
        day_share = rng.uniform(0.6, 0.8)
        self.energy = [
            [past_kwh * 1000 * share, 0.0, past_kwh * 1000 * share * rng.uniform(0.1, 0.4), 0.0]
            for share in (day_share, 1 - day_share, 0.0, 0.0)
        ]
        self.phase_share = [i / sum(self.i_mean) for i in self.i_mean]
        self.age_s = rng.uniform(2, 6) * 365 * 86400
        self.last = wall()
        self.held_u: dict[int, float] = {}
        """Phase index → a voltage held there (tests: a lost phase, an over-voltage); see
        :meth:`hold_voltage`."""
        self.load: Callable[[], float] | None = None
        self.ratio = 1

    def hold_voltage(self, phase: int, volts: float | None) -> None:
        """Hold phase ``phase`` (1-based) at ``volts`` (0: the phase is lost; its current
        drops to 0 too); None lets it drift back to normal."""
        if volts is None:
            self.held_u.pop(phase - 1, None)
            self.u[phase - 1] = 230.0
        else:
            self.held_u[phase - 1] = float(volts)
            self.u[phase - 1] = float(volts)

    def bind(self, load: Callable[[], float], ratio: int) -> None:
        """Measure ``load()`` watts through CTs of ``ratio`` instead of drifting on its own:
        power factor near a miner PSU's, the load shared nearly evenly by the phases."""
        self.load = load
        self.ratio = max(1, ratio)
        self.pf = [self.rng.uniform(0.975, 0.995) for _ in range(self.phases)]
        weights = [self.rng.uniform(0.96, 1.04) for _ in range(self.phases)]
        self.phase_share = [w / sum(weights) for w in weights]
        self._follow_load()

    def _follow_load(self) -> None:
        if self.load is None:
            return
        total = max(0.0, self.load())
        for k in range(self.phases):
            watts = total * self.phase_share[k] / self.ratio
            self.i[k] = watts / (self.u[k] * self.pf[k]) if self.u[k] > 1.0 else 0.0

    def update(self) -> None:
        now = self.wall()
        dt_s = max(0.0, now - self.last)
        if dt_s <= 0:
            self._follow_load()
            return
        # integrate with the power of the elapsed interval, then drift
        p_total = sum(self.power_p())
        q_total = sum(self.power_q())
        tariff = self.tariff_at(now)
        self.energy[tariff - 1][0] += p_total * dt_s / 3600
        self.energy[tariff - 1][2] += q_total * dt_s / 3600
        step = min(1.0, math.sqrt(dt_s / 60))
        rng = self.rng
        bound = self.load is not None
        for k in range(self.phases):
            self.u[k] += (230.0 - self.u[k]) * 0.1 * step + rng.gauss(0, 0.6) * step
            self.u[k] = min(max(self.u[k], 207.0), 253.0)
            if bound:
                self.pf[k] = min(max(self.pf[k] + rng.gauss(0, 0.002) * step, 0.96), 0.999)
                continue
            self.i[k] += (self.i_mean[k] - self.i[k]) * 0.2 * step + rng.gauss(0, 0.4) * step
            self.i[k] = min(max(self.i[k], 0.05), 60.0)
            self.pf[k] = min(max(self.pf[k] + rng.gauss(0, 0.01) * step, 0.6), 0.999)
            self.thd[k] = min(max(self.thd[k] + rng.gauss(0, 0.1) * step, 0.5), 8.0)
        for k, volts in self.held_u.items():
            self.u[k] = volts
            if volts < 1.0:
                self.i[k] = 0.0
        self.f = min(max(self.f + (50.0 - self.f) * 0.3 * step + rng.gauss(0, 0.02) * step,
                         49.9), 50.1)
        self.temperature += rng.gauss(0, 0.2) * step
        self.last = now
        self._follow_load()

    @staticmethod
    def tariff_at(ts: float) -> int:
        """Two-rate day/night tariff: T1 07:00–23:00, T2 at night."""
        hour = dt.datetime.fromtimestamp(ts).hour
        return 1 if 7 <= hour < 23 else 2

    def power_s(self) -> list[float]:
        return [u * i for u, i in zip(self.u, self.i, strict=True)]

    def power_p(self) -> list[float]:
        return [s * pf for s, pf in zip(self.power_s(), self.pf, strict=True)]

    def power_q(self) -> list[float]:
        return [math.sqrt(max(s * s - pw * pw, 0.0))
                for s, pw in zip(self.power_s(), self.power_p(), strict=True)]

    def total_pf(self) -> float:
        s = math.hypot(sum(self.power_p()), sum(self.power_q()))
        return sum(self.power_p()) / s if s else 1.0

    # -- energy arrays ------------------------------------------------------------------------

    def energy_wh(self, tariff: int) -> list[int]:
        """[A+, A-, R+, R-] whole Wh of one tariff (0 = the sum of the four)."""
        if tariff == 0:
            per = [self.energy_wh(t) for t in (1, 2, 3, 4)]
            return [sum(row[k] for row in per) for k in range(4)]
        return [int(v) for v in self.energy[tariff - 1]]

    def energy_at(self, tariff: int, ts: float) -> list[int]:
        """Counters at a past moment, at the meter's average rate since it was made."""
        now_values = self.energy_wh(tariff)
        back = max(0.0, self.wall() - ts)
        return [max(0, int(v - v * min(1.0, back / self.age_s))) for v in now_values]


# --------------------------------------------------------------------------------------------
# The meter
# --------------------------------------------------------------------------------------------


def _bcd(value: int) -> int:
    return ((value // 10) << 4) | (value % 10)


class SimMeter:
    """One simulated meter on a bus."""

    def __init__(
        self,
        spec: MeterSpec,
        rng: random.Random,
        *,
        session_seconds: float = 240.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        model = p.MODELS[spec.device_model]
        digits, year = p.parse_serial_number(spec.serial_number)
        self.spec = spec
        self.model = model
        self.address = spec.address if spec.address is not None else p.factory_address(
            digits, d_model=spec.password_encoding == "ascii")
        self.rng = rng
        self.clock = clock
        self.wall = wall
        self.session_seconds = session_seconds
        self.fault: str | None = spec.fault
        if spec.made is not None:
            made = dt.datetime.strptime(spec.made, "%d.%m.%Y")
            self.serial = p.SerialInfo(digits, made.day, made.month, made.year % 100)
        else:
            self.serial = p.SerialInfo(digits, rng.randint(1, 28), rng.randint(1, 12),
                                       year if year is not None else rng.randint(14, 24))
        self.passwords = {1: p.password_bytes(spec.password_1, spec.password_encoding),
                          2: p.password_bytes(spec.password_2, spec.password_encoding)}
        self.fast_read = model.three_phase if spec.fast_read is None else spec.fast_read
        two_dir = (spec.device_model in ("236", "238") if spec.two_directions is None
                   else spec.two_directions)
        variant = bytearray(VARIANT_3PH if model.three_phase else VARIANT_1PH)
        variant[1] = (variant[1] & 0x7F) | (0 if two_dir else 0x80)
        variant[2] = (variant[2] & 0xCF) | (0x10 if spec.active_only else 0)
        self.variant = bytes(variant)
        self.two_directions = two_dir
        self.reactive = not spec.active_only
        self.physics = Physics(rng, model.phases, wall)
        if spec.measures is not None:
            spans = [parse_span(text) for text in spec.measures]
            base = float(spec.base_load_w)
            self.physics.bind(lambda: base + LOADS.watts(spans), spec.current_ratio)
        self.current_ratio = max(1, int(spec.current_ratio))
        if two_dir:
            for row in self.physics.energy:
                row[1] = row[0] * rng.uniform(0.0, 0.05)
        self.session_level = 0
        self.session_deadline = 0.0
        self.requests = 0
        """Requests addressed to this meter that it answered or executed."""

    # -- framing ------------------------------------------------------------------------------

    def addressed(self, address: int) -> bool:
        return address in (self.address, p.UNIVERSAL_ADDRESS, p.BROADCAST_ADDRESS)

    def handle(self, request: bytes) -> bytes | None:
        """The reply frame to one request frame, or None when the meter stays silent."""
        if len(request) < 4 or not p.crc_ok(request):
            return None
        address, code = request[0], request[1]
        if not self.addressed(address):
            return None
        if code == Code.WRITE and address == p.UNIVERSAL_ADDRESS:
            return None
        if not self._length_ok(request):
            return None
        self.requests += 1
        data = self._execute(request)
        if address == p.BROADCAST_ADDRESS:
            return None
        reply_address = p.UNIVERSAL_ADDRESS if address == p.UNIVERSAL_ADDRESS else self.address
        return p.frame(bytes((reply_address,)) + data)

    @staticmethod
    def _length_ok(request: bytes) -> bool:
        code, size = request[1], len(request)
        if code == Code.WRITE:
            expected = p.WRITE_LENGTHS.get(request[2]) if size > 4 else None
            return expected is None or size == expected
        if code == Code.READ_PARAM and size >= 5:
            param = request[2]
            if param in (Param.SINGLE, Param.GROUP, Param.FROZEN):
                return size == 6
            if param in (Param.PASSPORT, Param.VARIANT):
                return size in (5, 6)
            return size == 5
        legal = p.REQUEST_LENGTHS.get(code)
        return legal is None or size in legal

    # -- session ------------------------------------------------------------------------------

    def _level(self) -> int:
        if self.session_level and self.clock() > self.session_deadline:
            self.session_level = 0
        return self.session_level

    def _refresh(self) -> None:
        if self._level():
            self.session_deadline = self.clock() + self.session_seconds

    # -- requests -----------------------------------------------------------------------------

    def _execute(self, request: bytes) -> bytes:
        code = request[1]
        if code == Code.TEST:
            self._refresh()
            return bytes((p.Status.OK,))
        if code == Code.OPEN:
            return self._open(request[2], request[3:9])
        if code == Code.CLOSE:
            self.session_level = 0
            return bytes((p.Status.OK,))
        if code == Code.READ_PARAM and request[2] == Param.SERIAL:
            self._refresh()
            return p.encode_serial(self.serial)
        level = self._level()
        if not level:
            return bytes((p.Status.CHANNEL_CLOSED,))
        self._refresh()
        if code == Code.WRITE:
            return self._write(request, level)
        if self.fault == "status2":
            return bytes((p.Status.INTERNAL_ERROR,))
        if code == Code.READ_PARAM:
            return self._read_param(request)
        if code == Code.READ_ENERGY:
            return self._read_energy(request[2] >> 4, request[2] & 0x0F, request[3])
        if code == Code.READ_TIME and request[2] == 0 and len(request) == 5:
            return self._clock()
        return bytes((p.Status.BAD_REQUEST,))

    def _open(self, level: int, password: bytes) -> bytes:
        if level not in (1, 2) or password != self.passwords[level]:
            return bytes((p.Status.BAD_REQUEST,))
        self.session_level = level
        self.session_deadline = self.clock() + self.session_seconds
        return bytes((p.Status.OK,))

    def _write(self, request: bytes, level: int) -> bytes:
        param = request[2]
        if param == 0x05:  # network address: level 1 is enough; the reply comes from the new one
            new = request[3]
            if not 1 <= new <= p.MAX_ADDRESS:
                return bytes((p.Status.BAD_REQUEST,))
            self.address = new
            return bytes((p.Status.OK,))
        if level < 2:
            return bytes((p.Status.ACCESS_DENIED,))
        if param == 0x1F:  # password: 03 1F <level> <old 6> <new 6>
            which, old, new = request[3], request[4:10], request[10:16]
            if which not in (1, 2) or old != self.passwords[which]:
                return bytes((p.Status.BAD_REQUEST,))
            self.passwords[which] = bytes(new)
            return bytes((p.Status.OK,))
        return bytes((p.Status.BAD_REQUEST,))

    def _clock(self) -> bytes:
        now = dt.datetime.fromtimestamp(self.wall())
        return bytes((_bcd(now.second), _bcd(now.minute), _bcd(now.hour),
                      _bcd(now.isoweekday()), _bcd(now.day), _bcd(now.month),
                      _bcd(now.year % 100), 1))

    def _read_param(self, request: bytes) -> bytes:
        param = request[2]
        extra = request[3] if len(request) == 6 else None
        if param == Param.PASSPORT:
            if extra not in (None, 0):
                return bytes((p.Status.BAD_REQUEST,))
            base = p.encode_serial(self.serial) + FIRMWARE[self.model.phases] + self.variant
            return base if extra is None else base + VARIANT_TAIL[:2] + b"\x00\x00" + \
                VARIANT_TAIL[2:4] + b"\x00\x00"
        if param == Param.RATIOS:  # Kн = 1 (no voltage transformers), Kт, big-endian
            return bytes((0, 1)) + self.current_ratio.to_bytes(2, "big")
        if param == Param.FIRMWARE:
            return FIRMWARE[self.model.phases]
        if param == Param.ADDRESS:
            return bytes((0, self.address))
        if param == Param.VARIANT:
            if extra not in (None, 0):
                return bytes((p.Status.BAD_REQUEST,))
            return self.variant if extra is None else self.variant + VARIANT_TAIL
        if param == Param.SINGLE and extra is not None:
            return self._single(extra)
        if param == Param.GROUP and extra is not None:
            return self._group(extra)
        return bytes((p.Status.BAD_REQUEST,))

    # -- instantaneous values -----------------------------------------------------------------

    def _values(self, quantity: Bwri) -> tuple[list[int | None], list[tuple[bool, bool]]]:
        """Raw scaled integers of one quantity (Σ first where one exists) and each value's
        direction bits (active reverse, reactive reverse)."""
        ph = self.physics
        ph.update()
        fwd = (False, False)
        if quantity is Bwri.POWER_P:
            values = [sum(ph.power_p()), *ph.power_p()]
            return [round(v * 100) for v in values], [fwd] * len(values)
        if quantity is Bwri.POWER_Q:
            values = [sum(ph.power_q()), *ph.power_q()]
            return [round(v * 100) for v in values], [fwd] * len(values)
        if quantity is Bwri.POWER_S:
            values = [math.hypot(sum(ph.power_p()), sum(ph.power_q())), *ph.power_s()]
            return [round(v * 100) for v in values], [fwd] * len(values)
        if quantity is Bwri.POWER_FACTOR:
            values = [ph.total_pf(), *ph.pf]
            return [round(v * 1000) for v in values], [fwd] * len(values)
        if quantity is Bwri.VOLTAGE:
            return [round(u * 100) for u in ph.u], [fwd] * ph.phases
        if quantity is Bwri.CURRENT:
            return [round(i * 1000) for i in ph.i], [fwd] * ph.phases
        if quantity is Bwri.FREQUENCY:
            return [round(ph.f * 100)], [fwd]
        if quantity is Bwri.ANGLE:
            return [round(a * 100) for a in ph.angles], [fwd] * 3
        if quantity is Bwri.LINE_VOLTAGE:
            u = ph.u
            pairs = ((0, 1), (1, 2), (0, 2))
            values = [math.sqrt(u[a] ** 2 + u[b] ** 2 + u[a] * u[b]) for a, b in pairs]
            return [round(v * 100) for v in values], [fwd] * 3
        raise ValueError(quantity)

    def _reactive_blocked(self, quantity: Bwri | None) -> bool:
        return not self.reactive and quantity is Bwri.POWER_Q

    def _single(self, bwri: int) -> bytes:
        quantity = p.quantity_of(bwri)
        if quantity is None or quantity is Bwri.FAST_ALL or self._reactive_blocked(quantity):
            return bytes((p.Status.BAD_REQUEST,))
        phases = self.model.phases
        index = bwri & 0x03
        if quantity is Bwri.TEMPERATURE:
            self.physics.update()
            return round(self.physics.temperature).to_bytes(2, "big", signed=True)
        if quantity is Bwri.THD:
            if not 1 <= index <= phases:
                return bytes((p.Status.BAD_REQUEST,))
            return round(self.physics.thd[index - 1] * 100).to_bytes(2, "little")
        if phases == 1 and quantity in (Bwri.ANGLE, Bwri.LINE_VOLTAGE):
            return bytes((p.Status.BAD_REQUEST,))
        values, dirs = self._values(quantity)
        has_total = quantity in (Bwri.POWER_P, Bwri.POWER_Q, Bwri.POWER_S, Bwri.POWER_FACTOR)
        if quantity is Bwri.FREQUENCY:
            pick = 0
        elif quantity is Bwri.CURRENT and phases == 1:
            # 0: phase/neutral imbalance, 1: phase wire, 2: neutral wire
            if index > 2:
                return bytes((p.Status.BAD_REQUEST,))
            raw_i = values[0] or 0
            imbalance = round(raw_i * 0.002)
            return p.enc3((imbalance, raw_i, raw_i - imbalance)[index])
        elif has_total:
            if index > phases:
                return bytes((p.Status.BAD_REQUEST,))
            pick = 0 if phases == 1 else index
        else:
            if not 1 <= index <= phases:
                return bytes((p.Status.BAD_REQUEST,))
            pick = index - 1
        value = values[pick]
        if value is None:
            return p.NO_VALUE_3
        active, reactive = dirs[pick]
        return p.enc3(value, active_reverse=active, reactive_reverse=reactive)

    def _group_bytes(self, quantity: Bwri) -> bytes:
        if quantity is Bwri.TEMPERATURE:
            self.physics.update()
            return round(self.physics.temperature).to_bytes(2, "big", signed=True)
        if quantity is Bwri.THD:
            self.physics.update()
            return b"".join(round(v * 100).to_bytes(2, "little") for v in self.physics.thd)
        if not self.reactive and quantity is Bwri.POWER_Q:
            return p.NO_VALUE_3 * 4
        values, dirs = self._values(quantity)
        return b"".join(
            p.NO_VALUE_3 if v is None else p.enc3(v, active_reverse=a, reactive_reverse=r)
            for v, (a, r) in zip(values, dirs, strict=True))

    def _group(self, bwri: int) -> bytes:
        quantity = p.quantity_of(bwri)
        if not self.model.three_phase or quantity is None or self._reactive_blocked(quantity):
            return bytes((p.Status.BAD_REQUEST,))
        if quantity is Bwri.FAST_ALL:
            if not self.fast_read or bwri & 0x0F:
                return bytes((p.Status.BAD_REQUEST,))
            order = (Bwri.POWER_P, Bwri.POWER_Q, Bwri.POWER_S, Bwri.VOLTAGE, Bwri.ANGLE,
                     Bwri.CURRENT, Bwri.POWER_FACTOR, Bwri.FREQUENCY)
            return b"".join(self._group_bytes(q) for q in order)
        return self._group_bytes(quantity)

    # -- energy -------------------------------------------------------------------------------

    def _read_energy(self, array: int, month: int, tariff: int) -> bytes:
        if tariff > 4:
            return bytes((p.Status.BAD_REQUEST,))
        self.physics.update()
        if array == 6:
            total = self.physics.energy_wh(tariff)[0]
            if not self.model.three_phase:
                return bytes((p.Status.BAD_REQUEST,))
            shares = self.physics.phase_share
            parts = [int(total * s) for s in shares]
            return b"".join(p.enc4(v) for v in parts)
        values = self._energy_array(array, month, tariff)
        if values is None:
            return bytes((p.Status.BAD_REQUEST,))
        return b"".join(p.enc4(v) for v in self._mask(values))

    def _mask(self, values: list[int]) -> list[int | None]:
        """What this meter type does not count reads ``FFFFFFFF``."""
        out: list[int | None] = list(values)
        if not self.two_directions:
            out[1] = None
        if not self.reactive:
            out[2] = out[3] = None
        return out

    def _energy_array(self, array: int, month: int, tariff: int) -> list[int] | None:
        ph = self.physics
        now = self.wall()
        today = dt.datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0,
                                                       microsecond=0)
        year_start = today.replace(month=1, day=1)
        prev_year_start = year_start.replace(year=year_start.year - 1)
        day_start = today
        prev_day_start = today - dt.timedelta(days=1)

        def at(moment: dt.datetime | float) -> list[int]:
            ts = moment if isinstance(moment, float) else moment.timestamp()
            return ph.energy_at(tariff, min(ts, now))

        def between(a: dt.datetime, b: dt.datetime | float) -> list[int]:
            end, start = at(b), at(a)
            return [max(0, x - y) for x, y in zip(end, start, strict=True)]

        def month_span(m: int) -> tuple[dt.datetime, dt.datetime]:
            year = today.year if m <= today.month else today.year - 1
            start = dt.datetime(year, m, 1)
            end = dt.datetime(year + (m == 12), m % 12 + 1, 1)
            return start, end

        if array == 0:
            return ph.energy_wh(tariff)
        if array == 1:
            return between(year_start, now)
        if array == 2:
            return between(prev_year_start, year_start)
        if array in (3, 0xB):
            if not 1 <= month <= 12:
                return None
            start, end = month_span(month)
            return between(start, end) if array == 3 else at(start)
        if array == 4:
            return between(day_start, now)
        if array == 5:
            return between(prev_day_start, day_start)
        starts = {0x9: year_start, 0xA: prev_year_start, 0xC: day_start, 0xD: prev_day_start}
        if array in starts:
            return at(starts[array])
        return None


MANUAL_METERS = (
    MeterSpec("32297700-17", "230", 1),
    MeterSpec("43099131-20", "230", 131),
    MeterSpec("47457598-22", "230", 98),
)
"""The manual's test bench (§2.2): three Mercury 230 on one port, at their factory addresses."""


@dataclass
class MeterFactory:
    """Makes the meters of a simulation when no explicit list is given: first the manual's three
    Mercury 230 (so ``--meters 3`` is its test bench), then meters of the other models in turn,
    each with a seeded serial number at its factory address (the next free one if taken)."""

    seed: int = 0
    models: tuple[str, ...] = ("236", "204", "231", "203.2TD", "234", "208", "238", "230")
    used: set[int] = field(default_factory=set)

    def generate(self, count: int) -> list[MeterSpec]:
        rng = random.Random(f"mercury-specs-{self.seed}")
        specs = [dataclasses.replace(spec) for spec in MANUAL_METERS[:count]]
        serials = {p.serial_digits(spec.serial_number) for spec in specs}
        self.used.update(spec.address for spec in specs)
        while len(specs) < count:
            digits = f"{rng.randint(10_000_000, 99_999_999)}"
            if digits in serials:
                continue
            serials.add(digits)
            model = self.models[(len(specs) - len(MANUAL_METERS)) % len(self.models)]
            address = self.free_address(p.factory_address(digits))
            year = rng.randint(15, 24)
            specs.append(MeterSpec(f"{digits}-{year:02d}", model, address))
        return specs

    def free_address(self, wanted: int) -> int:
        address = wanted
        while address in self.used:
            address = address % p.MAX_ADDRESS + 1
            if address == wanted:
                raise ValueError(f"more than {p.MAX_ADDRESS} meters on one bus")
        self.used.add(address)
        return address
