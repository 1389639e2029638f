"""The ``mercury`` gather input: one instance per ``[[inputs.mercury]]`` table, i.e. per meter.

The instance does not talk to the meter itself: ``start`` attaches the meter to the bus task of
its port (:mod:`.bus`), which reads it every ``interval``; ``gather`` hands over the readings made
since the previous gather (normally one) as ``meter`` points, and a failure point (``online =
false`` with the reason) for each failed attempt. The very first gather waits for the first
attempt, so ``webbo test`` and ``webbo once`` see a reading.
"""

from __future__ import annotations

from typing import Any

from webbo.agent.plugin import Accumulator, FieldValue, PluginContext
from webbo.plugins.inputs.mercury.bus import MeterBuses, Slot
from webbo.plugins.inputs.mercury.config import MercuryConfig
from webbo.plugins.inputs.mercury.link import wait_event

FIRST_READING_WAIT = 30.0
"""Longest wait of the first gather for the first attempt (a long reply timeout, a busy bus)."""


class MercuryInput:
    """One meter as an input of the agent."""

    def __init__(self, config: MercuryConfig, context: PluginContext) -> None:
        self.config = config
        self.context = context
        self.interval = float(config.interval or context.config.agent.interval)
        self.slot: Slot | None = None

    @property
    def buses(self) -> MeterBuses:
        return self.context.shared.get(MeterBuses)

    async def start(self) -> None:
        if self.slot is None:
            self.slot = await self.buses.attach(self.config, self.interval)

    async def stop(self) -> None:
        slot, self.slot = self.slot, None
        if slot is not None:
            await self.buses.detach(slot)

    async def gather(self, acc: Accumulator) -> None:
        await self.start()
        slot = self.slot
        assert slot is not None
        if not slot.attempted.is_set():
            await wait_event(slot.attempted, max(self.interval, FIRST_READING_WAIT))
        items = slot.drain()
        for point, error in items:
            acc.add(point)
            if error:
                acc.add_error(f"meter {self.config.serial_number}: {error}")
        if not items and slot.status == "error":
            # in back-off: keep saying it is offline, once per gather
            acc.add(slot.failure_point())

    def internal_fields(self) -> dict[str, FieldValue]:
        slot = self.slot
        if slot is None:
            return {}
        return {
            "readings": slot.readings,
            "readings_failed": slot.failed,
            "exchanges": slot.last_exchanges,
            "read_time_s": round(slot.last_read_time, 6),
        }

    def describe(self) -> dict[str, Any]:
        return self.slot.describe() if self.slot is not None else {}
