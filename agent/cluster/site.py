"""The site's side: publish what this agent knows, answer the hub's requests for this site.

A site agent keeps doing everything it does alone; :class:`SiteLink` only adds a NATS link
beside it (a service input, so ``[cluster]`` edits restart the link and nothing else):

* after every sweep, the inventory's changes (:class:`~webbo.agent.cluster.wire.InventoryMsg`)
  and every miner's compact state (:class:`~webbo.agent.cluster.wire.StateMsg`, in parts);
* every ``heartbeat``: a heartbeat (inventory and network revisions, so a hub that missed
  something asks for a snapshot), and the meters' live values;
* alerts, handed over by whatever alert engine the agent runs (:class:`AlertSource`) or by
  :meth:`SiteLink.publish_alert`;
* with JetStream on, state and alerts go into the site's stream, so what is published while the
  hub is away reaches it later, in order.

Requests for this site run through the agent's own paths: a control task through its
:class:`~webbo.agent.fleet.control.Controller` (same concurrency bound, same safety rules, same
audit log, the hub's user named in it), a network change through the same set-network use case
as its own UI. A request id is run at most once: asked again, the site answers what it answered
(or, while it runs, nothing new).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError, OutboundBufferLimitError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from webbo.agent import __version__
from webbo.agent.cluster import subjects as subj
from webbo.agent.cluster.config import ClusterSection, describe_settings
from webbo.agent.cluster.connect import connect_forever
from webbo.agent.cluster.wire import (
    STATE_PART,
    AlertMsg,
    ControlReply,
    ControlRequest,
    Heartbeat,
    InventoryMsg,
    MetersMsg,
    NetworkReply,
    NetworkRequest,
    PingReply,
    StateMsg,
    TaskEvent,
    device_info,
    encoder,
    info_key,
    state_of,
)
from webbo.agent.core import network
from webbo.agent.core.config import Config, ConfigError, config_key
from webbo.agent.core.contract import ConfigEdits, CoreInput, PluginContext, SerialBackend, Shared
from webbo.agent.core.tasks import Task, TaskService, TaskStatus
from webbo.agent.fleet.control import Controller
from webbo.agent.fleet.discovery import MinerFleet
from webbo.agent.fleet.driver import Action
from webbo.agent.fleet.pools import PoolSpec
from webbo.agent.fleet.selectors import SelectionError, Selector

log = structlog.get_logger("webbo.cluster.site")

__all__ = ["AlertSource", "SiteLink"]

TICK = 0.25
"""How often the link looks for a finished sweep and for alerts to send."""
REMEMBERED_REQUESTS = 1000
PING_EVERY = 6
"""Heartbeats between two checks that no other agent uses this site's name."""


@runtime_checkable
class AlertSource(Protocol):
    """What the site link needs of an alert engine (the alerts room provides it; the link finds
    it by this type, ``shared.find(AlertSource)``): a way to be told of every alert event —
    fired, resolved, repeated — as a plain JSON-ready mapping. The listener is quick and never
    raises."""

    def add_alert_listener(self, listener: Callable[[Mapping[str, Any]], None]) -> None: ...


@dataclass
class LinkStats:
    connected: bool = False
    messages: int = 0
    """Messages published."""
    dropped: int = 0
    """Messages that could not even be buffered (the outage buffer was full)."""
    state_messages: int = 0
    alerts: int = 0
    control_requests: int = 0
    network_requests: int = 0
    snapshots: int = 0
    disconnects: int = 0


class SiteLink:
    """The ``SiteLink`` service: one per agent; while ``[cluster] site`` is set it runs a
    :class:`SiteSession` (the NATS link of the settings in force)."""

    def __init__(self, context: PluginContext) -> None:
        self.shared: Shared = context.shared
        self.edits: ConfigEdits | None = context.edits
        self.config: Config = context.config
        self.instance = uuid.uuid4().hex[:16]
        self.host = socket.gethostname()
        self.started_at = time.time()
        self.seq = 0
        """Numbers state and alert messages of this instance (the hub skips what it has)."""
        self.rev = 0
        self.published: dict[str, tuple[Any, ...]] = {}
        """What the hub was told of each device (to publish only changes)."""
        self.alerts: deque[AlertMsg] = deque(maxlen=10_000)
        self.requests: OrderedDict[str, ControlReply | None] = OrderedDict()
        """Control requests seen, with their answer (None while running)."""
        self.running: dict[str, Task] = {}
        self.conflict = ""
        self.stats = LinkStats()
        self.session: SiteSession | None = None
        self._listening = False

    # -- the agent's side ----------------------------------------------------------------------

    def inputs(self, config: Config) -> list[CoreInput]:
        self.config = config
        section = config.section(ClusterSection)
        if not section.enabled:
            return []
        key = b"cluster|" + config_key(section)
        return [(key, "cluster", lambda: SiteSession(self, section))]

    def publish_alert(self, alert: Mapping[str, Any]) -> None:
        """Queue an alert event for the hub (quick; never raises): sent in order, kept in the
        site's stream while the hub is away."""
        try:
            self.alerts.append(AlertMsg(instance=self.instance, seq=0, time=time.time(),
                                        alert=dict(alert)))
        except Exception:
            log.exception("alert not queued")

    def listen_to_alerts(self) -> None:
        if self._listening:
            return
        source = self.shared.find(AlertSource)  # type: ignore[type-abstract]
        if source is not None:
            source.add_alert_listener(self.publish_alert)
            self._listening = True

    def remember(self, request_id: str, reply: ControlReply | None) -> None:
        self.requests[request_id] = reply
        self.requests.move_to_end(request_id)
        while len(self.requests) > REMEMBERED_REQUESTS:
            self.requests.popitem(last=False)

    def status(self) -> dict[str, Any]:
        section = self.config.section(ClusterSection)
        if not section.enabled:
            return {"site": ""}
        session = self.session
        return {"site": section.site, "instance": self.instance, **describe_settings(section),
                "jetstream": bool(session and session.stream), "conflict": self.conflict,
                "inventory_rev": self.rev, "hub_tasks_running": len(self.running),
                **asdict(self.stats)}

    async def close(self) -> None:
        if self.session is not None:
            await self.session.stop()


class SiteSession:
    """The link under one ``[cluster]`` setting: connect, publish, answer; a core input of the
    agent (its ``gather`` does nothing: the link follows the sweeps by itself)."""

    only_when_running = True
    """Not part of ``webbo test`` / ``webbo once``: a one-shot run must not join the cluster."""

    def __init__(self, link: SiteLink, section: ClusterSection) -> None:
        self.link = link
        self.section = section
        self.site = section.site
        self.nc: Client | None = None
        self.stream = ""
        self._task: asyncio.Task[None] | None = None
        self._followers: set[asyncio.Task[None]] = set()
        self._last_sweep = -1
        self._beats = 0
        self._network_rev = ""
        self._network_key = b""

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self.link.session = self
        self._task = asyncio.create_task(self._run(), name=f"site link {self.site}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        for follower in list(self._followers):
            follower.cancel()
        nc, self.nc = self.nc, None
        if nc is not None and nc.is_connected:
            with contextlib.suppress(Exception):
                await self._heartbeat(nc, leaving=True)
                await nc.flush(timeout=1)
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
        if self.link.session is self:
            self.link.session = None
            self.link.stats.connected = False

    async def gather(self, acc: Any) -> None:
        return None

    def internal_fields(self) -> dict[str, Any]:
        s = self.link.stats
        return {"connected": s.connected, "messages": s.messages, "dropped": s.dropped,
                "control_requests": s.control_requests, "disconnects": s.disconnects}

    # -- the link ------------------------------------------------------------------------------

    async def _on_error(self, exc: Exception) -> None:
        log.warning("nats error", site=self.site, error=str(exc))

    async def _on_disconnect(self) -> None:
        self.link.stats.connected = False
        self.link.stats.disconnects += 1
        log.warning("site link down; publishing into the outage buffer", site=self.site)

    async def _on_reconnect(self) -> None:
        self.link.stats.connected = True
        log.info("site link back", site=self.site)
        await self._hello()

    async def _hello(self) -> None:
        """Say this site's name on the shared subject (a hub then listens to its subjects)."""
        if self.nc is not None:
            await self._publish(self.nc, subj.HELLO, encoder.encode(
                {"site": self.site, "instance": self.link.instance}))

    async def _on_discover(self, msg: Msg) -> None:
        await self._hello()

    async def _run(self) -> None:
        section = self.section
        nc = await connect_forever(
            section, name=f"webbo site {self.site}", inbox_prefix=subj.site_inbox(self.site),
            pending_size=section.outage_buffer_mb << 20, on_error=self._on_error,
            on_disconnect=self._on_disconnect, on_reconnect=self._on_reconnect)
        self.nc = nc
        self.link.stats.connected = True
        log.info("site link up", site=self.site, servers=list(section.urls))
        if section.jetstream:
            await self._ensure_stream(nc)
        await self._check_name(nc)
        site = self.site
        await nc.subscribe(subj.subject(site, subj.CONTROL), cb=self._on_control)
        await nc.subscribe(subj.subject(site, subj.CANCEL), cb=self._on_cancel)
        await nc.subscribe(subj.subject(site, subj.NETWORK), cb=self._on_network)
        await nc.subscribe(subj.subject(site, subj.SNAPSHOT), cb=self._on_snapshot)
        await nc.subscribe(subj.subject(site, subj.PING), cb=self._on_ping)
        await nc.subscribe(subj.DISCOVER, cb=self._on_discover)
        await asyncio.sleep(0)
        await nc.flush()
        await self._hello()
        self.link.listen_to_alerts()
        next_beat = 0.0
        while True:
            try:
                await self._tick(nc)
                now = time.monotonic()
                if now >= next_beat:
                    next_beat = now + float(section.heartbeat)
                    await self._beat(nc)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("site link tick failed", site=self.site)
            await asyncio.sleep(TICK)

    async def _ensure_stream(self, nc: Client) -> None:
        section = self.section
        name = subj.stream_name(self.site)
        config = StreamConfig(
            name=name, subjects=[subj.subject(self.site, subj.STATE),
                                 subj.subject(self.site, subj.ALERTS)],
            storage=StorageType.FILE, retention=RetentionPolicy.LIMITS,
            max_age=float(section.keep), max_bytes=section.keep_mb << 20,
            discard=DiscardPolicy.OLD, duplicate_window=120.0)
        js = nc.jetstream(domain=section.jetstream_domain or None)
        for attempt in range(5):
            try:
                try:
                    await js.add_stream(config)
                except Exception as exc:
                    if "already in use" not in str(exc):
                        raise
                    await js.update_stream(config)
                self.stream = name
                log.info("site stream ready", site=self.site, stream=name,
                         domain=section.jetstream_domain or "(the server's own)")
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cannot set up the site's JetStream stream", site=self.site,
                            stream=name, error=str(exc) or type(exc).__name__,
                            attempt=attempt + 1)
                await asyncio.sleep(1.0)
        log.error("running without JetStream: what is published while the hub is away is "
                  "lost (see docs/deploy.md)", site=self.site)

    async def _check_name(self, nc: Client) -> None:
        """Ask whether another live agent answers for this site's name."""
        body = encoder.encode(PingReply(instance=self.link.instance, host=self.link.host,
                                        started_at=self.link.started_at))
        try:
            answer = await nc.request(subj.subject(self.site, subj.PING), body, timeout=1.0)
        except (TimeoutError, NoRespondersError, NatsTimeout):
            if self.link.conflict:
                log.info("site name no longer in conflict", site=self.site)
            self.link.conflict = ""
            return
        other = msgspec.json.decode(answer.data, type=PingReply)
        self._conflict(other)

    def _conflict(self, other: PingReply) -> None:
        text = (f"two agents use the site name {self.site!r}: this one and one on host "
                f"{other.host} started "
                f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(other.started_at))} "
                f"(instance {other.instance}); give each site its own [cluster] site")
        if text != self.link.conflict:
            log.error("site name conflict", site=self.site, other_host=other.host,
                      other_instance=other.instance)
        self.link.conflict = text

    async def _publish(self, nc: Client, subject: str, data: bytes,
                       msg_id: str | None = None) -> bool:
        try:
            await nc.publish(subject, data, headers={"Nats-Msg-Id": msg_id} if msg_id else None)
        except OutboundBufferLimitError:
            if not self.link.stats.dropped:
                log.error("outage buffer full: messages are dropped until the link is back",
                          site=self.site, buffer_mb=self.section.outage_buffer_mb)
            self.link.stats.dropped += 1
            return False
        self.link.stats.messages += 1
        return True

    # -- what the site publishes ---------------------------------------------------------------

    async def _tick(self, nc: Client) -> None:
        fleet = self.link.shared.find(MinerFleet)
        if fleet is not None and fleet.sweeps != self._last_sweep:
            self._last_sweep = fleet.sweeps
            await self._publish_inventory(nc, fleet)
            await self._publish_state(nc, fleet)
        alerts = self.link.alerts
        while alerts:
            alert = alerts[0]
            if not alert.seq:  # numbered when sent: the site's order is the order of sending
                self.link.seq += 1
                alert.seq = self.link.seq
            if not await self._publish(nc, subj.subject(self.site, subj.ALERTS),
                                       encoder.encode(alert), self._msg_id(alert.seq)):
                break
            alerts.popleft()
            self.link.stats.alerts += 1

    def _msg_id(self, seq: int) -> str | None:
        return f"{self.link.instance}:{seq}" if self.stream else None

    async def _publish_inventory(self, nc: Client, fleet: MinerFleet) -> None:
        link = self.link
        devices = fleet.inventory.devices()
        current = {d.mac: info_key(d) for d in devices}
        published = link.published
        changed = [d for d in devices if published.get(d.mac) != current[d.mac]]
        removed = [mac for mac in published if mac not in current]
        link.published = current
        if not changed and not removed:
            return
        for start in range(0, max(len(changed), 1), STATE_PART):
            base, link.rev = link.rev, link.rev + 1
            part = changed[start:start + STATE_PART]
            msg = InventoryMsg(instance=link.instance, rev=link.rev, base=base,
                               devices=[device_info(d) for d in part],
                               removed=removed if start == 0 else [])
            await self._publish(nc, subj.subject(self.site, subj.INVENTORY), encoder.encode(msg))

    async def _publish_state(self, nc: Client, fleet: MinerFleet) -> None:
        link = self.link
        states = [state_of(d) for d in fleet.inventory.devices()]
        parts = max(1, -(-len(states) // STATE_PART))
        now = time.time()
        for part in range(parts):
            link.seq += 1
            msg = StateMsg(instance=link.instance, seq=link.seq, sweep=fleet.sweeps, time=now,
                           part=part, parts=parts,
                           miners=states[part * STATE_PART:(part + 1) * STATE_PART])
            if await self._publish(nc, subj.subject(self.site, subj.STATE), encoder.encode(msg),
                                   self._msg_id(link.seq)):
                link.stats.state_messages += 1

    def _network(self) -> tuple[dict[str, Any], str]:
        edits = self.link.edits
        config = edits.config if edits is not None else self.link.config
        key = config_key(config.network)
        if key != self._network_key:
            self._network_key = key
            self._network_rev = hashlib.sha1(key).hexdigest()[:16]
        return network.network_payload(config.network), self._network_rev

    async def _beat(self, nc: Client) -> None:
        self._beats += 1
        if self._beats % PING_EVERY == 0:
            await self._check_name(nc)
        if self._beats < 10 or self._beats % PING_EVERY == 0:
            await self._hello()
        await self._heartbeat(nc)
        backend = self.link.shared.find(SerialBackend)  # type: ignore[type-abstract]
        if backend is not None:
            await self._publish(nc, subj.subject(self.site, subj.METERS),
                                encoder.encode(MetersMsg(instance=self.link.instance,
                                                         time=time.time(),
                                                         meters=meters_of(backend))))
        for request_id, task in list(self.link.running.items()):
            await self._task_event(nc, request_id, task, "progress")

    async def _heartbeat(self, nc: Client, leaving: bool = False) -> None:
        fleet = self.link.shared.find(MinerFleet)
        status = fleet.inventory.status() if fleet is not None else {"devices": 0,
                                                                      "by_state": {}}
        _, rev = self._network()
        beat = Heartbeat(site=self.site, instance=self.link.instance, host=self.link.host,
                         version=__version__, started_at=self.link.started_at, time=time.time(),
                         interval=float(self.section.heartbeat), inventory_rev=self.link.rev,
                         network_rev=rev, miners=status["devices"],
                         by_state={k: v for k, v in status["by_state"].items() if v},
                         stream=self.stream, domain=self.section.jetstream_domain,
                         conflict=self.link.conflict, leaving=leaving)
        await self._publish(nc, subj.subject(self.site, subj.HEARTBEAT), encoder.encode(beat))

    async def _task_event(self, nc: Client, request_id: str, task: Task, event: str,
                          hub: str = "") -> None:
        msg = TaskEvent(id=request_id, hub=hub, event=event, devices=task.devices,
                        done=task.done, status=task.status.value, summary=task.summary)
        await self._publish(nc, subj.subject(self.site, subj.TASKS), encoder.encode(msg))

    # -- requests ------------------------------------------------------------------------------

    def _ours(self, reply: str) -> bool:
        """Replies go into this site's namespace only (its credentials allow nothing else)."""
        return bool(reply) and reply.startswith(f"{subj.PREFIX}.{self.site}.{subj.REPLY}.")

    async def _answer(self, msg: Msg, body: msgspec.Struct) -> None:
        if self.nc is not None and self._ours(msg.reply):
            await self._publish(self.nc, msg.reply, encoder.encode(body))

    async def _on_control(self, msg: Msg) -> None:
        link = self.link
        link.stats.control_requests += 1
        try:
            req = msgspec.json.decode(msg.data, type=ControlRequest)
        except msgspec.MsgspecError as exc:
            log.warning("bad control request", site=self.site, error=str(exc))
            return
        if req.id in link.requests:
            answered = link.requests[req.id]
            log.warning("control request seen before: not run again", site=self.site,
                        request=req.id, answered=answered is not None)
            if answered is not None:
                await self._answer(msg, answered)
            return
        link.remember(req.id, None)
        try:
            task = self._start(req)
        except Exception as exc:  # a bad request or a bug: refused, said so, nothing started
            if not isinstance(exc, SelectionError | ValueError | TypeError | LookupError):
                log.exception("control request failed", site=self.site, request=req.id)
            reply = ControlReply(id=req.id, status="refused", error=str(exc))
            link.remember(req.id, reply)
            await self._answer(msg, reply)
            return
        link.running[req.id] = task
        if self.nc is not None:
            await self._task_event(self.nc, req.id, task, "accepted", req.hub)
        follower = asyncio.create_task(self._follow(req, msg, task))
        self._followers.add(follower)
        follower.add_done_callback(self._followers.discard)

    def _start(self, req: ControlRequest) -> Task:
        controller = self.link.shared.find(Controller)
        if controller is None:
            raise LookupError("miner control is not loaded at this site")
        pools = None
        if req.pools is not None:
            pools = [None if p is None else PoolSpec(p["address"], p["worker"], p["passwd"],
                                                      p.get("suffix_type", "no_change"))  # type: ignore[arg-type]
                     for p in req.pools]
        return controller.start_action(req.method, f"{req.who} via hub {req.hub}",
                                       Selector(macs=tuple(req.macs)), Action(req.action),
                                       req.params, pools=pools)

    async def _follow(self, req: ControlRequest, msg: Msg, task: Task) -> None:
        handle = task.handle
        assert handle is not None
        every = max(0.2, req.progress_every)
        while not handle.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(handle), every)
            if not handle.done() and self.nc is not None:
                await self._task_event(self.nc, req.id, task, "progress", req.hub)
        if task.status == TaskStatus.SUCCESS:
            reply = ControlReply(id=req.id, status=task.status.value, result=task.result)
        else:
            reply = ControlReply(id=req.id, status=task.status.value,
                                 error=str(task.result or task.status.value))
        self.link.remember(req.id, reply)
        self.link.running.pop(req.id, None)
        await self._answer(msg, reply)
        if self.nc is not None:
            await self._task_event(self.nc, req.id, task, "done", req.hub)

    async def _on_cancel(self, msg: Msg) -> None:
        try:
            request_id = msgspec.json.decode(msg.data, type=dict[str, str]).get("id", "")
        except msgspec.MsgspecError:
            return
        task = self.link.running.get(request_id)
        if task is not None:
            log.info("hub cancelled a task", site=self.site, request=request_id)
            task.cancel_requested = True

    async def _on_network(self, msg: Msg) -> None:
        self.link.stats.network_requests += 1
        try:
            req = msgspec.json.decode(msg.data, type=NetworkRequest)
        except msgspec.MsgspecError as exc:
            await self._answer(msg, NetworkReply(ok=False, error=f"bad request: {exc}"))
            return
        try:
            reply = await self._network_op(req)
        except ConfigError as exc:
            errors = [(e.path, e.reason) for e in getattr(exc, "errors", None) or [exc]]
            reply = NetworkReply(ok=False, errors=errors, error=str(exc))
        except Exception as exc:  # answer rather than leave the hub waiting
            log.exception("network request failed", site=self.site, op=req.op)
            reply = NetworkReply(ok=False, error=f"internal error at the site: {exc!r}")
        await self._answer(msg, reply)

    async def _network_op(self, req: NetworkRequest) -> NetworkReply:
        edits = self.link.edits
        if req.op == "get" or edits is None:
            payload, _ = self._network()
            if req.op != "get":
                return NetworkReply(ok=False, network=payload,
                                    error="this agent cannot change its config")
            return NetworkReply(ok=True, network=payload)
        items = network.network_items(req.groups)
        if req.op == "check":
            edits.check(network.network_edit(items))
            return NetworkReply(ok=True)
        if req.op != "apply":
            return NetworkReply(ok=False, error=f"unknown op {req.op!r}")
        tasks = self.link.shared.find(TaskService)
        if tasks is None:
            return NetworkReply(ok=False, error="this agent runs no tasks")
        task, _config = network.set_network(edits, tasks, f"{req.who} via hub {req.hub}",
                                            items, via=f"hub {req.hub}")
        assert task.handle is not None
        await task.handle
        if task.status != TaskStatus.SUCCESS:
            return NetworkReply(ok=False, error=str(task.result))
        payload, _ = self._network()
        return NetworkReply(ok=True, network=payload)

    async def _on_snapshot(self, msg: Msg) -> None:
        nc, fleet = self.nc, self.link.shared.find(MinerFleet)
        if nc is None:
            return
        self.link.stats.snapshots += 1
        devices = fleet.inventory.devices() if fleet is not None else []
        self.link.published = {d.mac: info_key(d) for d in devices}
        snapshot = uuid.uuid4().hex[:12]
        parts = max(1, -(-len(devices) // STATE_PART))
        for part in range(parts):
            chunk = devices[part * STATE_PART:(part + 1) * STATE_PART]
            body = InventoryMsg(instance=self.link.instance, rev=self.link.rev,
                                devices=[device_info(d) for d in chunk], snapshot=snapshot,
                                part=part, parts=parts)
            await self._publish(nc, subj.subject(self.site, subj.INVENTORY), encoder.encode(body))
        if fleet is not None:  # the hub has the inventory now: its state follows at once
            await self._publish_state(nc, fleet)

    async def _on_ping(self, msg: Msg) -> None:
        try:
            other = msgspec.json.decode(msg.data, type=PingReply)
        except msgspec.MsgspecError:
            return
        if other.instance == self.link.instance:
            return
        self._conflict(other)
        if self.nc is not None and msg.reply:
            await self.nc.publish(msg.reply, encoder.encode(PingReply(
                instance=self.link.instance, host=self.link.host,
                started_at=self.link.started_at)))


def meters_of(backend: SerialBackend) -> list[dict[str, Any]]:
    """The meters as the Meters page shows them: the configured device with its live state."""
    try:
        live = {m.get("serial_number"): m for m in backend.meters()}
        return [{"state": "new", "error": "", "values": {}, "updated_at": None, **device,
                 **live.get(device["serial_number"], {})} for device in backend.get_devices()]
    except Exception:
        log.exception("meters not read for the hub")
        return []
