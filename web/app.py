"""The web application: one Litestar app per running agent.

:func:`create_app` takes the agent (and optionally the state store); the app keeps them in
``app.state["agent"]``, ``app.state["store"]`` and ``app.state["login_limiter"]`` for the route
handlers. The API lives under
``/api`` (:mod:`webbo.web.api`); the web UI adds its pages with ``route_handlers`` (its login page,
its static assets and ``/healthz`` are the only routes allowed without authentication — a test
enumerates every route to prove it; ``/metrics`` takes a bearer token or an API key,
:mod:`webbo.web.metrics`).

Errors under ``/api`` are answered in the manual's envelope whatever raised them (404 and 405
included, which the router raises before any handler runs); elsewhere they are plain text.
Litestar's own OpenAPI routes are off: they would be reachable without a key, and they could
not describe the envelope anyway (see :mod:`webbo.web.api.openapi`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog
from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.exceptions import HTTPException, MethodNotAllowedException, NotFoundException
from litestar.types import ControllerRouterHandler

from webbo.agent.core.agent import Agent
from webbo.web.api import api_router
from webbo.web.api.core import envelope
from webbo.web.auth import LoginLimiter
from webbo.web.health import healthz
from webbo.web.metrics import metrics_page
from webbo.web.state import StateStore
from webbo.web.ui import ui_routes

log = structlog.get_logger("webbo.web")

__all__ = ["create_app"]


def _is_api(request: Request[Any, Any, Any]) -> bool:
    path = request.scope.get("path", "")
    return path == "/api" or path.startswith("/api/")


def _message(request: Request[Any, Any, Any], exc: HTTPException) -> str:
    if isinstance(exc, NotFoundException):
        if not _is_api(request):
            return f"not found: {request.scope.get('path', '')} (the web UI starts at /miners)"
        return f"no such method: {request.scope.get('path', '')} (see docs/API.md)"
    if isinstance(exc, MethodNotAllowedException):
        allowed = exc.headers.get("allow", "POST") if exc.headers else "POST"
        methods = ", ".join(m.strip() for m in allowed.split(",") if m.strip() != "OPTIONS")
        return f"method {request.method} is not allowed here; use {methods or 'POST'}"
    return str(exc.detail)


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    headers = dict(exc.headers or {})
    if _is_api(request):
        return envelope(False, _message(request, exc), exc.status_code, headers)
    return Response(_message(request, exc), status_code=exc.status_code,
                    media_type="text/plain", headers=headers)


def internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("request failed", path=request.scope.get("path"), method=request.method,
              exc_info=exc)
    message = "internal server error (the agent's log has the details)"
    if _is_api(request):
        return envelope(False, message, 500)
    return Response(message, status_code=500, media_type="text/plain")


def create_app(agent: Agent, *, store: StateStore | None = None,
               route_handlers: Sequence[ControllerRouterHandler] = (),
               ui: bool = True) -> Litestar:
    """The app for ``agent``. ``store`` defaults to ``<state_dir>/web.json``; ``ui=False``
    leaves out the web UI's pages (:mod:`webbo.web.ui`).

    ``app.state`` holds ``agent``, ``store`` and ``login_limiter`` (the web UI's login uses it
    with :func:`webbo.web.auth.authenticate_user`)."""
    if store is None:
        store = StateStore(agent.config.state_dir)
    web = agent.config.web
    limiter = LoginLimiter(web.login_attempts, float(web.login_window))
    return Litestar(
        route_handlers=[api_router(), healthz, metrics_page, *(ui_routes() if ui else ()),
                        *route_handlers],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
        state=State({"agent": agent, "store": store, "login_limiter": limiter}),
        openapi_config=None,
        logging_config=None,
        debug=False,
    )
