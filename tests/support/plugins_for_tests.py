"""Small plugins the core tests register in-process (the same ``pm.register`` path that entry
points take). They produce and consume real metrics; nothing about the agent is mocked."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Any, ClassVar

from webbo.agent.core.config import Duration, InputConfig, OutputConfig
from webbo.agent.core.contract import Accumulator, InputType, OutputType, PluginContext
from webbo.agent.core.hookspecs import hookimpl
from webbo.agent.core.metric import Metric


class CounterConfig(InputConfig):
    count: int = 10
    measurement: str = "counter"
    series: str = "a"


class CounterInput:
    """Each gather adds ``count`` metrics; field ``seq`` counts up across gathers, and each
    metric's timestamp is unique (base + seq), so what lands can be counted exactly."""

    sequences: ClassVar[dict[str, itertools.count]] = {}
    base_ns = 1_700_000_000_000_000_000

    def __init__(self, config: CounterConfig, context: PluginContext) -> None:
        self.config = config
        self.seq = self.sequences.setdefault(config.series, itertools.count())
        self.gathers = 0

    async def gather(self, acc: Accumulator) -> None:
        self.gathers += 1
        for _ in range(self.config.count):
            n = next(self.seq)
            acc.add(Metric(self.config.measurement, {"series": self.config.series},
                           {"seq": n, "value": n * 0.5}, self.base_ns + n * 1_000_000))


class BoomConfig(InputConfig):
    message: str = "boom"


class BoomInput:
    def __init__(self, config: BoomConfig, context: PluginContext) -> None:
        self.config = config

    async def gather(self, acc: Accumulator) -> None:
        raise RuntimeError(self.config.message)


class SlowConfig(InputConfig):
    seconds: Duration = Duration(1.0)


class SlowInput:
    started = 0

    def __init__(self, config: SlowConfig, context: PluginContext) -> None:
        self.config = config

    async def gather(self, acc: Accumulator) -> None:
        SlowInput.started += 1
        await asyncio.sleep(float(self.config.seconds))
        acc.add_fields("slow", {}, {"done": True})


class MemoryConfig(OutputConfig):
    name: str = "default"


class MemoryOutput:
    """Keeps what it is given, per ``name`` (class-level, so a test can look after a reload)."""

    received: ClassVar[dict[str, list[Metric]]] = {}
    instances: ClassVar[list[Any]] = []

    def __init__(self, config: MemoryConfig, context: PluginContext) -> None:
        self.config = config
        self.received.setdefault(config.name, [])
        self.instances.append(self)

    async def connect(self) -> None:
        return None

    async def write(self, metrics: Sequence[Metric]) -> None:
        self.received[self.config.name].extend(metrics)

    async def close(self) -> None:
        return None


@hookimpl
def webbo_inputs() -> list[InputType]:
    return [
        InputType("counter", CounterConfig, CounterInput, "counts"),
        InputType("boom", BoomConfig, BoomInput, "always fails"),
        InputType("slow", SlowConfig, SlowInput, "takes its time"),
    ]


@hookimpl
def webbo_outputs() -> list[OutputType]:
    return [OutputType("memory", MemoryConfig, MemoryOutput, "keeps metrics in memory")]
