"""The HTTP API of the operator's manual (§3), under ``/api``.

Each method is registered in :data:`webbo.web.api.core.METHODS` by its module (tasks, mining,
serial, audit); :func:`api_router` turns the table into Litestar POST routes behind the API key
guard, plus ``GET /api/openapi.json``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post

from webbo.web.api import (  # noqa: F401  (they fill METHODS)
    agent,
    alerts,
    audit,
    cluster,
    mining,
    power,
    serial,
    tasks,
)
from webbo.web.api.core import METHODS, ApiMethod, require_api_key, run_method
from webbo.web.api.openapi import build_openapi

__all__ = ["api_router", "openapi_document"]

_openapi_cache: dict[str, bytes] = {}


def openapi_document() -> dict[str, Any]:
    return build_openapi(METHODS.ordered())


def _route(method: ApiMethod) -> Any:
    async def handler(request: Request[Any, Any, Any]) -> Response[bytes]:
        return await run_method(method, request)

    name = "api" + method.path.replace("/", "_").replace("-", "_")
    handler.__name__ = handler.__qualname__ = name
    return post(method.path, name=name, status_code=200, include_in_schema=False)(handler)


@get("/openapi.json", name="api_openapi", include_in_schema=False)
async def openapi_json() -> Response[bytes]:
    """The OpenAPI document (behind the API key, like every /api route)."""
    body = _openapi_cache.get("doc")
    if body is None:
        body = _openapi_cache["doc"] = msgspec.json.encode(openapi_document())
    return Response(body, media_type="application/json")


def api_router() -> Router:
    return Router(path="/api", route_handlers=[*(_route(m) for m in METHODS.ordered()),
                                               openapi_json],
                  guards=[require_api_key])
