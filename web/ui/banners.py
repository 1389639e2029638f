"""What every page says at its top when something is wrong with the agent as a whole (nothing
swept although ranges are set; a config change that was refused; an output that cannot write
or drops metrics), so it is never silent."""

from __future__ import annotations

import time
from typing import Any

from webbo.agent.core.agent import Agent
from webbo.web import services
from webbo.web.ui.i18n import translator

__all__ = ["banners", "output_troubles"]


def banners(agent: Agent, lang: str) -> list[str]:
    _ = translator(lang)
    found = []
    fleet = services.fleet(agent)
    if fleet is not None and fleet.problem:
        found.append(_("banner.no_driver", path=agent.config.path or "webbo.toml"))
    error = agent.reload_state.last_error
    if error:
        found.append(_("banner.reload_error", error=error.splitlines()[0][:300]))
    found.extend(_output_text(status, lang) for status in output_troubles(agent))
    return found


def output_troubles(agent: Agent) -> list[dict[str, Any]]:
    """The status of each output that drops metrics or cannot write."""
    found = []
    for runner in getattr(agent, "outputs", []):
        status = runner.status()
        if status.get("dropping") or (status.get("failing") and status.get("buffer_size")):
            found.append(status)
    return found


def _output_text(status: dict[str, Any], lang: str) -> str:
    _ = translator(lang)
    if status.get("dropping"):
        since = time.strftime("%H:%M:%S", time.localtime(status.get("dropping_since") or 0))
        parts = [_("outputs.dropping", output=status["label"], since=since),
                 _("outputs.dropped", count=_number(status.get("dropped_in_overflow", 0), lang))]
    else:
        parts = [_("outputs.failing", output=status["label"],
                   error=str(status.get("last_error", ""))[:300])]
    parts.append(_("outputs.waiting", count=_number(status.get("buffer_size", 0), lang),
                   age=_age(float(status.get("buffer_oldest_s") or 0), lang)))
    parts.append(_("outputs.where_disk" if status.get("buffer") == "disk"
                   else "outputs.where_memory"))
    return " ".join(parts)


def _number(value: Any, lang: str) -> str:
    text = f"{int(value or 0):,}"
    return text.replace(",", "\u202f") if lang == "ru" else text


def _age(seconds: float, lang: str) -> str:
    minute, hour, second = ("мин", "ч", "с") if lang == "ru" else ("min", "h", "s")
    total = int(seconds)
    if total >= 3600:
        return f"{total // 3600} {hour} {total % 3600 // 60} {minute}"
    if total >= 60:
        return f"{total // 60} {minute}"
    return f"{total} {second}"
