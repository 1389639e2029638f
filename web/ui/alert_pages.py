"""The "Оповещения" page: active alerts (silenced ones too, marked), silences (create, end),
the history, the rules and the channels (add, change, delete, test), and the header's badge.

Rules and channels are tables of webbo.toml: they are changed through the one config-edit use
case (a dry run first, so an invalid rule is refused with its key path and nothing changes),
as a task in the audit log. Silences go to their own file through the alert engine.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from litestar import Request, Response, get, post

from webbo.agent.alerts.conditions import CONDITIONS
from webbo.agent.alerts.config import ACTIONS, SEVERITIES, AlertsSection
from webbo.agent.alerts.engine import AlertEngine
from webbo.agent.alerts.silences import SilenceError
from webbo.agent.core.config import ConfigError, Duration
from webbo.agent.core.config_edit import put_table, remove_tables
from webbo.agent.core.tasks import TaskStatus
from webbo.web.ui.common import agent_of, principal, redirect
from webbo.web.ui.i18n import translator
from webbo.web.ui.render import ctx, env, html

__all__ = ["alert_handlers", "firing_count"]

DURATIONS = ("1h", "2h", "4h", "8h", "24h", "3d")
RULE_FIELDS = ("name", "condition", "threshold", "hysteresis", "low", "high", "for",
               "severity", "groups", "ranges", "macs", "meters", "message", "channels",
               "action", "mode", "action_interval", "enabled")


def engine_of(request: Request[Any, Any, Any]) -> AlertEngine | None:
    return agent_of(request).service(AlertEngine)


def firing_count(request: Request[Any, Any, Any]) -> int:
    """Firing alerts that nothing silences: the header's badge."""
    engine = engine_of(request)
    if engine is None:
        return 0
    counts = engine.counts()
    return counts["firing"] - counts["silenced"]


def _section(request: Request[Any, Any, Any]) -> AlertsSection:  # the config in force
    return agent_of(request).config.section(AlertsSection)


def _values(request: Request[Any, Any, Any], **extra: Any) -> dict[str, Any]:
    engine = engine_of(request)
    section = _section(request)
    network = agent_of(request).config.network
    now = time.time()
    silences = engine.silences.all() if engine is not None else []
    values: dict[str, Any] = {
        "engine": engine is not None,
        "alerts": engine.alerts() if engine is not None else [],
        "counts": engine.counts() if engine is not None else {},
        "history": engine.recent(100) if engine is not None else [],
        "silences": sorted(silences, key=lambda s: (not s.active(now), -s.ends_at)),
        "silence_by_id": {s.id: s for s in silences},
        "rules": section.rules, "channels": engine.notifier.status() if engine else [],
        "units": {r.name: CONDITIONS[r.condition].unit for r in section.rules
                  if r.condition in CONDITIONS},
        "section": section, "conditions": CONDITIONS, "severities": SEVERITIES,
        "actions": tuple(ACTIONS), "durations": DURATIONS, "network": network,
        "message": "", "message_kind": "ok", "rule_form": {}, "channel_form": {},
        "open_rule": False, "open_channel": False,
        "er": next((r for r in section.rules if r.name == request.query_params.get("edit")),
                   None),
    }
    values.update(extra)
    return values


@get("/alerts", sync_to_thread=False, include_in_schema=False)
def alerts_page(request: Request[Any, Any, Any]) -> Response[str]:
    _ = translator(ctx(request)["lang"])
    q = request.query_params
    message = ""
    if q.get("silenced"):
        message = _("al.silenced_ok")
    elif q.get("unsilenced"):
        message = _("al.unsilenced_ok")
    elif q.get("saved"):
        message = _("al.saved_ok")
    elif q.get("tested"):
        message = _("al.test_ok", name=q.get("tested"))
    return html(request, "alerts.html", active="alerts", **_values(request, message=message))


@get("/ui/alerts/live", sync_to_thread=False, include_in_schema=False)
def alerts_live(request: Request[Any, Any, Any]) -> Response[str]:
    return html(request, "_alerts_live.html", **_values(request))


@get("/ui/alerts/badge", sync_to_thread=False, include_in_schema=False)
def alerts_badge(request: Request[Any, Any, Any]) -> Response[str]:
    return html(request, "_alerts_badge.html")


def _list(text: str) -> list[str]:
    return [item.strip() for item in text.replace("\n", ",").split(",") if item.strip()]


async def _form(request: Request[Any, Any, Any]) -> dict[str, Any]:
    posted = await request.form()
    out: dict[str, Any] = {}
    for key in posted:
        values = posted.getall(key) if hasattr(posted, "getall") else [posted.get(key)]
        out[key] = [str(v) for v in values] if len(values) > 1 else str(values[0]).strip()
    return out


def _many(form: Mapping[str, Any], key: str) -> list[str]:
    value = form.get(key, [])
    return [v for v in (value if isinstance(value, list) else [value]) if v]


@post("/alerts/silence", include_in_schema=False, status_code=303)
async def silence_create(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await _form(request)
    engine = engine_of(request)
    _ = translator(ctx(request)["lang"])
    if engine is None:
        return html(request, "alerts.html", 501, active="alerts", **_values(request))
    try:
        until = time.time() + Duration.parse(form.get("duration") or "2h")
        engine.silence(until=until, who=principal(request).label,
                       comment=str(form.get("comment", "")), rules=_many(form, "rules"),
                       groups=_many(form, "groups"), ranges=_many(form, "ranges"),
                       macs=_list(str(form.get("macs", ""))),
                       meters=_list(str(form.get("meters", ""))))
    except (SilenceError, ValueError) as exc:
        return html(request, "alerts.html", 422, active="alerts",
                    **_values(request, message=f"{_('common.error')}: {exc}",
                              message_kind="error"))
    agent_of(request).tasks.audit.write({"event": "silence", "who": principal(request).label,
                                         "via": "web UI", **{k: form.get(k) for k in (
                                             "rules", "groups", "ranges", "macs", "meters",
                                             "duration", "comment") if form.get(k)}})
    return redirect("/alerts?silenced=1#silences")


@post("/alerts/silences/end", include_in_schema=False, status_code=303)
async def silence_end(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await _form(request)
    engine = engine_of(request)
    if engine is not None:
        engine.unsilence(str(form.get("id", "")))
        agent_of(request).tasks.audit.write({"event": "unsilence", "id": form.get("id"),
                                             "who": principal(request).label, "via": "web UI"})
    return redirect("/alerts?unsilenced=1#silences")


def rule_from_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """A ``[[alerts.rules]]`` table from the rule form (empty fields left out)."""
    table: dict[str, Any] = {"name": form.get("name", ""), "condition": form.get("condition", "")}
    for key in ("threshold", "hysteresis", "low", "high"):
        text = str(form.get(key, "")).replace(",", ".").strip()
        if text:
            try:
                table[key] = float(text)
            except ValueError:
                table[key] = text  # the config check names it
    for key in ("for", "severity", "message", "action", "mode", "action_interval"):
        if form.get(key):
            table[key] = form[key]
    for key in ("groups", "ranges", "channels"):
        if _many(form, key):
            table[key] = _many(form, key)
    for key in ("macs", "meters"):
        if _list(str(form.get(key, ""))):
            table[key] = _list(str(form.get(key, "")))
    table["enabled"] = bool(form.get("enabled"))
    return table


async def _edit(request: Request[Any, Any, Any], method: str, mutate: Any,
                details: dict[str, Any]) -> str:
    """Check, then apply a config edit as an audited task; "" or the error."""
    agent = agent_of(request)
    try:
        agent.edits.check(mutate)
    except ConfigError as exc:
        return str(exc)

    async def apply() -> bool:
        await agent.edits.apply(mutate)
        return True

    task = agent.tasks.start_job(method, principal(request).label, apply,
                                 {**details, "via": "web UI"})
    assert task.handle is not None
    await task.handle
    return "" if task.status == TaskStatus.SUCCESS else str(task.result)


@post("/alerts/rules/save", include_in_schema=False, status_code=303)
async def rule_save(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await _form(request)
    table = rule_from_form(form)
    original = str(form.get("original", "")) or str(table["name"])

    def mutate(doc: Any) -> None:
        put_table(doc, "alerts.rules", lambda t: t.get("name") == original, table)

    error = await _edit(request, "alerts/rules/set", mutate, {"rule": table})
    if error:
        _ = translator(ctx(request)["lang"])
        return html(request, "alerts.html", 422, active="alerts", **_values(
            request, message=f"{_('al.rule_refused')} {error}", message_kind="error",
            rule_form={**form, "groups": _many(form, "groups"),
                       "ranges": _many(form, "ranges"), "channels": _many(form, "channels")},
            open_rule=True))
    return redirect("/alerts?saved=1#rules")


async def _delete_named(request: Request[Any, Any, Any], tables: str, what: str
                       ) -> Response[Any]:
    """Remove the ``[[alerts.<tables>]]`` entry the form names (a rule or a channel)."""
    form = await _form(request)
    name = str(form.get("name", ""))

    def mutate(doc: Any) -> None:
        remove_tables(doc, f"alerts.{tables}", lambda t: t.get("name") == name)

    error = await _edit(request, f"alerts/{tables}/delete", mutate, {what: name})
    if error:
        return html(request, "alerts.html", 422, active="alerts",
                    **_values(request, message=error, message_kind="error"))
    return redirect(f"/alerts?saved=1#{tables}")


@post("/alerts/rules/delete", include_in_schema=False, status_code=303)
async def rule_delete(request: Request[Any, Any, Any]) -> Response[Any]:
    return await _delete_named(request, "rules", "rule")


@post("/alerts/channels/save", include_in_schema=False, status_code=303)
async def channel_save(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await _form(request)
    name = str(form.get("name", ""))
    table = {"name": name, "url": str(form.get("url", "")),
             "min_severity": str(form.get("min_severity") or "info"),
             "enabled": bool(form.get("enabled"))}
    original = str(form.get("original", "")) or name

    def mutate(doc: Any) -> None:
        if not table["url"]:  # kept as written in the file (a ${ENV} placeholder stays)
            for item in doc.get("alerts", {}).get("channels", []) or []:
                if item.get("name") == original:
                    table["url"] = str(item.get("url", ""))
        put_table(doc, "alerts.channels", lambda t: t.get("name") == original, table)

    error = await _edit(request, "alerts/channels/set", mutate,
                        {"channel": {**table, "url": "(hidden)"}})
    if error:
        _ = translator(ctx(request)["lang"])
        return html(request, "alerts.html", 422, active="alerts", **_values(
            request, message=f"{_('al.channel_refused')} {error}", message_kind="error",
            channel_form=form, open_channel=True))
    return redirect("/alerts?saved=1#channels")


@post("/alerts/channels/delete", include_in_schema=False, status_code=303)
async def channel_delete(request: Request[Any, Any, Any]) -> Response[Any]:
    return await _delete_named(request, "channels", "channel")


@post("/alerts/channels/test", include_in_schema=False, status_code=303)
async def channel_test(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await _form(request)
    name = str(form.get("name", ""))
    engine = engine_of(request)
    _ = translator(ctx(request)["lang"])
    if engine is None:
        return html(request, "alerts.html", 501, active="alerts", **_values(request))
    ok, error = await engine.test_channel(name)
    if not ok:
        return html(request, "alerts.html", 502, active="alerts", **_values(
            request, message=_("al.test_failed", name=name, error=error),
            message_kind="error"))
    return redirect(f"/alerts?tested={name}#channels")


def _since(ts: float | None) -> str:
    return time.strftime("%d.%m %H:%M", time.localtime(ts)) if ts else "—"


env.globals.update(alert_since=_since)

alert_handlers = [alerts_page, alerts_live, alerts_badge, silence_create, silence_end,
                  rule_save, rule_delete, channel_save, channel_delete, channel_test]
