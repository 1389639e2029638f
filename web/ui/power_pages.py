"""Энергия (power control) in the web UI: a page of feeds, a page per feed, and Settings ▸
Энергия (the feeds editor).

* ``/power``: each feed's budget and where it comes from, measured and estimated kW, its
  miners by state, the controller's state — live; a form to set a budget (optionally until a
  time) and a button back to the schedule.
* ``/power/feed?name=…``: the same for one feed plus the chart of the recent past (measured,
  estimated, budget), every budget source, the plan (this cycle's step and the ones after
  it), the last step, and every miner (a kW from the model table is marked as an estimate).
* ``/settings/power``: the mode (off, dry-run, on), the feeds (add, edit, delete), the
  excluded miners. Edits go through the agent's config editor: a feed naming a meter or a
  range that does not exist, overlapping feeds or a budget above the limit is refused with
  the reason, and the running control stays as it was.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException

from webbo.agent.core.config import ConfigError
from webbo.agent.power.budget import farm_zone
from webbo.agent.power.config import DAYS, PowerSection, configured_meters
from webbo.agent.power.controller import PowerController
from webbo.agent.power.edits import delete_feed, set_excluded, set_feed, set_mode
from webbo.web import services
from webbo.web.ui.common import agent_of, principal, redirect
from webbo.web.ui.i18n import translator
from webbo.web.ui.power_chart import power_svg
from webbo.web.ui.render import ctx, html

__all__ = ["power_handlers"]

LEVELS = ("full", "reduced", "low_power", "sleep")


def _controller(request: Request[Any, Any, Any]) -> PowerController | None:
    try:
        return services.power(agent_of(request))
    except services.ServiceMissing:
        return None


def _lang(request: Request[Any, Any, Any]) -> Any:
    return translator(ctx(request)["lang"])


def _feeds(controller: PowerController | None) -> list[dict[str, Any]]:
    if controller is None:
        return []
    return [controller.feed_status(f.name) for f in controller.section.feeds]


def _feed_values(request: Request[Any, Any, Any], name: str) -> dict[str, Any]:
    controller = _controller(request)
    if controller is None or controller.section.feed(name) is None:
        raise NotFoundException()
    _ = _lang(request)
    feed = controller.feed_status(name, miners=True, history=True)
    chart = power_svg(feed["history"], {"measured": _("power.chart.measured"),
                                        "estimated": _("power.chart.estimated"),
                                        "budget": _("power.chart.budget")},
                      _("power.chart.title", feed=name))
    miners = sorted(feed.get("miner_list", []),
                    key=lambda m: (LEVELS.index(m["level"]) if m["level"] in LEVELS else 9,
                                   m["ip"]))
    return {"feed": feed, "chart": chart, "miners": miners}


# -- the pages ------------------------------------------------------------------------------------


def _power_page(request: Request[Any, Any, Any], *, status: int = 200, message: str = "",
                kind: str = "ok", template: str = "power.html", **values: Any
                ) -> Response[str]:
    controller = _controller(request)
    return html(request, template, status, active="power", feeds=_feeds(controller),
                loaded=controller is not None, message=message, message_kind=kind, **values)


@get("/power", sync_to_thread=False, include_in_schema=False)
def power_page(request: Request[Any, Any, Any]) -> Response[str]:
    return _power_page(request, message=_done_message(request))


@get("/ui/power/cards", sync_to_thread=False, include_in_schema=False)
def power_cards(request: Request[Any, Any, Any]) -> Response[str]:
    return html(request, "_power_cards.html", feeds=_feeds(_controller(request)))


@get("/power/feed", sync_to_thread=False, include_in_schema=False)
def feed_page(request: Request[Any, Any, Any]) -> Response[str]:
    name = request.query_params.get("name", "")
    return html(request, "power_feed.html", active="power", message=_done_message(request),
                message_kind="ok", **_feed_values(request, name))


@get("/ui/power/feed", sync_to_thread=False, include_in_schema=False)
def feed_live(request: Request[Any, Any, Any]) -> Response[str]:
    return html(request, "_power_feed.html",
                **_feed_values(request, request.query_params.get("name", "")))


def _done_message(request: Request[Any, Any, Any]) -> str:
    done = request.query_params.get("done")
    feed = request.query_params.get("feed", "")
    if done in ("budget", "schedule", "saved", "deleted", "mode", "exclude"):
        return str(_lang(request)(f"power.done.{done}", feed=feed))
    return ""


def parse_until_field(text: str, zone_name: str) -> float | None:
    """The form's end time (``datetime-local``: the farm's time zone), or None when empty."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError("until", f"not a date and time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=farm_zone(zone_name))
    return moment.timestamp()


def _number(text: str, key: str) -> float:
    try:
        return float(text.replace(",", ".").replace("\u202f", "").replace(" ", ""))
    except ValueError:
        raise ConfigError(key, f"expected a number, got {text!r}") from None


def _back(posted: Mapping[str, Any], name: str) -> str:
    if str(posted.get("from", "")) == "feed":
        return f"/power/feed?name={quote(name)}&feed={quote(name)}"
    return f"/power?feed={quote(name)}"


@post("/power/budget", include_in_schema=False, status_code=200)
async def budget_submit(request: Request[Any, Any, Any]) -> Response[Any]:
    posted = await request.form()
    name = str(posted.get("name", ""))
    controller = _controller(request)
    if controller is None:
        return _power_page(request, status=501)
    _ = _lang(request)
    try:
        kw = _number(str(posted.get("budget_kw", "")), "budget_kw")
        until = parse_until_field(str(posted.get("until", "")), controller.section.timezone)
        controller.set_budget(name, kw, until, principal(request).label)
    except ConfigError as exc:
        return _refused(request, posted, name, _("power.refused", error=str(exc)))
    return redirect(_back(posted, name) + "&done=budget")


@post("/power/schedule", include_in_schema=False, status_code=200)
async def schedule_submit(request: Request[Any, Any, Any]) -> Response[Any]:
    posted = await request.form()
    name = str(posted.get("name", ""))
    controller = _controller(request)
    if controller is None:
        return _power_page(request, status=501)
    try:
        controller.clear_budget(name, principal(request).label)
    except ConfigError as exc:
        return _refused(request, posted, name,
                        _lang(request)("power.refused", error=str(exc)))
    return redirect(_back(posted, name) + "&done=schedule")


def _refused(request: Request[Any, Any, Any], posted: Mapping[str, Any], name: str,
             message: str) -> Response[str]:
    if str(posted.get("from", "")) == "feed":
        controller = _controller(request)
        if controller is not None and controller.section.feed(name) is not None:
            return html(request, "power_feed.html", 422, active="power", message=message,
                        message_kind="error", **_feed_values(request, name))
    return _power_page(request, status=422, message=message, kind="error")


# -- Settings ▸ Энергия ------------------------------------------------------------------------

FEED_FORM = {"original": "", "name": "", "meters": [], "groups": [], "ranges": [],
             "base_load_kw": "0", "budget_kw": "", "limit_kw": "", "mode": "",
             "strike_price": "", "price_floor_kw": "", "schedule": ""}


def _schedule_text(windows: list[Any]) -> str:
    lines = []
    for w in windows:
        days = ",".join(w.days)
        lines.append(" ".join(x for x in (f"{w.start}-{w.end}", f"{w.budget_kw:g}", days,
                                          w.name) if x))
    return "\n".join(lines)


def parse_schedule(text: str) -> list[dict[str, Any]]:
    """``08:00-11:00 200 mon,tue пик`` per line → windows (the config checks the values)."""
    windows = []
    for n, raw in enumerate(text.splitlines()):
        line = raw.strip()
        if not line:
            continue
        parts = line.split()
        span, _, budget = parts[0], None, parts[1] if len(parts) > 1 else ""
        start, sep, end = span.partition("-")
        if not sep or not budget:
            raise ConfigError(f"schedule[{n}]", f"expected \"08:00-11:00 200\", got {line!r}")
        window: dict[str, Any] = {"start": start, "end": end,
                                  "budget_kw": _number(budget, f"schedule[{n}].budget_kw")}
        rest = parts[2:]
        if rest and all(d in DAYS for d in rest[0].split(",")):
            window["days"] = rest[0].split(",")
            rest = rest[1:]
        if rest:
            window["name"] = " ".join(rest)
        windows.append(window)
    return windows


def feed_from_form(form: Mapping[str, Any]) -> dict[str, Any]:
    """The ``[[power.feeds]]`` table from the form (empty optional fields left out)."""
    table: dict[str, Any] = {"name": str(form["name"]).strip(), "meters": list(form["meters"]),
                             "groups": list(form["groups"]), "ranges": list(form["ranges"]),
                             "budget_kw": _number(str(form["budget_kw"]), "budget_kw")}
    for key in ("limit_kw", "base_load_kw", "strike_price", "price_floor_kw"):
        if str(form[key]).strip():
            table[key] = _number(str(form[key]), key)
    if form["mode"]:
        table["mode"] = form["mode"]
    schedule = parse_schedule(str(form["schedule"]))
    if schedule:
        table["schedule"] = schedule
    return table


def _form_of(section: PowerSection, name: str) -> dict[str, Any]:
    feed = section.feed(name)
    if feed is None:
        return dict(FEED_FORM)
    return {"original": feed.name, "name": feed.name, "meters": list(feed.meters),
            "groups": list(feed.groups), "ranges": list(feed.ranges),
            "base_load_kw": f"{feed.base_load_kw:g}", "budget_kw": f"{feed.budget_kw:g}",
            "limit_kw": "" if feed.limit_kw is None else f"{feed.limit_kw:g}",
            "mode": feed.mode,
            "strike_price": "" if feed.strike_price is None else f"{feed.strike_price:g}",
            "price_floor_kw": f"{feed.price_floor_kw:g}" if feed.price_floor_kw else "",
            "schedule": _schedule_text(feed.schedule)}


def _settings_page(request: Request[Any, Any, Any], *, status: int = 200, message: str = "",
                   kind: str = "ok", form: Mapping[str, Any] | None = None) -> Response[str]:
    agent = agent_of(request)
    config = agent.config
    section = config.section(PowerSection)
    edit = request.query_params.get("edit", "")
    groups = [g.name or g.uuid for g in config.network.ip_range_groups]
    ranges = [r.name or r.uuid for g in config.network.ip_range_groups for r in g.ip_ranges]
    return html(request, "settings_power.html", status, active="settings_power",
                section=section, meters=sorted(configured_meters(config).values()),
                groups=groups, ranges=ranges, form=dict(form or _form_of(section, edit)),
                message=message, message_kind=kind, excluded="\n".join(section.exclude))


@get("/settings/power", sync_to_thread=False, include_in_schema=False)
def settings_page(request: Request[Any, Any, Any]) -> Response[str]:
    return _settings_page(request, message=_done_message(request))


async def _apply(request: Request[Any, Any, Any], mutate: Any, what: str,
                 details: dict[str, Any]) -> None:
    agent = agent_of(request)
    agent.edits.check(mutate)
    await agent.edits.apply(mutate)
    agent.tasks.audit.write({"event": "config", "method": f"power/{what}",
                             "who": principal(request).label, "via": "web UI", **details})


@post("/settings/power/feed", include_in_schema=False, status_code=200)
async def feed_submit(request: Request[Any, Any, Any]) -> Response[Any]:
    posted = await request.form()
    form: dict[str, Any] = {k: str(posted.get(k, "")).strip() for k in FEED_FORM
                            if not isinstance(FEED_FORM[k], list)}
    for key in ("meters", "groups", "ranges"):
        form[key] = [str(v) for v in posted.getall(key, [])]
    _ = _lang(request)
    try:
        table = feed_from_form(form)
        await _apply(request, set_feed(table, form["original"] or None), "set-feed",
                     {"feed": table["name"]})
    except ConfigError as exc:
        return _settings_page(request, status=422, kind="error", form=form,
                              message=_("power.refused", error=str(exc)))
    return redirect(f"/settings/power?done=saved&feed={quote(form['name'])}")


@post("/settings/power/feed/delete", include_in_schema=False, status_code=200)
async def feed_delete(request: Request[Any, Any, Any]) -> Response[Any]:
    posted = await request.form()
    name = str(posted.get("name", ""))
    try:
        await _apply(request, delete_feed(name), "delete-feed", {"feed": name})
    except ConfigError as exc:
        return _settings_page(request, status=422, kind="error",
                              message=_lang(request)("power.refused", error=str(exc)))
    return redirect(f"/settings/power?done=deleted&feed={quote(name)}")


@post("/settings/power/mode", include_in_schema=False, status_code=200)
async def mode_submit(request: Request[Any, Any, Any]) -> Response[Any]:
    posted = await request.form()
    mode = str(posted.get("mode", ""))
    try:
        if mode not in ("off", "dry-run", "on"):
            raise ConfigError("mode", f"expected off, dry-run or on, got {mode!r}")
        await _apply(request, set_mode(mode), "set-mode", {"mode": mode})
    except ConfigError as exc:
        return _settings_page(request, status=422, kind="error",
                              message=_lang(request)("power.refused", error=str(exc)))
    return redirect("/settings/power?done=mode")


@post("/settings/power/exclude", include_in_schema=False, status_code=200)
async def exclude_submit(request: Request[Any, Any, Any]) -> Response[Any]:
    posted = await request.form()
    wanted = [line.strip() for line in str(posted.get("exclude", "")).replace(",", "\n")
              .splitlines() if line.strip()]
    section = agent_of(request).config.section(PowerSection)

    def mutate(doc: Any) -> None:
        set_excluded(section.exclude, False)(doc)
        set_excluded(wanted, True)(doc)

    try:
        await _apply(request, mutate, "exclude", {"macs": wanted})
    except ConfigError as exc:
        return _settings_page(request, status=422, kind="error",
                              message=_lang(request)("power.refused", error=str(exc)))
    return redirect("/settings/power?done=exclude")


power_handlers = [power_page, power_cards, feed_page, feed_live, budget_submit,
                  schedule_submit, settings_page, feed_submit, feed_delete, mode_submit,
                  exclude_submit]
