"""Rendering: the Jinja environment, number/time formatting, and the page response.

Every page and fragment goes through :func:`html` so each gets the same security headers: a
strict Content-Security-Policy (scripts, styles and images only from this app; no inline script,
no inline style attribute, no framing), ``nosniff``, no referrer to other sites, and
``no-store`` (pages show the farm's live state and, once, API keys).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import jinja2
from litestar import Request, Response
from litestar.datastructures import Cookie

from webbo.agent.alerts.engine import AlertEngine
from webbo.web.services import hub as hub_of
from webbo.web.ui.banners import banners
from webbo.web.ui.errors import translate_error
from webbo.web.ui.i18n import COOKIE as LANG_COOKIE
from webbo.web.ui.i18n import TEXT, lang_of, translator

__all__ = ["HEADERS", "Ctx", "ctx", "env", "html"]

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                                "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

LIVE_SECONDS = 5
"""How often the live parts of the pages refresh themselves."""


# -- formatting ---------------------------------------------------------------------------------


def fmt_num(value: float | None, digits: int = 1, lang: str = "ru") -> str:
    """``12345.67`` → ``12 345,7`` (ru) / ``12,345.7`` (en); None → ``—``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    text = f"{value:,.{digits}f}"
    if lang == "ru":
        return text.replace(",", "\u202f").replace(".", ",")
    return text


UNITS = {"ru": ("д", "ч", "мин", "с"), "en": ("d", "h", "min", "s")}


def fmt_duration(seconds: float | None, lang: str = "ru") -> str:
    """``93784`` → ``1д 2ч`` (the two largest units)."""
    if seconds is None or seconds < 0:
        return "—"
    d, h, m, s = UNITS.get(lang, UNITS["ru"])
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}{d} {hours}{h}"
    if hours:
        return f"{hours}{h} {minutes}{m}"
    if minutes:
        return f"{minutes} {m}"
    return f"{secs} {s}"


def fmt_time(ts: float | None) -> str:
    if not ts:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def fmt_clock(ts: float | None) -> str:
    if not ts:
        return "—"
    return time.strftime("%H:%M:%S", time.localtime(ts))


# -- the environment ----------------------------------------------------------------------------


def _env() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(("html", "svg")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals.update(LIVE_SECONDS=LIVE_SECONDS, fmt_time=fmt_time,
                               fmt_clock=fmt_clock)
    return environment


env = _env()


class Ctx(dict[str, Any]):
    """What every template gets: the language and its helpers, the user and CSRF token."""


def ctx(request: Request[Any, Any, Any], **values: Any) -> Ctx:
    from webbo.web.ui.session import SCOPE_KEY, sessions_of

    lang = lang_of(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))
    session = request.scope.get(SCOPE_KEY)  # type: ignore[call-overload]
    csrf = sessions_of(request).csrf_token(session) if session is not None else ""

    def num(value: float | None, digits: int = 1) -> str:
        return fmt_num(value, digits, lang)

    def duration(seconds: float | None) -> str:
        return fmt_duration(seconds, lang)

    def ago(ts: float | None) -> str:
        if not ts:
            return translator(lang)("common.never")
        return translator(lang)("common.ago", age=fmt_duration(max(0.0, time.time() - ts), lang))

    def alerts_firing() -> int:
        """Firing alerts nothing silences (the header's badge)."""
        try:
            engine = request.app.state["agent"].service(AlertEngine)
        except (KeyError, AttributeError):
            return 0
        if engine is None:
            return 0
        counts = engine.counts()
        return int(counts["firing"] - counts["silenced"])

    path = request.scope.get("path", "/")
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    agent = request.app.state.get("agent") if session is not None else None
    return Ctx(
        _=translator(lang), lang=lang, num=num, duration=duration, ago=ago,
        user=session.user if session is not None else None, csrf=csrf, path=path,
        query=query, now=time.time(), alerts_firing=alerts_firing,
        banners=banners(agent, lang) if agent else [],
        error_text=lambda message: translate_error(str(message), lang),
        hub=agent is not None and hub_of(agent) is not None,
        **{"active": "", **values},
    )


def html(request: Request[Any, Any, Any], template: str, code: int = 200,
         headers: dict[str, str] | None = None, **values: Any) -> Response[str]:
    """Render ``template`` into a response with the security headers (and remember a language
    chosen with ``?lang=``)."""
    context = ctx(request, **values)
    body = env.get_template(template).render(context)
    response = Response(body, status_code=code, media_type="text/html",
                        headers={**HEADERS, **(headers or {})})
    asked = request.query_params.get("lang")
    if asked and asked == context["lang"]:
        response.cookies.append(Cookie(key=LANG_COOKIE, value=asked, max_age=365 * 86400,
                                       httponly=True, samesite="lax", path="/"))
    return response


def fragment(request: Request[Any, Any, Any], template: str, **values: Any) -> str:
    """Render a template to text (a live part of a page, sent inside JSON)."""
    return env.get_template(template).render(ctx(request, **values))


def missing_texts() -> set[str]:
    """Keys used by templates with ``_("...")`` that the table lacks (a test checks none)."""
    import re

    used: set[str] = set()
    for path in TEMPLATES.rglob("*.html"):
        used.update(re.findall(r"""_\(\s*["']([a-z_.0-9]+)["']""", path.read_text("utf-8")))
    return {key for key in used if not key.endswith(".")} - set(TEXT)
