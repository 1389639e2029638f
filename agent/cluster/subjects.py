"""The NATS subjects of sites and hubs: ``webbo.<site>.<kind>``, one namespace per site.

Everything a site publishes, and every request addressed to it, is under its own
``webbo.<site>.>``, replies to the hub included (``webbo.<site>.reply.<hub>.<id>``). So one
permission per site says it all: its credentials may publish and subscribe under
``webbo.<site>.>`` and nowhere else, which means a site can neither publish as another site nor
answer another site's requests (docs/deploy.md has the server config).

================  ===========================  ==============================================
kind              direction                    what
================  ===========================  ==============================================
``heartbeat``     site → hub, every few s      alive; inventory and network revisions; tasks
``inventory``     site → hub                   device changes; a full snapshot in parts
``state``         site → hub, every sweep      compact per-miner state (JetStream, in order)
``alerts``        site → hub                   alert events (JetStream, in order)
``meters``        site → hub, with heartbeats  the meters' live values
``tasks``         site → hub                   a hub task accepted, its progress, its end
``control``       hub → site, request          run a task on the site's miners
``cancel``        hub → site                   stop a task the hub cancelled
``network``       hub → site, request          get / check / apply the site's [network]
``snapshot``      hub → site                   publish the full inventory now
``ping``          site → site, request         is another agent using this site's name?
``reply.<h>.<i>`` site → hub                   the answer to request ``i`` of hub ``h``
================  ===========================  ==============================================

Two subjects are shared by all: ``webbo.hello`` (a site says its name: at start, when a hub asks,
and now and then) and ``webbo.discover`` (a hub asks every site to say hello). The hub
subscribes to each site's subjects by name once it has heard its hello, never with a wildcard
over all sites: a leaf node's permissions pass on only the interest its user could serve, so a
wildcard subscription of the hub would never reach a site behind a restricted leaf node. A
false hello only makes the hub listen on subjects that only the real site may publish on.
"""

from __future__ import annotations

__all__ = ["HUB_INBOX", "PREFIX", "reply_subject", "site_inbox", "site_of", "stream_name",
           "subject"]

PREFIX = "webbo"

HEARTBEAT = "heartbeat"
INVENTORY = "inventory"
STATE = "state"
ALERTS = "alerts"
METERS = "meters"
TASKS = "tasks"
CONTROL = "control"
CANCEL = "cancel"
NETWORK = "network"
SNAPSHOT = "snapshot"
PING = "ping"
REPLY = "reply"

HELLO = f"{PREFIX}.hello"
DISCOVER = f"{PREFIX}.discover"

HUB_INBOX = "_INBOX_hub"
"""The hub's inbox prefix (JetStream API answers and pulled messages from the sites' servers):
a site's leaf user may publish there, and subscribe nowhere near it."""


def subject(site: str, kind: str) -> str:
    return f"{PREFIX}.{site}.{kind}"


def wildcard(kind: str) -> str:
    """Every site's ``kind`` (what the hub subscribes to)."""
    return f"{PREFIX}.*.{kind}"


def reply_subject(site: str, hub: str, request_id: str) -> str:
    return f"{PREFIX}.{site}.{REPLY}.{hub}.{request_id}"


def site_of(subject_: str) -> str:
    """``webbo.msk-1.heartbeat`` → ``msk-1`` (the subject, not the payload, says who sent it:
    permissions guarantee it)."""
    parts = subject_.split(".", 2)
    return parts[1] if len(parts) > 2 and parts[0] == PREFIX else ""


def stream_name(site: str) -> str:
    """The JetStream stream that keeps a site's state and alerts."""
    return f"WEBBO_{site}"


def site_inbox(site: str) -> str:
    """A site agent's inbox prefix (its own JetStream API answers): its credentials may
    subscribe there and under ``webbo.<site>.>`` only."""
    return f"_INBOX_{site}"
