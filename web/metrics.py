"""``GET /metrics`` for Prometheus, on the web server and optionally on an address of its own.

Who may scrape:

* on ``[web] listen`` (the UI's and the API's address, often the whole farm network): the
  ``[web] metrics_token`` as a bearer token, or any API key (``Authorization: Bearer wbk...``
  or ``X-Api-Key``) — never nobody, like every other page but the login;
* on ``[web] metrics_listen`` (a server that serves only this page and ``/healthz``): the
  token when one is set, else anyone who can reach that address (bind it to 127.0.0.1 or a
  management network).

``[web] metrics = false`` turns the page off (404) on both. The page itself:
:mod:`webbo.web.exposition`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from typing import Any

import structlog
import uvicorn
from litestar import Litestar, Request, Response, get
from litestar.datastructures import State
from litestar.response import Stream

from webbo.agent.core.agent import Agent
from webbo.agent.core.config import Config
from webbo.web.auth import verify_api_key
from webbo.web.exposition import CONTENT_TYPE, Exposition
from webbo.web.health import healthz
from webbo.web.listen import bind, parse_listen, quiet_server

log = structlog.get_logger("webbo.web")

__all__ = ["MetricsServer", "metrics_app", "metrics_page"]

_NO_STORE = {"Cache-Control": "no-store"}


def _presented(request: Request[Any, Any, Any]) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key", "").strip()


def _allowed(request: Request[Any, Any, Any], config: Config) -> bool:
    token = config.web.metrics_token
    presented = _presented(request)
    if request.app.state.get("metrics_only") and not token:
        return True
    if not presented:
        return False
    if token and hmac.compare_digest(presented.encode(), token.encode()):
        return True
    store = request.app.state.get("store")
    return store is not None and verify_api_key(store, presented) is not None


def exposition_of(app: Litestar, agent: Agent) -> Exposition:
    found = app.state.get("exposition")
    if found is None:
        found = app.state["exposition"] = Exposition(agent)
    return found  # type: ignore[no-any-return]


@get("/metrics", include_in_schema=False)
async def metrics_page(request: Request[Any, Any, Any]) -> Response[str] | Stream:
    """The fleet, the meters and the agent's own figures in Prometheus's text format."""
    agent: Agent = request.app.state["agent"]
    if not agent.config.web.metrics:
        return Response("not found: /metrics is off ([web] metrics = false)\n",
                        status_code=404, media_type="text/plain", headers=_NO_STORE)
    if not _allowed(request, agent.config):
        return Response("unauthorized: send the metrics token or an API key as "
                        "'Authorization: Bearer ...'\n", status_code=401,
                        media_type="text/plain",
                        headers={**_NO_STORE, "WWW-Authenticate": 'Bearer realm="webbo"'})
    page = await exposition_of(request.app, agent).page()
    return Stream(iter(page), media_type=CONTENT_TYPE,
                  headers={**_NO_STORE, "Content-Length": str(sum(map(len, page)))})


def metrics_app(agent: Agent, exposition: Exposition | None = None) -> Litestar:
    """The app of ``metrics_listen``: /metrics and /healthz, nothing else."""
    return Litestar(route_handlers=[metrics_page, healthz], openapi_config=None,
                    logging_config=None, debug=False,
                    state=State({"agent": agent, "metrics_only": True,
                                 "exposition": exposition or Exposition(agent)}))


class MetricsServer:
    """Serves :func:`metrics_app` on ``[web] metrics_listen``; follows it across reloads."""

    def __init__(self, agent: Agent, exposition: Exposition | None = None) -> None:
        self.agent = agent
        self.app = metrics_app(agent, exposition)
        self.address: tuple[str, int] | None = None
        self._listen = ""
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        agent.on_reload(self._reloaded)

    async def start(self) -> None:
        listen = self.agent.config.web.metrics_listen
        if not listen or not self.agent.config.web.metrics:
            return
        sock = bind(*parse_listen(listen))
        self.address = sock.getsockname()[:2]
        server = quiet_server(self.app)
        self._server, self._listen = server, listen
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="metrics server")
        while not server.started:
            if self._task.done():
                sock.close()
                raise OSError(f"the metrics server did not start on {listen}")
            await asyncio.sleep(0.01)
        log.info("Prometheus metrics listening", url=f"http://{listen}/metrics",
                 token=bool(self.agent.config.web.metrics_token))

    async def stop(self) -> None:
        server, task = self._server, self._task
        self._server = self._task = None
        if server is None or task is None:
            return
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), 10)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def serving(self) -> None:
        """Run until cancelled (then stop)."""
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def _reloaded(self, config: Config) -> None:
        wanted = config.web.metrics_listen if config.web.metrics else ""
        if wanted == self._listen:
            return
        await self.stop()
        self._listen = ""
        try:
            await self.start()
        except OSError as exc:
            log.error("cannot serve /metrics on the new address", listen=wanted, error=str(exc))
