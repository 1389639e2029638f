"""Output ``stdout``: every metric as one line of InfluxDB line protocol on standard output.

Useful to see what the agent produces (``webbo run`` with only this output) and to pipe the
agent into another tool.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from webbo.agent.plugin import Metric, OutputConfig, OutputType, PluginContext, hookimpl, to_lines


class StdoutConfig(OutputConfig):
    """``[[outputs.stdout]]``."""

    uint_support: bool = True
    """Write unsigned fields with the ``u`` suffix (as InfluxDB 2.x reads them)."""


class StdoutOutput:
    def __init__(self, config: StdoutConfig, context: PluginContext) -> None:
        self.config = config

    async def connect(self) -> None:
        return None

    async def write(self, metrics: Sequence[Metric]) -> None:
        body = to_lines(metrics, self.config.uint_support)
        if body:
            out = sys.stdout
            out.write(body.decode())
            out.write("\n")
            out.flush()

    async def close(self) -> None:
        return None


@hookimpl
def webbo_outputs() -> list[OutputType]:
    return [OutputType("stdout", StdoutConfig, StdoutOutput, "line protocol on standard output")]
