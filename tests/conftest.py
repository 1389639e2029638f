"""Shared fixtures: real InfluxDB 1.x and VictoriaMetrics servers, plugin registries."""

from __future__ import annotations

import itertools
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "support"))

import plugins_for_tests
from servers import InfluxDB1, VictoriaMetrics, servers_available

from webbo.agent.core.plugins import PluginRegistry, default_registry

_db_names = itertools.count()

# Nothing a test runs (in-process or as a subprocess) may write into the real ~/.local/state.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="webbo-test-state-")


def _require(name: str) -> None:
    if not servers_available()[name]:
        pytest.fail(f"{name} is not installed; run the README's test command (it installs it)")


@pytest.fixture(scope="session")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    _require("influxd")
    server = InfluxDB1(tmp_path_factory.mktemp("influxd")).start()
    yield server
    server.stop()


@pytest.fixture
def influx_db(influx: InfluxDB1) -> Iterator[tuple[InfluxDB1, str]]:
    """A fresh database name on the shared server (created by the agent or the test)."""
    name = f"t{os.getpid()}_{next(_db_names)}"
    yield influx, name
    if influx.running:
        influx.drop_database(name)


@pytest.fixture(scope="session")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    _require("victoria-metrics")
    server = VictoriaMetrics(tmp_path_factory.mktemp("victoria")).start()
    yield server
    server.stop()


@pytest.fixture
def registry() -> PluginRegistry:
    """Every installed plugin plus the in-process test plugins."""
    plugins_for_tests.MemoryOutput.received.clear()
    plugins_for_tests.MemoryOutput.instances.clear()
    plugins_for_tests.CounterInput.sequences.clear()
    return default_registry([("testplugins", plugins_for_tests)])
