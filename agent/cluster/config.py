"""``[cluster]`` (this agent is a site) and ``[hub]`` (this agent serves every site) in
webbo.toml, and how either connects to NATS.

Both take the same connection settings (:class:`NatsSettings`): the servers, one way to
authenticate (user and password, a token, an nkey seed file or a ``.creds`` file) and TLS. A
site's credentials are what NATS permissions are written for (docs/deploy.md): they let it
publish only its own subjects.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import msgspec

from webbo.agent.core.config import Config, ConfigError, Duration, Section

__all__ = ["SITE_NAME", "ClusterSection", "HubSection", "NatsSettings", "check_hub"]

SITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
"""A site name is one NATS subject token and part of a JetStream stream name: letters, digits,
``-`` and ``_``, starting with a letter or digit, at most 63 characters."""

_SCHEMES = ("nats", "tls", "ws", "wss")


class NatsSettings(Section, kw_only=True):
    """How to reach NATS (shared by ``[cluster]`` and ``[hub]``)."""

    urls: list[str] = msgspec.field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    """Servers of one cluster (a site's own leaf node is best: see docs/deploy.md)."""
    user: str = ""
    password: str = ""
    token: str = ""
    nkey_seed: str = ""
    """A file holding this agent's nkey seed (``SU...``; ``webbo cluster nkey`` makes one)."""
    creds: str = ""
    """A ``.creds`` file (JWT and nkey seed) of an operator/account set-up."""
    tls_ca: str = ""
    """CA certificate(s) that the server's certificate must chain to (PEM file)."""
    tls_cert: str = ""
    """This agent's client certificate (PEM), when the server verifies clients."""
    tls_key: str = ""
    tls_hostname: str = ""
    """The name the server's certificate must carry, when it is not the URL's host."""
    connect_timeout: Duration = Duration(2.0)

    def check(self) -> Iterator[ConfigError]:
        if not self.urls:
            yield ConfigError("urls", "at least one NATS server URL is needed")
        for i, url in enumerate(self.urls):
            parts = urlsplit(url)
            if parts.scheme not in _SCHEMES or not parts.hostname:
                yield ConfigError(f"urls[{i}]", f'expected "nats://HOST:PORT" (or tls://, ws://,'
                                                f" wss://), got {url!r}")
        ways = [name for name, value in (("user", self.user), ("token", self.token),
                                         ("nkey_seed", self.nkey_seed), ("creds", self.creds))
                if value]
        if len(ways) > 1:
            yield ConfigError(ways[1], f"choose one way to authenticate, not {' and '.join(ways)}")
        if self.password and not self.user:
            yield ConfigError("password", "a password needs a user")
        if bool(self.tls_cert) != bool(self.tls_key):
            yield ConfigError("tls_key" if self.tls_cert else "tls_cert",
                              "tls_cert and tls_key go together")
        for name in ("nkey_seed", "creds", "tls_ca", "tls_cert", "tls_key"):
            path = getattr(self, name)
            if path and not os.path.isfile(path):
                yield ConfigError(name, f"no such file: {path}")
        if self.connect_timeout <= 0:
            yield ConfigError("connect_timeout", "must be longer than 0s")

    @property
    def secure(self) -> bool:
        return bool(self.tls_ca or self.tls_cert) or any(
            url.startswith(("tls://", "wss://")) for url in self.urls)


class ClusterSection(NatsSettings, kw_only=True):
    """``[cluster]``: this agent is the agent of one site."""

    site: str = ""
    """This site's name, unique among the sites of a hub. Empty: not a site (nothing below is
    used)."""
    heartbeat: Duration = Duration(5.0)
    """How often the site says it is alive (and how often it reports the progress of the hub's
    tasks)."""
    jetstream: bool = True
    """Keep what the site publishes (state, alerts) in a JetStream stream, so that the hub gets
    what was published while the link was down, in order."""
    jetstream_domain: str = ""
    """The JetStream domain of the server this agent connects to (its leaf node's ``domain``);
    the hub reads the site's stream through it. Empty: the server's own JetStream."""
    keep: Duration = Duration(3600.0)
    """How long the stream keeps what the site published (the longest outage it bridges)."""
    keep_mb: int = 1024
    """The stream's size limit (MiB); beyond it the oldest messages go."""
    outage_buffer_mb: int = 8
    """What the client buffers in memory while it cannot reach its server (MiB)."""

    @property
    def enabled(self) -> bool:
        return bool(self.site)

    def check(self) -> Iterator[ConfigError]:
        if not self.site:
            return
        yield from super().check()
        if not SITE_NAME.match(self.site):
            yield ConfigError("site", f"{self.site!r}: letters, digits, - and _ only (one NATS "
                                      "subject token), at most 63 characters")
        if self.heartbeat < 0.2:
            yield ConfigError("heartbeat", "must be at least 200ms")
        if self.jetstream_domain and not SITE_NAME.match(self.jetstream_domain):
            yield ConfigError("jetstream_domain", "letters, digits, - and _ only")
        if self.keep <= 0:
            yield ConfigError("keep", "must be longer than 0s")
        for name in ("keep_mb", "outage_buffer_mb"):
            if getattr(self, name) < 1:
                yield ConfigError(name, "must be at least 1")


class HubSection(NatsSettings, kw_only=True):
    """``[hub]``: this agent serves the API and UI of every site."""

    enabled: bool = False
    name: str = "hub"
    """This hub's name: its JetStream consumers on the sites' streams carry it (two hubs need
    two names)."""
    stale_after: Duration = Duration(30.0)
    """A site without a heartbeat this long is shown stale, and so are its miners."""
    request_timeout: Duration = Duration(10.0)
    """How long a site may take to accept a task (or stay silent while it runs one) before its
    miners are answered "site ... unreachable"."""

    def check(self) -> Iterator[ConfigError]:
        if not self.enabled:
            return
        yield from super().check()
        if not SITE_NAME.match(self.name):
            yield ConfigError("name", f"{self.name!r}: letters, digits, - and _ only")
        for name in ("stale_after", "request_timeout"):
            if getattr(self, name) <= 0:
                yield ConfigError(name, "must be longer than 0s")


def check_hub(hub: HubSection, config: Config) -> Iterator[ConfigError]:
    """A hub shows only what its sites publish: ranges in its own ``[network]`` would be swept
    and shown nowhere unless this agent is a site too."""
    if not hub.enabled or not config.network.ip_range_groups:
        return
    if not config.section(ClusterSection).enabled:
        yield ConfigError("enabled", "this hub has ranges in [network] but is no site: its "
                                     "miners would be polled and shown nowhere; make it a site "
                                     "too ([cluster] site = ...) or move the ranges to a site")


def describe_settings(settings: NatsSettings) -> dict[str, Any]:
    """What ``status()`` shows of a connection's settings (no secrets)."""
    auth = ("creds" if settings.creds else "nkey" if settings.nkey_seed else "token"
            if settings.token else "user" if settings.user else "none")
    return {"urls": list(settings.urls), "auth": auth, "tls": settings.secure}
