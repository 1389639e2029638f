"""Small pieces the UI's route modules share: who is acting, JSON answers, redirects, errors."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException
from litestar.response import Redirect

from webbo.agent.core.agent import Agent
from webbo.web.auth import Principal
from webbo.web.ui.i18n import translator
from webbo.web.ui.render import HEADERS, ctx, html
from webbo.web.ui.session import CsrfRefused, LoginRequired, session_of

__all__ = ["agent_of", "json", "principal", "redirect", "ui_exception_handlers"]


def agent_of(request: Request[Any, Any, Any]) -> Agent:
    agent: Agent = request.app.state["agent"]
    return agent


def principal(request: Request[Any, Any, Any]) -> Principal:
    """The logged-in user as the audit log names them (``user:miner``)."""
    user = session_of(request).user
    return Principal(kind="user", id=user, user=user)


def json(data: Any, status: int = 200) -> Response[bytes]:
    return Response(msgspec.json.encode(data), status_code=status,
                    media_type="application/json", headers=HEADERS)


def redirect(path: str) -> Redirect:
    """303 See Other (a form post lands on a page that can be reloaded safely)."""
    return Redirect(path, status_code=303, headers={"Cache-Control": "no-store"})


def is_data(request: Request[Any, Any, Any]) -> bool:
    """A call of the pages' scripts (``/ui/...``) rather than a page the browser navigates to."""
    return str(request.scope.get("path", "")).startswith("/ui/")


def safe_next(value: str | None) -> str:
    """Where to go after logging in: only a path on this site."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/miners"
    return value


def _login_required(request: Request[Any, Any, Any], exc: LoginRequired) -> Response[Any]:
    if is_data(request) or request.method not in ("GET", "HEAD"):
        return json({"error": "login required", "login": "/login"}, 401)
    target = request.scope.get("path", "/")
    if request.scope.get("query_string"):
        target += "?" + request.scope["query_string"].decode("latin-1")
    location = "/login" if target in ("/", "/miners") else "/login?next=" + quote(target, safe="")
    return redirect(location)


def _csrf_refused(request: Request[Any, Any, Any], exc: CsrfRefused) -> Response[Any]:
    if is_data(request):
        return json({"error": str(exc.detail)}, 403)
    _ = translator(ctx(request)["lang"])
    return html(request, "error.html", 403, status=403, message=_("err.csrf"))


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if is_data(request):
        return json({"error": str(exc.detail)}, exc.status_code)
    message = str(exc.detail)
    if isinstance(exc, NotFoundException):
        message = translator(ctx(request)["lang"])("err.not_found")
    return html(request, "error.html", exc.status_code, status=exc.status_code,
                message=message)


ui_exception_handlers: dict[Any, Any] = {
    LoginRequired: _login_required,
    CsrfRefused: _csrf_refused,
    HTTPException: _http_error,
}
