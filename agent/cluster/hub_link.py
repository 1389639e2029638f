"""The hub's NATS link: take in what the sites publish, send them requests, collect answers.

* Heartbeats, inventory, meters and task events are plain NATS subscriptions on every site's
  subjects (``webbo.*.heartbeat`` ...). A heartbeat whose inventory revision or network
  revision differs from what the hub holds makes the hub ask for a snapshot / the network (at
  most every few seconds per site).
* State and alerts of a site with a JetStream stream are *pulled* from that stream with a
  durable consumer named after the hub (so a hub that restarts, or a link that was down, goes
  on where it stopped, in order); a site without a stream publishes them as plain messages.
* Requests go to ``webbo.<site>.<kind>`` with the reply subject
  ``webbo.<site>.reply.<hub>.<id>`` under the site's own namespace (one subscription here takes
  every reply). No agent of the site connected: the server answers "no responders" at once. An
  answer that comes after its request was given up is logged and recorded, never applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from webbo.agent.cluster import subjects as subj
from webbo.agent.cluster.config import SITE_NAME, HubSection
from webbo.agent.cluster.connect import connect_forever
from webbo.agent.cluster.hub_base import HubCore, SiteSilent, SiteUnreachable
from webbo.agent.cluster.view import SiteView
from webbo.agent.cluster.wire import (
    AlertMsg,
    ControlReply,
    Heartbeat,
    InventoryMsg,
    MetersMsg,
    NetworkReply,
    NetworkRequest,
    SnapshotRequest,
    StateMsg,
    TaskEvent,
    encoder,
)
from webbo.agent.core.metric import Metric, now_ns

log = structlog.get_logger("webbo.cluster.hub")

__all__ = ["HubSession", "SiteSilent", "SiteUnreachable"]

ASK_EVERY = 5.0
"""Least time between two snapshot (or network) requests to one site."""
FETCH_BATCH = 256
MAX_SITES = 10_000
ABANDONED = 1000


@dataclass
class Pending:
    site: str
    id: str
    kind: str
    future: asyncio.Future[bytes]
    sent: float
    last_news: float
    accepted: bool = False
    done: int = 0
    on_progress: Callable[[int], None] | None = None


@dataclass
class Consumer:
    stream: str
    domain: str
    task: asyncio.Task[None]


@dataclass
class HubStats:
    connected: bool = False
    heartbeats: int = 0
    state_messages: int = 0
    alerts: int = 0
    snapshots_asked: int = 0
    requests: int = 0
    late_answers: int = 0
    bad_messages: int = 0
    disconnects: int = 0
    consumers: dict[str, Consumer] = field(default_factory=dict)


class HubSession:
    """The hub's link under one ``[hub]`` setting (a core input of the agent: its ``gather``
    marks stale sites and reports each site as a ``webbo_site`` metric)."""

    only_when_running = True

    def __init__(self, hub: HubCore, section: HubSection) -> None:
        self.hub = hub
        self.section = section
        self.nc: Client | None = None
        self.stats = HubStats()
        self.pending: dict[tuple[str, str], Pending] = {}
        self.abandoned: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self.subs: dict[str, list[Subscription]] = {}
        self.plain: dict[str, list[Subscription]] = {}
        self._task: asyncio.Task[None] | None = None
        self._helpers: set[asyncio.Task[Any]] = set()

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self.hub.session = self
        self._task = asyncio.create_task(self._run(), name="hub link")

    async def stop(self) -> None:
        tasks = [self._task, *self._helpers, *(c.task for c in self.stats.consumers.values())]
        for task in tasks:
            if task is not None:
                task.cancel()
        for task in tasks:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self.stats.consumers.clear()
        for pending in self.pending.values():
            if not pending.future.done():
                pending.future.set_exception(SiteUnreachable("the hub's link was stopped"))
        nc, self.nc = self.nc, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
        self.stats.connected = False
        if self.hub.session is self:
            self.hub.session = None

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def gather(self, acc: Any) -> None:
        now = time.time()
        self.hub.fleet.check_stale(float(self.section.stale_after), now)
        ts = now_ns()
        for view in self.hub.fleet.sites.values():
            info = view.describe(now)
            by_state = info["by_state"]
            fields: dict[str, Any] = {
                "online": view.state == "online", "state": view.state,
                "miners": len(view.devices), "miners_ok": by_state.get("ok", 0),
                "state_messages": view.state_messages, "alerts": view.alerts}
            if info["heartbeat_age_s"] is not None:
                fields["heartbeat_age_s"] = info["heartbeat_age_s"]
            acc.add(Metric("webbo_site", {"site": view.name}, fields, ts))

    def internal_fields(self) -> dict[str, Any]:
        s = self.stats
        return {"connected": self.connected, "sites": len(self.hub.fleet.sites),
                "heartbeats": s.heartbeats, "state_messages": s.state_messages,
                "alerts": s.alerts, "requests": s.requests, "late_answers": s.late_answers,
                "bad_messages": s.bad_messages}

    async def _on_error(self, exc: Exception) -> None:
        log.warning("nats error", hub=self.section.name, error=str(exc))

    async def _on_disconnect(self) -> None:
        self.stats.connected = False
        self.stats.disconnects += 1
        log.warning("hub link down", hub=self.section.name)

    async def _on_reconnect(self) -> None:
        self.stats.connected = True
        log.info("hub link back", hub=self.section.name)
        if self.nc is not None:
            await self.nc.publish(subj.DISCOVER, b"{}")

    # -- which sites the hub listens to ----------------------------------------------------------

    async def _on_hello(self, msg: Msg) -> None:
        try:
            site = str(msgspec.json.decode(msg.data, type=dict[str, str]).get("site", ""))
        except msgspec.MsgspecError:
            site = ""
        if not SITE_NAME.match(site):
            self.stats.bad_messages += 1
            log.warning("hello with a bad site name ignored", data=msg.data[:100])
            return
        await self._listen(site)

    async def _listen(self, site: str) -> None:
        """Subscribe to one site's subjects (by name: see :mod:`..subjects`)."""
        nc = self.nc
        if nc is None or site in self.subs:
            return
        if len(self.subs) >= MAX_SITES:
            log.error("too many site names; not listening to more", site=site, limit=MAX_SITES)
            return
        handlers = {subj.HEARTBEAT: self._on_heartbeat, subj.INVENTORY: self._on_inventory,
                    subj.METERS: self._on_meters, subj.TASKS: self._on_task_event}
        subs = [await nc.subscribe(subj.subject(site, kind), cb=handler)
                for kind, handler in handlers.items()]
        subs.append(await nc.subscribe(f"{subj.PREFIX}.{site}.{subj.REPLY}.{self.hub.hub_id}.>",
                                       cb=self._on_reply))
        self.subs[site] = subs
        log.info("listening to a site", site=site)

    async def _plain_state(self, site: str, wanted: bool) -> None:
        """State and alerts as plain messages, for a site without a stream (with one, they are
        read from the stream: the plain copies would only double the link's traffic)."""
        nc, held = self.nc, self.plain.get(site)
        if nc is None or wanted == (held is not None):
            return
        if held is not None:
            del self.plain[site]
            for sub in held:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
            return
        self.plain[site] = [
            await nc.subscribe(subj.subject(site, subj.STATE), cb=self._on_state),
            await nc.subscribe(subj.subject(site, subj.ALERTS), cb=self._on_alert)]

    async def _run(self) -> None:
        nc = await connect_forever(
            self.section, name=f"webbo hub {self.section.name}", inbox_prefix=subj.HUB_INBOX,
            on_error=self._on_error, on_disconnect=self._on_disconnect,
            on_reconnect=self._on_reconnect)
        self.nc = nc
        self.stats.connected = True
        log.info("hub link up", hub=self.section.name, servers=list(self.section.urls))
        await nc.subscribe(subj.HELLO, cb=self._on_hello)
        for site in list(self.hub.fleet.sites):
            await self._listen(site)
        await asyncio.sleep(0)
        await nc.flush()
        await nc.publish(subj.DISCOVER, b"{}")
        while True:
            await asyncio.sleep(1.0)
            self.hub.fleet.check_stale(float(self.section.stale_after), time.time())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    def _decode(self, msg: Msg, kind: type[Any]) -> tuple[SiteView, Any] | None:
        site = subj.site_of(msg.subject)
        try:
            body = msgspec.json.decode(msg.data, type=kind)
        except msgspec.MsgspecError as exc:
            self.stats.bad_messages += 1
            log.warning("bad message from a site", subject=msg.subject, error=str(exc))
            return None
        return self.hub.fleet.site(site), body

    # -- what the sites publish ----------------------------------------------------------------

    async def _on_heartbeat(self, msg: Msg) -> None:
        decoded = self._decode(msg, Heartbeat)
        if decoded is None:
            return
        view, beat = decoded
        self.stats.heartbeats += 1
        now = time.time()
        reload = self.hub.fleet.wants_snapshot(view, beat, now)
        self.hub.fleet.heartbeat(view, beat, now)
        for pending in self.pending.values():
            if pending.site == view.name and pending.accepted:
                pending.last_news = time.monotonic()
        if beat.leaving:
            return
        if reload:
            view.wanted = beat.instance
            self._ask_snapshot(view, "inventory revision differs")
        if beat.network_rev != view.network_rev and now - view.network_asked > ASK_EVERY:
            view.network_asked = now
            self._spawn(self.refresh_network(view.name))
        self._ensure_consumer(view, beat)
        await self._plain_state(view.name, not beat.stream)

    def _ask_snapshot(self, view: SiteView, reason: str) -> None:
        now = time.time()
        if self.nc is None or now - view.snapshot_asked < ASK_EVERY:
            return
        view.snapshot_asked = now
        self.stats.snapshots_asked += 1
        body = encoder.encode(SnapshotRequest(hub=self.hub.hub_id, reason=reason))
        self._spawn(self.nc.publish(subj.subject(view.name, subj.SNAPSHOT), body))

    async def refresh_network(self, site: str) -> None:
        try:
            reply = await self.network(site, NetworkRequest(op="get", hub=self.hub.hub_id))
        except (SiteUnreachable, SiteSilent) as exc:
            log.warning("site network not read", site=site, error=str(exc))
            return
        if reply.ok:
            self.hub.fleet.adopt_network(site, reply.network)

    async def _on_inventory(self, msg: Msg) -> None:
        decoded = self._decode(msg, InventoryMsg)
        if decoded is None:
            return
        view, body = decoded
        if not self.hub.fleet.apply_inventory(view, body):
            self._ask_snapshot(view, "inventory changes do not apply")

    def _apply_state(self, view: SiteView, data: bytes) -> None:
        try:
            body = msgspec.json.decode(data, type=StateMsg)
        except msgspec.MsgspecError as exc:
            self.stats.bad_messages += 1
            log.warning("bad state message", site=view.name, error=str(exc))
            return
        self.stats.state_messages += 1
        self.hub.fleet.apply_state(view, body)

    def _apply_alert(self, view: SiteView, data: bytes) -> None:
        try:
            body = msgspec.json.decode(data, type=AlertMsg)
        except msgspec.MsgspecError as exc:
            self.stats.bad_messages += 1
            log.warning("bad alert message", site=view.name, error=str(exc))
            return
        self.stats.alerts += 1
        view.alerts += 1
        view.recent.append(body.seq)
        self.hub.record_alert(view.name, body)

    def _plain(self, msg: Msg) -> SiteView | None:
        """A site that keeps a stream sends state and alerts through it (read there)."""
        view = self.hub.fleet.sites.get(subj.site_of(msg.subject))
        if view is None or view.heartbeat is None or view.heartbeat.stream:
            return None
        return view

    async def _on_state(self, msg: Msg) -> None:
        view = self._plain(msg)
        if view is not None:
            self._apply_state(view, msg.data)

    async def _on_alert(self, msg: Msg) -> None:
        view = self._plain(msg)
        if view is not None:
            self._apply_alert(view, msg.data)

    async def _on_meters(self, msg: Msg) -> None:
        decoded = self._decode(msg, MetersMsg)
        if decoded is not None:
            view, body = decoded
            view.meters = body.meters

    # -- the sites' streams --------------------------------------------------------------------

    def _ensure_consumer(self, view: SiteView, beat: Heartbeat) -> None:
        current = self.stats.consumers.get(view.name)
        if current is not None and (current.stream, current.domain) == (beat.stream,
                                                                        beat.domain):
            if not current.task.done():
                return
        if current is not None:
            current.task.cancel()
            self.stats.consumers.pop(view.name, None)
        if not beat.stream:
            return
        task = asyncio.create_task(self._consume(view, beat.stream, beat.domain),
                                   name=f"hub reads {beat.stream}")
        self.stats.consumers[view.name] = Consumer(beat.stream, beat.domain, task)

    async def _consume(self, view: SiteView, stream: str, domain: str) -> None:
        """Pull the site's stream in order, from where this hub stopped (a durable consumer
        on the site's server), and acknowledge what was applied."""
        assert self.nc is not None
        js = self.nc.jetstream(domain=domain or None)
        config = ConsumerConfig(durable_name=self.section.name, ack_policy=AckPolicy.ALL,
                                deliver_policy=DeliverPolicy.NEW, max_ack_pending=-1)
        psub = None
        view.stream_seq = 0
        failures = 0
        try:
            while True:
                try:
                    if psub is None:
                        psub = await js.pull_subscribe("", durable=self.section.name,
                                                       stream=stream, config=config)
                        log.info("reading the site's stream", site=view.name, stream=stream,
                                 domain=domain or "(hub's own)")
                    msgs = await psub.fetch(FETCH_BATCH, timeout=1.0)
                except (TimeoutError, NatsTimeout):
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures += 1
                    if failures in (1, 10) or failures % 100 == 0:
                        log.warning("site stream not readable now", site=view.name,
                                    stream=stream, error=str(exc) or type(exc).__name__,
                                    failures=failures)
                    await asyncio.sleep(min(5.0, 0.5 * failures))
                    continue
                failures = 0
                self._apply_stream(view, msgs)
                await msgs[-1].ack()
        finally:
            if psub is not None:
                with contextlib.suppress(Exception):
                    await psub.unsubscribe()

    def _apply_stream(self, view: SiteView, msgs: list[Msg]) -> None:
        state = subj.subject(view.name, subj.STATE)
        for m in msgs:
            seq = m.metadata.sequence.stream
            if seq <= view.stream_seq:
                continue
            view.stream_seq = seq
            if m.subject == state:
                self._apply_state(view, m.data)
            else:
                self._apply_alert(view, m.data)

    # -- requests ------------------------------------------------------------------------------

    async def _send(self, site: str, kind: str, request_id: str, body: bytes,
                    on_progress: Callable[[int], None] | None = None) -> Pending:
        if self.nc is None or not self.nc.is_connected:
            raise SiteUnreachable("the hub is not connected to NATS")
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        pending = Pending(site, request_id, kind, loop.create_future(), now, now,
                          on_progress=on_progress)
        self.pending[(site, request_id)] = pending
        self.stats.requests += 1
        await self.nc.publish(subj.subject(site, kind), body,
                              reply=subj.reply_subject(site, self.hub.hub_id, request_id))
        return pending

    def _give_up(self, pending: Pending) -> None:
        key = (pending.site, pending.id)
        self.pending.pop(key, None)
        self.abandoned[key] = (pending.kind, time.time())
        while len(self.abandoned) > ABANDONED:
            self.abandoned.popitem(last=False)

    async def network(self, site: str, request: NetworkRequest,
                      timeout: float | None = None) -> NetworkReply:
        """One network request (get / check / apply) and its answer."""
        timeout = float(self.section.request_timeout) if timeout is None else timeout
        pending = await self._send(site, subj.NETWORK, uuid.uuid4().hex,
                                   encoder.encode(request))
        try:
            data = await asyncio.wait_for(asyncio.shield(pending.future), timeout)
        except TimeoutError:
            raise SiteSilent(f"no answer within {timeout:g} s", accepted=False) from None
        finally:
            self._give_up(pending)
        return msgspec.json.decode(data, type=NetworkReply)

    async def control(self, site: str, request_id: str, body: bytes,
                      cancelled: Callable[[], bool],
                      on_progress: Callable[[int], None]) -> ControlReply:
        """Send a control request and wait for its answer while the site keeps talking (it
        accepts at once and reports progress every few seconds); cancel it at the site when
        ``cancelled()`` turns true."""
        timeout = float(self.section.request_timeout)
        pending = await self._send(site, subj.CONTROL, request_id, body, on_progress)
        cancel_sent = False
        try:
            while True:
                if cancelled() and not cancel_sent and self.nc is not None:
                    cancel_sent = True
                    await self.nc.publish(subj.subject(site, subj.CANCEL),
                                          encoder.encode({"id": request_id}))
                with contextlib.suppress(TimeoutError):
                    data = await asyncio.wait_for(asyncio.shield(pending.future), 0.25)
                    return msgspec.json.decode(data, type=ControlReply)
                silent = time.monotonic() - pending.last_news
                if silent > timeout:
                    if pending.accepted:
                        raise SiteSilent(f"it accepted the task, then said nothing for "
                                         f"{timeout:g} s", accepted=True)
                    raise SiteSilent(f"no answer within {timeout:g} s", accepted=False)
        finally:
            self._give_up(pending)

    async def _on_task_event(self, msg: Msg) -> None:
        decoded = self._decode(msg, TaskEvent)
        if decoded is None:
            return
        view, event = decoded
        pending = self.pending.get((view.name, event.id))
        if pending is None:
            return
        pending.last_news = time.monotonic()
        pending.accepted = True
        pending.done = event.done
        if pending.on_progress is not None:
            pending.on_progress(event.done)

    async def _on_reply(self, msg: Msg) -> None:
        parts = msg.subject.split(".")
        if len(parts) < 5:
            return
        site, request_id = parts[1], parts[4]
        pending = self.pending.get((site, request_id))
        status = (msg.headers or {}).get("Status")
        if pending is not None:
            if pending.future.done():
                return
            if status == "503":
                pending.future.set_exception(SiteUnreachable(
                    "no agent of this site is connected"))
            else:
                pending.future.set_result(msg.data)
            return
        if status == "503":
            return
        self.stats.late_answers += 1
        kind, given_up = self.abandoned.get((site, request_id), ("?", 0.0))
        self.hub.record_late(site, request_id, kind, given_up, msg.data)
