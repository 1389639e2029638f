"""``GET /healthz``: is the agent up? For load balancers and monitoring.

No login, and nothing in the answer but the verdict: the farm's addresses, devices and
settings are not anyone's business without a key.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get


@get("/healthz", sync_to_thread=False, include_in_schema=False)
def healthz(request: Request[Any, Any, Any]) -> Response[str]:
    """200 "ok" while the agent runs, 503 "stopping" once it is shutting down."""
    agent = request.app.state["agent"]
    if getattr(agent, "running", True):
        return Response("ok\n", media_type="text/plain", headers={"Cache-Control": "no-store"})
    return Response("stopping\n", status_code=503, media_type="text/plain",
                    headers={"Cache-Control": "no-store"})
