"""The web server inside ``webbo run``: uvicorn on the agent's event loop, one process.

The socket is bound here (not by uvicorn) so that a taken port is a clear error at start instead
of uvicorn's ``sys.exit``. uvicorn's signal handling is off: ``webbo run`` owns SIGINT/SIGTERM
and stops the server gracefully. A reload that changes ``[web] listen`` moves the server.

On the first start (no user in the state file) the ``miner`` user gets a random password, which
is logged and printed once; change it with ``webbo user set-password``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from typing import Protocol

import structlog
import uvicorn
from litestar import Litestar

from webbo.agent.core.agent import Agent
from webbo.agent.core.config import Config
from webbo.web.app import create_app
from webbo.web.listen import bind, parse_listen, quiet_server
from webbo.web.state import DEFAULT_USER, StateStore

log = structlog.get_logger("webbo.web")

__all__ = ["WebServer", "bind", "parse_listen", "quiet_server"]


class AppFactory(Protocol):
    """Makes the web app of an agent (:func:`~webbo.web.app.create_app`, or a test's own)."""

    def __call__(self, agent: Agent, *, store: StateStore | None = None) -> Litestar: ...


class WebServer:
    """Runs the app for ``agent`` on ``[web] listen`` (or ``listen`` given here)."""

    def __init__(self, agent: Agent, *, listen: str | None = None,
                 app_factory: AppFactory = create_app,
                 store: StateStore | None = None) -> None:
        self.agent = agent
        self.listen_override = listen
        self.store = store or StateStore(agent.config.state_dir)
        self.app = app_factory(agent, store=self.store)
        self.address: tuple[str, int] | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._listen = ""
        agent.on_reload(self._reloaded)

    @property
    def url(self) -> str:
        assert self.address is not None
        host, port = self.address
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}"

    def first_start(self) -> str | None:
        """Create the default user if there is none; return its password (shown once)."""
        return self.store.ensure_default_user()

    def browser_url(self) -> str:
        """Where an operator opens the UI: the bound address, or this host's name when the
        server listens on every interface (the manual's ``http://<server>/``)."""
        assert self.address is not None
        host, port = self.address
        if host in ("0.0.0.0", "::"):
            host = socket.gethostname()
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}/" if port == 80 else f"http://{host}:{port}/"

    def announce_first_start(self, password: str) -> None:
        """Print (stdout) and log (once) the URL and the generated password."""
        url = self.browser_url()
        log.warning("web user created; its password is shown only this once "
                    "(change it with `webbo user set-password`)",
                    url=url, user=DEFAULT_USER, password=password)
        print(f"web user {DEFAULT_USER!r} created with password: {password}\n"
              f"open {url} and log in as {DEFAULT_USER!r}", flush=True)

    async def start(self) -> None:
        """Bind and serve (raises OSError when the address cannot be bound)."""
        password = await asyncio.to_thread(self.first_start)
        listen = self.listen_override or self.agent.config.web.listen
        host, port = parse_listen(listen)
        sock = bind(host, port)
        self.address = sock.getsockname()[:2]
        server = quiet_server(self.app)
        self._server = server
        self._listen = listen
        task = asyncio.create_task(server.serve(sockets=[sock]), name="web server")
        self._task = task
        while not server.started:
            if task.done():
                sock.close()
                self._server = self._task = None
                error = None if task.cancelled() else task.exception()
                raise OSError(f"the web server did not start on {listen}: {error!r}")
            await asyncio.sleep(0.01)
        log.info("web server listening", url=self.url)
        if password is not None:
            self.announce_first_start(password)

    async def stop(self) -> None:
        server, task = self._server, self._task
        self._server = self._task = None
        if server is None or task is None:
            return
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), 10)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        except (Exception, SystemExit) as exc:
            log.error("web server stopped with an error", error=repr(exc))
        store = self.store
        with contextlib.suppress(Exception):
            await asyncio.to_thread(store.flush)

    async def serving(self) -> None:
        """Wait while the server runs; on cancellation stop it gracefully."""
        try:
            while self._task is not None:
                task = self._task
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(task)
                if self._task is task:  # it ended by itself
                    return
        finally:
            await self.stop()

    async def _reloaded(self, config: Config) -> None:
        if self.listen_override or self._server is None or config.web.listen == self._listen:
            return
        log.info("web listen address changed; moving", old=self._listen, new=config.web.listen)
        old_listen = self._listen
        await self.stop()
        try:
            await self.start()
        except OSError as exc:
            log.error("cannot listen on the new address; staying on the old one",
                      listen=config.web.listen, error=str(exc))
            self.listen_override = old_listen
            await self.start()
            self.listen_override = None


def start_failed(listen: str, exc: BaseException) -> None:
    print(f"cannot start the web server on {listen}: {exc}", file=sys.stderr)
