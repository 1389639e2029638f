"""Alerts as the agent loads them: the ``[alerts]`` section and the ``alerts`` service
(:class:`~webbo.agent.alerts.engine.AlertEngine`), registered like any plugin's."""

from __future__ import annotations

from webbo.agent.alerts.config import AlertsSection, check_alerts
from webbo.agent.alerts.engine import AlertEngine
from webbo.agent.core.contract import SectionType, ServiceType
from webbo.agent.core.hookspecs import hookimpl


@hookimpl
def webbo_config_sections() -> list[SectionType]:
    return [SectionType("alerts", AlertsSection, check_alerts,
                        "alert rules, notification channels (apprise URLs), grouping")]


@hookimpl
def webbo_services() -> list[ServiceType]:
    return [ServiceType("alerts", AlertEngine,
                        "alert rules over miners and meters, notifications, silences")]
