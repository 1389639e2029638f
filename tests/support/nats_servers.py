"""Debian's ``nats-server`` for the cluster tests and the hub bench: started from a config on
free loopback ports with a temporary JetStream store, ready when ``/healthz`` answers, stopped
by its PID. Also a TCP relay that stands for a site's WAN link (cut it, restore it) and the
config blocks that docs/deploy.md documents (accounts with per-site permissions, leaf nodes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from servers import free_port

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def site_permissions(site: str) -> str:
    """What a site agent's user may do when it connects straight to the hub's server: publish
    and subscribe under its own subjects (and its own inbox); create and read its own stream."""
    js = [f"$JS.API.STREAM.{op}.WEBBO_{site}" for op in ("CREATE", "UPDATE", "INFO")]
    publish = json.dumps([f"webbo.{site}.>", "webbo.hello", f"_INBOX_{site}.>", *js])
    subscribe = json.dumps([f"webbo.{site}.>", "webbo.discover", f"_INBOX_{site}.>"])
    return f"{{ publish: {{ allow: {publish} }}, subscribe: {{ allow: {subscribe} }} }}"


def leaf_permissions(site: str) -> str:
    """The leaf-node user of a site on the hub's server: what the site's server may send to
    the hub (``publish``) and what the hub's server sends it (``subscribe``)."""
    publish = json.dumps([f"webbo.{site}.>", "webbo.hello", "_INBOX_hub.>"])
    subscribe = json.dumps([f"webbo.{site}.>", "webbo.discover", f"$JS.{site}.API.>",
                            f"$JS.ACK.WEBBO_{site}.>"])
    return f"{{ publish: {{ allow: {publish} }}, subscribe: {{ allow: {subscribe} }} }}"


def hub_config(store: Path, *, port: int, http: int, sites: dict[str, str],
               leafs: dict[str, str] | None = None, leaf_port: int | None = None,
               domain: str = "", leaf_advertise: str = "") -> str:
    """The hub's server: one account with the hub's user, one user per site (``sites``: name →
    password) and one leaf user per leaf site (``leafs``: name → password). A leaf node learns
    the address the hub advertises and reconnects there: ``leaf_advertise`` makes that the
    relay standing for the WAN link."""
    users = ['{ user: hub, password: hubpw }']
    users += [f"{{ user: {name}, password: {pw}, permissions: {site_permissions(name)} }}"
              for name, pw in sites.items()]
    users += [f"{{ user: leaf_{name}, password: {pw}, permissions: {leaf_permissions(name)} }}"
              for name, pw in (leafs or {}).items()]
    joined = "\n      ".join(users)
    dom = f", domain: {domain}" if domain else ""
    text = f"""
server_name: hub
listen: 127.0.0.1:{port}
http: 127.0.0.1:{http}
jetstream {{ store_dir: "{store}"{dom} }}
accounts {{
  WEBBO: {{
    jetstream: enabled
    users: [
      {joined}
    ]
  }}
  SYS: {{ users: [ {{ user: sys, password: syspw }} ] }}
}}
system_account: SYS
"""
    if leaf_port is not None:
        advertise = f", advertise: \"{leaf_advertise}\"" if leaf_advertise else ""
        text += f"leafnodes {{ listen: 127.0.0.1:{leaf_port}{advertise} }}\n"
    return text


def leaf_config(store: Path, *, site: str, port: int, http: int, hub_leaf: str,
                password: str) -> str:
    """A site's own server: JetStream in the site's domain, a leaf node of the hub's."""
    return f"""
server_name: site-{site}
listen: 127.0.0.1:{port}
http: 127.0.0.1:{http}
jetstream {{ store_dir: "{store}", domain: {site} }}
accounts {{ WEBBO: {{ jetstream: enabled, users: [ {{ user: agent, password: agentpw }} ] }} }}
leafnodes {{
  reconnect: 1
  remotes [ {{ url: "nats-leaf://leaf_{site}:{password}@{hub_leaf}", account: WEBBO }} ]
}}
"""


class NatsServer:
    """One nats-server process from ``config`` (a folder of its own under ``workdir``)."""

    def __init__(self, workdir: Path, config: str, http: int, name: str = "nats") -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / f"{name}.conf"
        self.conf.write_text(config)
        self.log = self.dir / f"{name}.log"
        self.http = http
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> NatsServer:
        check = subprocess.run([NATS_SERVER, "-t", "-c", str(self.conf)], capture_output=True,
                               text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"{self.conf}: {check.stdout}{check.stderr}")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([NATS_SERVER, "-c", str(self.conf)], stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited {self.proc.returncode}: "
                                   + self.log.read_text(errors="replace")[-2000:])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/healthz",
                                            timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"nats-server not ready in {timeout}s")

    def monitor(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/{path}", timeout=2) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Relay:
    """A TCP relay on loopback standing for a WAN link: :meth:`cut` drops every connection and
    stops listening; :meth:`restore` listens again."""

    def __init__(self, target: int, port: int | None = None) -> None:
        self.target = target
        self.port = port or free_port()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def restore(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        self.writers.update({writer, up_writer})
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.writers.difference_update({writer, up_writer})

    async def cut(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)


def ports(n: int) -> list[int]:
    return [free_port() for _ in range(n)]
