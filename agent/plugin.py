"""Everything a plugin author needs, in one module: ``from webbo.agent import plugin``.

This module is the promise: what it names stays stable across releases; nothing else in
``webbo.agent`` is promised. Plugins (the built-in ones included) import this module and
:mod:`webbo.plugins.common` (shared protocol code), nothing else. docs/plugins.md shows a
complete plugin of each kind.

* the hook marker: :data:`hookimpl` (the hooks themselves: :mod:`webbo.agent.core.hookspecs`);
* inputs and outputs: :class:`InputType`, :class:`Input`, :class:`Accumulator`,
  :class:`OutputType`, :class:`Output`, :class:`Metric`, the config bases :class:`InputConfig`
  and :class:`OutputConfig`, :class:`Duration`, :class:`ConfigError`;
* miner drivers: :class:`MinerDriver`, :func:`miner_driver`, :class:`MinerInputConfig`,
  :class:`DriverContext`, the priority bands, :class:`Identity`, :class:`Reading` (with
  :class:`BoardReading`, :class:`PoolReading`, :class:`ErrorCode`), :class:`Device`,
  :class:`Probe`, :class:`Net`, :class:`Action`, :class:`WorkMode`, :class:`LedStatus`,
  :class:`MiningPool`, :func:`normalise_mac`;
* services and shared state: :class:`ServiceType`, :class:`PluginContext`, :class:`Shared`,
  :class:`SerialBackend`, :class:`SectionType`;
* device sockets: the shared :class:`Net` (bounded), :func:`http_request` (a lean HTTP/1.1
  client on it, :class:`HttpResponse`, :class:`HttpGarbled`), :func:`neighbour_mac` (this
  host's ARP table), :func:`ip_to_int`/:func:`int_to_ip`;
* config edits (a plugin that changes webbo.toml, as the meters' backend does):
  :class:`Mutation`, :func:`append_table`, :func:`remove_tables`, :func:`set_table_array`,
  applied with ``context.edits.apply``; :func:`validation_error` words a msgspec error the way
  the config loader does; :func:`write_atomically` for a plugin's own state files;
* metrics: :class:`Metric`, :data:`FieldValue`, :func:`now_ns`, :func:`to_lines` (line
  protocol, for outputs);
* simulators: :class:`SimulatorType`, :class:`SimOptions`, :class:`Simulation`;
* errors: :class:`DeviceError`, :class:`DeviceUnreachable`, :class:`DeviceTimeout`,
  :class:`OutcomeUnknownError`, :class:`NotSupportedError`, and the output write errors
  :class:`RetryableWriteError`, :class:`BatchTooLargeError`, :class:`PermanentWriteError`,
  with :func:`error_for_status` to classify an HTTP answer.
"""

from __future__ import annotations

from webbo.agent.core.config import (
    Config,
    ConfigError,
    Duration,
    InputConfig,
    OutputConfig,
    Section,
    SectionType,
    validation_error,
)
from webbo.agent.core.config_edit import append_table, remove_tables, set_table_array
from webbo.agent.core.contract import (
    Accumulator,
    ConfigEdits,
    Input,
    InputType,
    Mutation,
    Output,
    OutputType,
    PluginContext,
    SerialBackend,
    ServiceType,
    Shared,
    SimOptions,
    Simulation,
    SimulatorType,
)
from webbo.agent.core.errors import (
    BatchTooLargeError,
    DeviceError,
    OutcomeUnknownError,
    PermanentWriteError,
    RetryableWriteError,
    WriteError,
    error_for_status,
)
from webbo.agent.core.files import write_atomically
from webbo.agent.core.hookspecs import hookimpl
from webbo.agent.core.metric import FieldValue, Metric, now_ns, to_lines
from webbo.agent.fleet.driver import (
    PRIORITY_FIRMWARE,
    PRIORITY_GENERIC,
    PRIORITY_MAKE,
    Action,
    DriverContext,
    MinerDriver,
    MinerInputConfig,
    NotSupportedError,
    miner_driver,
)
from webbo.agent.fleet.http1 import HttpGarbled
from webbo.agent.fleet.http1 import Response as HttpResponse
from webbo.agent.fleet.http1 import request as http_request
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.model import (
    BoardReading,
    ErrorCode,
    Identity,
    LedStatus,
    MiningPool,
    PoolReading,
    Reading,
    WorkMode,
    normalise_mac,
)
from webbo.agent.fleet.net import (
    DeviceTimeout,
    DeviceUnreachable,
    Net,
    Probe,
    int_to_ip,
    ip_to_int,
    neighbour_mac,
)

__all__ = [
    "PRIORITY_FIRMWARE",
    "PRIORITY_GENERIC",
    "PRIORITY_MAKE",
    "Accumulator",
    "Action",
    "BatchTooLargeError",
    "BoardReading",
    "Config",
    "ConfigEdits",
    "ConfigError",
    "Device",
    "DeviceError",
    "DeviceTimeout",
    "DeviceUnreachable",
    "DriverContext",
    "Duration",
    "ErrorCode",
    "FieldValue",
    "HttpGarbled",
    "HttpResponse",
    "Identity",
    "Input",
    "InputConfig",
    "InputType",
    "LedStatus",
    "Metric",
    "MinerDriver",
    "MinerInputConfig",
    "MiningPool",
    "Mutation",
    "Net",
    "NotSupportedError",
    "OutcomeUnknownError",
    "Output",
    "OutputConfig",
    "OutputType",
    "PermanentWriteError",
    "PluginContext",
    "PoolReading",
    "Probe",
    "Reading",
    "RetryableWriteError",
    "Section",
    "SectionType",
    "SerialBackend",
    "ServiceType",
    "Shared",
    "SimOptions",
    "Simulation",
    "SimulatorType",
    "WorkMode",
    "WriteError",
    "append_table",
    "error_for_status",
    "hookimpl",
    "http_request",
    "int_to_ip",
    "ip_to_int",
    "miner_driver",
    "neighbour_mac",
    "normalise_mac",
    "now_ns",
    "remove_tables",
    "set_table_array",
    "to_lines",
    "validation_error",
    "write_atomically",
]
