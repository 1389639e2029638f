"""The WebboMonitor plugin contract: what a plugin can add to the agent.

A plugin is a Python module (or any object) with functions marked ``@hookimpl``. It reaches the
agent through the entry-point group ``webbo``; the built-in plugins (and the agent's own rooms:
the miner fleet, alerts, power control) are listed in that group of our own pyproject.toml and
load exactly like a third-party one::

    [project.entry-points.webbo]
    my_plugin = "my_package.webbo_plugin"

pluggy has no async, so hooks only *describe* things: they hand over types and factories. The
async work happens in the objects those factories return. Every hook is called once, when the
plugin is registered, never once per device or per poll.

What a plugin can add:

* **inputs** (:func:`webbo_inputs`): a name (the ``[[inputs.NAME]]`` table), a config Struct and a
  factory. A *gather* input is called on its interval and adds metrics. A *miner driver* (an
  input of kind ``"miner"``) is one make's protocol: the fleet asks it to identify, poll and
  control the devices of the ``[network]`` ranges (:class:`webbo.agent.plugin.MinerDriver`).
* **outputs** (:func:`webbo_outputs`): a name (``[[outputs.NAME]]``), a config Struct and a
  factory of an object with ``connect``, ``write(batch)`` and ``close``.
* **config sections** (:func:`webbo_config_sections`): a top-level table of webbo.toml
  (``[alerts]``) and the Struct that checks it.
* **services** (:func:`webbo_services`): long-lived objects beside the inputs, one per agent (the
  meters' serial backend behind ``/api/serial/*``, the miner fleet).
* **simulators** (:func:`webbo_simulators`): simulated devices for ``webbo simulate`` and tests.

Names are unique per kind. The built-in plugins register first; a third-party plugin that
provides a name a built-in one already has *replaces* it (logged, and shown by ``webbo
plugins``), so a plugin can take over, say, the ``cgminer`` driver. Two third-party plugins
providing one name is an error for the one registered later (they register in the order of
their entry-point names).

The types named here live in :mod:`webbo.agent.core.contract`.
"""

from __future__ import annotations

import pluggy

from webbo.agent.core.contract import (
    InputType,
    OutputType,
    SectionType,
    ServiceType,
    SimulatorType,
)

PROJECT = "webbo"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def webbo_inputs() -> list[InputType]:
    """Input types this plugin provides, one per ``[[inputs.NAME]]`` name (miner drivers are
    input types of kind ``"miner"``)."""


@hookspec
def webbo_outputs() -> list[OutputType]:
    """Output types this plugin provides, one per ``[[outputs.NAME]]`` name."""


@hookspec
def webbo_config_sections() -> list[SectionType]:
    """Top-level sections of webbo.toml this plugin adds (``[alerts]``, ``[power]``, ...)."""


@hookspec
def webbo_services() -> list[ServiceType]:
    """Long-lived services this plugin runs beside the inputs, made once per agent, in
    registration order (a service may find one registered before it with
    ``context.shared.find``)."""


@hookspec
def webbo_simulators() -> list[SimulatorType]:
    """Simulated devices this plugin can run (``webbo simulate``, the demo and the tests)."""
