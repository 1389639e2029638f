"""What every page says at its top when something is wrong with the agent as a whole (nothing
swept although ranges are set; a config change that was refused), so it is never silent."""

from __future__ import annotations

from webbo.agent.core.agent import Agent
from webbo.web import services
from webbo.web.ui.i18n import translator

__all__ = ["banners"]


def banners(agent: Agent, lang: str) -> list[str]:
    _ = translator(lang)
    found = []
    fleet = services.fleet(agent)
    if fleet is not None and fleet.problem:
        found.append(_("banner.no_driver", path=agent.config.path or "webbo.toml"))
    error = agent.reload_state.last_error
    if error:
        found.append(_("banner.reload_error", error=error.splitlines()[0][:300]))
    return found
