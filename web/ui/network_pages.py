"""Settings ▸ Miner settings: the groups and ranges editor.

The ranges editor works as the manual describes, button by button, without needing a script:
"Add group", "Delete group", "Add range", "Delete range" post the form and get it back changed
(nothing is saved until "Save"), so what was typed is never lost. "Save" validates the whole
Network the way the API's set-network does (the same :class:`~webbo.agent.fleet.control.Controller`
edit through ``set_table_array``, the same audit entry) and puts each error next to its field.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from litestar import Request, Response, get, post

from webbo.agent.core.config import ConfigError
from webbo.agent.core.tasks import TaskStatus
from webbo.web import services
from webbo.web.ui.common import agent_of, principal, redirect
from webbo.web.ui.errors import translate_error
from webbo.web.ui.i18n import translator
from webbo.web.ui.render import ctx, html

__all__ = ["network_handlers"]

MAX_GROUPS = 200
MAX_RANGES = 500
"""Form limits (a posted form cannot make the server build huge structures)."""

# -- the ranges editor ---------------------------------------------------------------------------


def _count(form: Mapping[str, Any], key: str, limit: int) -> int:
    try:
        return max(0, min(limit, int(str(form.get(key, "0")))))
    except ValueError:
        return 0


def _text(form: Mapping[str, Any], key: str) -> str:
    return str(form.get(key, "")).strip()


def parse_network_form(form: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The posted editor → groups in the manual's Network shape (values as typed)."""
    groups = []
    for gi in range(_count(form, "groups", MAX_GROUPS)):
        g = f"g{gi}"
        ranges = []
        for ri in range(_count(form, f"{g}.ranges", MAX_RANGES)):
            r = f"{g}.r{ri}"
            ranges.append({"name": _text(form, f"{r}.name"), "uuid": _text(form, f"{r}.uuid"),
                           "first": _text(form, f"{r}.first"), "last": _text(form, f"{r}.last")})
        group = {"name": _text(form, f"{g}.name"), "uuid": _text(form, f"{g}.uuid"),
                 "ip_ranges": ranges}
        if f"{g}.site" in form:  # a hub's editor: the site that polls the group
            group["site"] = _text(form, f"{g}.site")
        groups.append(group)
    return groups


def apply_op(groups: list[dict[str, Any]], op: str) -> str | None:
    """Apply an editor button to ``groups`` in place; returns the field to focus next."""
    name, _, rest = op.partition(":")
    args = [int(x) for x in rest.split(":") if x.isdigit()] if rest else []
    if name == "add_group" and len(groups) < MAX_GROUPS:
        groups.append({"name": "", "uuid": "", "ip_ranges": [
            {"name": "", "uuid": "", "first": "", "last": ""}]})
        return f"g{len(groups) - 1}.name"
    if name == "del_group" and len(args) == 1 and args[0] < len(groups):
        del groups[args[0]]
        return None
    if name == "add_range" and len(args) == 1 and args[0] < len(groups):
        ranges = groups[args[0]]["ip_ranges"]
        if len(ranges) < MAX_RANGES:
            ranges.append({"name": "", "uuid": "", "first": "", "last": ""})
            return f"g{args[0]}.r{len(ranges) - 1}.name"
        return None
    if name == "del_range" and len(args) == 2 and args[0] < len(groups):
        ranges = groups[args[0]]["ip_ranges"]
        if args[1] < len(ranges):
            del ranges[args[1]]
    return None


_PATH = re.compile(r"^network\.ip_range_groups\[(\d+)\](?:\.ip_ranges\[(\d+)\])?(?:\.(\w+))?$")
_INNER = re.compile(r"\(?network\.ip_range_groups\[(\d+)\]\.ip_ranges\[(\d+)\]\)?")
_NOT_IP = re.compile(r"^not an IPv4 address: (?P<value>.*)$")
_ORDER = re.compile(r"^(?P<last>\S+) is before first (?P<first>\S+)$")
_OVERLAP = re.compile(r"^range .* overlaps (?P<other>range .*)$")


def field_key(path: str) -> str:
    """``network.ip_range_groups[0].ip_ranges[1].last`` → ``g0.r1.last`` (the form field)."""
    m = _PATH.match(path)
    if m is None:
        return ""
    gi, ri, leaf = m.groups()
    key = f"g{gi}" + (f".r{ri}" if ri is not None else "")
    if leaf in ("name", "first", "last") and not (ri is None and leaf != "name"):
        key += f".{leaf}"
    return key


def describe(reason: str, lang: str) -> str:
    """The config's reason in the operator's language, with form places instead of paths."""
    _ = translator(lang)

    def place(m: re.Match[str]) -> str:
        return "(" + _("net.where", g=int(m.group(1)) + 1, r=int(m.group(2)) + 1) + ")"

    if m := _NOT_IP.match(reason):
        return _("net.err.ip", value=m.group("value"))
    if m := _ORDER.match(reason):
        return _("net.err.order", last=m.group("last"), first=m.group("first"))
    if m := _OVERLAP.match(reason):
        return _("net.err.overlap", other=_INNER.sub(place, m.group("other")))
    return translate_error(_INNER.sub(place, reason), lang)


def map_errors(error: ConfigError, lang: str) -> tuple[dict[str, str], list[str]]:
    """Field errors by form key, and the errors that belong to no field."""
    fields: dict[str, str] = {}
    general: list[str] = []
    for item in getattr(error, "errors", None) or [error]:
        key = field_key(item.path)
        text = describe(item.reason, lang)
        if key:
            fields[key] = f"{fields[key]}; {text}" if key in fields else text
        else:
            general.append(f"{item.path}: {text}" if item.path else text)
    return fields, general


def _addresses(groups: list[dict[str, Any]]) -> int:
    total = 0
    for g in groups:
        for r in g["ip_ranges"]:
            total += int(ipaddress.IPv4Address(r["last"])) - int(
                ipaddress.IPv4Address(r["first"])) + 1
    return total


def _network_page(request: Request[Any, Any, Any], groups: list[dict[str, Any]], *,
                  status: int = 200, **values: Any) -> Response[str]:
    values.setdefault("errors", {})
    values.setdefault("form_errors", [])
    values.setdefault("saved", "")
    values.setdefault("dirty", False)
    values.setdefault("focus", None)
    sites = services.sites(agent_of(request))
    return html(request, "settings_miners.html", status, active="settings_miners",
                groups=groups, sites=sites if len(sites) > 1 else [], **values)


@get("/settings/miners", sync_to_thread=False, include_in_schema=False)
def network_form(request: Request[Any, Any, Any]) -> Response[str]:
    groups = services.network(agent_of(request)).payload()["ip_range_groups"]
    saved = ""
    if request.query_params.get("saved"):
        _ = translator(ctx(request)["lang"])
        saved = _("net.saved", groups=_("net.n_groups", n=len(groups)),
                  ranges=_("net.n_ranges", n=sum(len(g["ip_ranges"]) for g in groups)),
                  addresses=_("net.addresses", n=_addresses(groups)))
    return _network_page(request, groups, saved=saved)


@post("/settings/miners", include_in_schema=False, status_code=200)
async def network_submit(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await request.form()
    groups = parse_network_form(form)
    op = str(form.get("op", "save"))
    if op != "save":
        focus = apply_op(groups, op)
        return _network_page(request, groups, dirty=True, focus=focus)
    lang = ctx(request)["lang"]
    agent = agent_of(request)
    try:
        task, _warnings = await services.network(agent).set_network(
            principal(request).label, groups, via="web UI",
            sites=[str(s) for s in form.getall("sites")] if "sites" in form else ())
    except ConfigError as exc:
        errors, general = map_errors(exc, lang)
        return _network_page(request, groups, status=422, errors=errors, form_errors=general,
                             dirty=True)
    assert task.handle is not None
    await task.handle
    if task.status != TaskStatus.SUCCESS:
        return _network_page(request, groups, status=422, form_errors=[str(task.result)],
                             dirty=True)
    return redirect("/settings/miners?saved=1")


network_handlers = [network_form, network_submit]
