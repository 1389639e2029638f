"""Power control as the agent loads it: the ``[power]`` section and the ``power`` service
(:class:`~webbo.agent.power.controller.PowerController`), registered like any plugin's."""

from __future__ import annotations

from webbo.agent.core.config import SectionType
from webbo.agent.core.contract import PluginContext, ServiceType
from webbo.agent.core.hookspecs import hookimpl
from webbo.agent.power.config import PowerSection, check_power
from webbo.agent.power.controller import PowerController


def _controller(context: PluginContext) -> PowerController:
    return PowerController(context)


@hookimpl
def webbo_config_sections() -> list[SectionType]:
    return [SectionType("power", PowerSection, check_power,
                        "power budgets per feed and the curtailment controller")]


@hookimpl
def webbo_services() -> list[ServiceType]:
    return [ServiceType("power", _controller,
                        "keeps each feed inside its power budget, closing the loop on its "
                        "meters")]
