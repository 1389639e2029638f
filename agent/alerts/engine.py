"""The alert engine: the agent's service that turns what it reads into alerts and messages.

It evaluates every enabled rule right after each sweep of the miner fleet (the fleet calls its
``after_sweep`` listeners; the evaluation is scheduled after the sweep ends, off its path), and
on its own input's tick when there is no sweep (meters only, or reported alerts only). An
evaluation is one tight scan per rule (:mod:`.conditions`) plus the state machine of the few
alerts that change (:mod:`.state`); ``bench/alerts.py`` measures it at 10,000 miners.

Other rooms raise and resolve alerts of their own through :meth:`AlertEngine.report` (power
control: ``feed_over_budget``, ``meter_stale``); those go through the same state machine,
silences, grouping and delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import structlog

from webbo.agent.alerts.conditions import CONDITIONS, Condition, Limits, Memory
from webbo.agent.alerts.config import AlertsSection, RuleConfig
from webbo.agent.alerts.notify import Notifier
from webbo.agent.alerts.remediation import Remediator
from webbo.agent.alerts.silences import Silence, SilenceStore, make_silence
from webbo.agent.alerts.state import Alert, SavedState
from webbo.agent.core.config import Config, config_key
from webbo.agent.core.contract import Accumulator, CoreInput, PluginContext, SerialBackend
from webbo.agent.core.files import write_atomically
from webbo.agent.core.metric import Metric, now_ns
from webbo.agent.fleet.control import Controller
from webbo.agent.fleet.discovery import MinerFleet
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.model import normalise_mac

log = structlog.get_logger("webbo.alerts")

__all__ = ["STATE_FILE", "AlertEngine", "AlertsInput", "CompiledRule"]

STATE_FILE = "alerts.json"
MEMORY_FILE = "alerts-memory.json"
MEASUREMENT = "alert"
STATEFUL = frozenset({"miner_rebooted", "board_dead", "rejected_high"})


@dataclass
class CompiledRule:
    """A rule ready to scan: its condition, limits and scope resolved against [network]."""

    rule: RuleConfig
    cond: Condition
    tight: Limits
    loose: Limits
    groups: frozenset[str] = frozenset()
    ranges: frozenset[str] = frozenset()
    macs: frozenset[str] = frozenset()
    meters: frozenset[str] = frozenset()

    @property
    def everything(self) -> bool:
        return not (self.groups or self.ranges or self.macs or self.meters)

    def has(self, device: Device) -> bool:
        """Scope check for one miner."""
        return (self.everything or device.range_id in self.ranges
                or device.group_id in self.groups or device.mac in self.macs)

    def covers(self, labels: dict[str, str], key: str) -> bool:
        """Scope check for one reported or meter alert."""
        if self.everything:
            return True
        return (key in self.meters or key in self.macs
                or bool({labels.get("group_id"), labels.get("group")} & self.groups)
                or bool({labels.get("range_id"), labels.get("range")} & self.ranges))


def compile_rule(rule: RuleConfig, config: Config) -> CompiledRule:
    cond = CONDITIONS[rule.condition]
    tight, loose = cond.limits(rule.threshold, rule.hysteresis, rule.low, rule.high)
    groups: set[str] = set()
    ranges: set[str] = set()
    for g in config.network.ip_range_groups:
        if g.name in rule.groups or g.uuid in rule.groups:
            groups.add(g.uuid)
        for r in g.ip_ranges:
            if r.name in rule.ranges or r.uuid in rule.ranges:
                ranges.add(r.uuid)
    macs = {m for m in (normalise_mac(x) for x in rule.macs) if m}
    return CompiledRule(rule, cond, tight, loose, frozenset(groups), frozenset(ranges),
                        frozenset(macs), frozenset(rule.meters))


@dataclass
class Reported:
    """The latest word of a reporter on one key."""

    firing: bool
    summary: str
    labels: dict[str, str]
    value: float | None
    severity: str | None
    at: float


@dataclass
class EngineStats:
    evaluations: int = 0
    evaluation_time_s: float = 0.0
    evaluation_cpu_s: float = 0.0
    fired: int = 0
    resolved: int = 0
    last_evaluation_at: float = 0.0


def miner_labels(d: Device) -> dict[str, str]:
    return {"mac": d.mac, "ip": d.ip, "model": f"{d.make} {d.model}".strip(),
            "group": d.group, "range": d.range, "group_id": d.group_id, "range_id": d.range_id}


def meter_labels(m: dict[str, Any]) -> dict[str, str]:
    return {"serial": str(m.get("serial_number", "")), "model": str(m.get("device_model", "")),
            "port": str(m.get("port", ""))}


class AlertEngine:
    """The ``alerts`` service (found with ``agent.service(AlertEngine)``)."""

    def __init__(self, context: PluginContext) -> None:
        self.context = context
        self.config = context.config
        self.section = context.config.section(AlertsSection)
        persistent = bool(context.config.path)
        self.path = context.state_dir / STATE_FILE if persistent else None
        self.silences = SilenceStore(context.state_dir if persistent else None)
        self.rules: dict[str, CompiledRule] = {}
        self.active: dict[str, dict[str, Alert]] = {}
        """rule name → key → the pending or firing alert."""
        self.history: deque[dict[str, Any]] = deque(maxlen=self.section.history_limit)
        self.fires: dict[str, list[float]] = {}
        self.memory = Memory()
        self.reported: dict[str, dict[str, Reported]] = {}
        """condition → key → the reporter's latest word."""
        self.notifier = Notifier(self._rule, lambda rule: CONDITIONS[rule.condition])
        self.remediator = Remediator(self._controller, lambda: self.section.remediation_per_minute,
                                     self._mark)
        self.stats = EngineStats()
        self.events: list[Metric] = []
        """``alert`` points not yet handed to the outputs (the input's next gather)."""
        self._loaded = False
        self._dirty = False
        self._saving: asyncio.Task[None] | None = None
        self._fleet_hooked = False
        self._started = False
        self._watched_since: dict[str, float] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._index: _Index | None = None
        self._listeners: list[Callable[[Mapping[str, Any]], None]] = []
        self._memory_saved_at = 0.0
        self.started_at = time.time()

    # -- configuration -------------------------------------------------------------------------

    def _rule(self, name: str) -> RuleConfig | None:
        compiled = self.rules.get(name)
        return compiled.rule if compiled is not None else None

    def configure(self, config: Config) -> None:
        """Adopt a (re)loaded config: compile the rules, rebuild changed channels. Alerts of a
        rule that is gone or disabled end quietly (recorded in the history)."""
        self.load()
        self.config = config
        self.section = section = config.section(AlertsSection)
        if self.history.maxlen != section.history_limit:
            self.history = deque(self.history, maxlen=section.history_limit)
        self.rules = {r.name: compile_rule(r, config) for r in section.rules
                      if r.enabled and section.enabled}
        now = time.time()
        for name in [n for n in self.active if n not in self.rules]:
            for alert in self.active.pop(name).values():
                if alert.status == "firing":
                    self._record("ended", alert, now, note="rule removed or disabled")
            self._mark()
        for compiled in self.rules.values():
            bucket = self.active.setdefault(compiled.rule.name, {})
            for alert in bucket.values():
                alert.severity = compiled.rule.severity
        for channel in self.notifier.configure(section):
            with contextlib.suppress(RuntimeError):  # no loop: the channel never started
                task = asyncio.get_running_loop().create_task(channel.stop())
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    def inputs(self, config: Config) -> list[CoreInput]:
        """The engine's own input: evaluations when there is no sweep, the ``alert`` points
        and the self-metrics. Also hooks the fleet's sweeps (once)."""
        self.configure(config)
        if not self.section.enabled or not self.rules:
            return []  # nothing to watch (a channel test still works: it starts the channel)
        fleet = self.context.shared.find(MinerFleet)
        if fleet is not None and not self._fleet_hooked:
            fleet.after_sweep.append(self._swept)
            self._fleet_hooked = True
        key = b"alerts|" + config_key([config.agent.interval])
        return [(key, "alerts", lambda: AlertsInput(self))]

    def start(self) -> None:
        if not self._started:
            self._started = True
            self.notifier.start()

    # -- evaluation ----------------------------------------------------------------------------

    def _swept(self) -> None:
        """The fleet finished a sweep: evaluate right after it (not inside it)."""
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_soon(self.evaluate_safely)

    def evaluate_safely(self) -> None:
        try:
            self.evaluate()
        except Exception:
            log.exception("alert evaluation failed")

    def _fleet(self) -> MinerFleet | None:
        return self.context.shared.find(MinerFleet)

    def _controller(self) -> Controller | None:
        return self.context.shared.find(Controller)

    def _meters(self, now: float) -> list[dict[str, Any]]:
        backend = self.context.shared.find(SerialBackend)  # type: ignore[type-abstract]
        if backend is None:
            return []
        try:
            meters = [dict(m) for m in backend.meters()]
        except Exception:
            log.exception("meter backend failed")
            return []
        for m in meters:
            serial = str(m.get("serial_number", ""))
            m["watched_since"] = self._watched_since.setdefault(serial, now)
        return meters

    def evaluate(self, now: float | None = None) -> None:
        """Run every rule once; turn the alerts that change; hand on what must be sent."""
        started, cpu = time.perf_counter(), time.process_time()
        now = time.time() if now is None else now
        fleet = self._fleet()
        devices = fleet.inventory.devices() if fleet is not None else []
        rules = list(self.rules.values())
        if any(r.cond.name in STATEFUL for r in rules):
            self.memory.observe(devices, now)
        by_mac = fleet.inventory.by_mac if fleet is not None else {}
        index = self._index_for(devices)
        meters: list[dict[str, Any]] = []
        if any(r.cond.kind == "meter" for r in rules):
            meters = self._meters(now)
        by_serial = {str(m.get("serial_number", "")): m for m in meters}
        silences = self.silences.active(now)
        shared: dict[str, list[CompiledRule]] = {}
        for compiled in rules:
            kind = compiled.cond.kind
            if kind == "reported":
                self._step_reported(compiled, now, silences)
            elif kind == "miner" and sum(r.cond is compiled.cond for r in rules) > 1:
                shared.setdefault(compiled.cond.name, []).append(compiled)
            else:
                if kind == "miner":
                    subjects: list[Any] = index.scope(compiled)
                    lookup: dict[str, Any] = by_mac
                else:
                    subjects = [m for m in meters if compiled.everything or compiled.covers(
                        {}, str(m.get("serial_number", "")))]
                    lookup = by_serial
                assert compiled.cond.scan is not None
                hits = compiled.cond.scan(subjects, compiled.loose, now, self.memory)
                self._step(compiled, hits, lookup, now, silences)
        for group in shared.values():
            self._step_shared(group, devices, by_mac, now, silences)
        self._after(now, silences)
        self.stats.evaluations += 1
        self.stats.evaluation_time_s = time.perf_counter() - started
        self.stats.evaluation_cpu_s = time.process_time() - cpu
        self.stats.last_evaluation_at = now
        if len(by_mac) and self.stats.evaluations % 100 == 0:
            self.memory.forget(set(by_mac))

    INDEX_EVERY = 10
    """The scoped rules' device lists are rebuilt every this many evaluations (and when the
    inventory or the config changes): a miner that moved racks is in its new scope within
    that many cycles."""

    def _index_for(self, devices: list[Device]) -> _Index:
        key = (len(devices), id(self.config))
        index = self._index
        if index is None or index.key != key or index.uses >= self.INDEX_EVERY:
            index = self._index = _Index(devices, key)
        index.uses += 1
        index.devices = devices
        return index

    def _step_shared(self, group: list[CompiledRule], devices: list[Device],
                     by_mac: dict[str, Any], now: float, silences: list[Silence]) -> None:
        """Several rules of one miner condition: one scan with the widest limit, then each
        rule keeps the hits in its scope and its own limit (10 rack-scoped temperature rules
        cost one pass over the farm, not ten)."""
        cond = group[0].cond
        assert cond.scan is not None
        hits = cond.scan(devices, cond.widest([r.loose for r in group]), now, self.memory)
        holds = cond.holds
        for compiled in group:
            loose = compiled.loose
            if compiled.everything:
                mine = [h for h in hits if holds(h[1], loose)]
            else:
                has = compiled.has
                mine = [h for h in hits if holds(h[1], loose) and has(h[0])]
            self._step(compiled, mine, by_mac, now, silences)

    def _step(self, compiled: CompiledRule, hits: list[tuple[Any, float]],
              lookup: dict[str, Any], now: float, silences: list[Silence]) -> None:
        """The state machine of one rule's alerts for one evaluation."""
        rule, cond = compiled.rule, compiled.cond
        bucket = self.active.setdefault(rule.name, {})
        held: set[str] = set()
        miner = cond.kind == "miner"
        wait = float(rule.for_)
        for subject, value in hits:
            key = subject.mac if miner else str(subject.get("serial_number", ""))
            alert = bucket.get(key)
            if alert is None:
                if not cond.holds(value, compiled.tight):
                    continue
                alert = bucket[key] = Alert(rule.name, key, cond.kind, rule.severity, now)
                alert.labels = miner_labels(subject) if miner else meter_labels(subject)
                self._mark()
            elif miner and (alert.labels.get("ip") != subject.ip
                            or alert.labels.get("range_id") != subject.range_id):
                alert.labels = miner_labels(subject)  # moved (DHCP) or re-placed
            held.add(key)
            alert.value = value
            alert.clear_since = 0.0
            if alert.status == "pending" and now - alert.since >= wait:
                self._fire(alert, now, silences)
        for key in [k for k in bucket if k not in held]:
            alert = bucket[key]
            subject = lookup.get(key)
            if subject is not None and cond.unknown(subject):
                continue
            self._clear(bucket, alert, now, gone=subject is None)

    def _clear(self, bucket: dict[str, Alert], alert: Alert, now: float, gone: bool = False
               ) -> None:
        """The condition no longer holds for ``alert`` (or its device is gone)."""
        if alert.status == "pending":
            del bucket[alert.key]
            self._mark()
            return
        if not alert.clear_since:
            alert.clear_since = now
        wait = float(self.section.flap_window) if alert.flapping else 0.0
        if gone or now - alert.clear_since >= wait:
            del bucket[alert.key]
            self._resolve(alert, now, note="device gone" if gone else "")

    def _fire(self, alert: Alert, now: float, silences: list[Silence]) -> None:
        alert.status = "firing"
        alert.fired_at = alert.changed_at = now
        flap_key = f"{alert.rule}\0{alert.key}"
        window = float(self.section.flap_window)
        recent = [t for t in self.fires.get(flap_key, []) if now - t < window] + [now]
        self.fires[flap_key] = recent
        alert.flapping = len(recent) >= self.section.flap_threshold
        alert.silenced_by = self.silences.matching(alert.rule, alert.key, alert.labels,
                                                    silences)
        self.stats.fired += 1
        self._record("firing", alert, now)
        if not alert.silenced_by:
            self._notify("firing", alert, now)
        self._mark()

    def _resolve(self, alert: Alert, now: float, note: str = "") -> None:
        alert.changed_at = now
        self.stats.resolved += 1
        self._record("resolved", alert, now, note=note)
        if alert.notified and self.section.send_resolved and not alert.silenced_by:
            self.notifier.add("resolved", alert, now)
        self._mark()

    def _notify(self, kind: str, alert: Alert, now: float) -> None:
        alert.notified = True
        alert.last_notified = now
        self.notifier.add(kind, alert, now)
        if kind == "repeat" and self._listeners:
            self._tell(self._event("repeat", alert, now))

    def _after(self, now: float, silences: list[Silence]) -> None:
        """Silences that began or ended, reminders, remediation."""
        default_repeat = float(self.section.repeat_interval)
        for name, bucket in self.active.items():
            compiled = self.rules.get(name)
            if compiled is None:
                continue
            rule = compiled.rule
            repeat = float(rule.repeat_interval or default_repeat)
            for alert in bucket.values():
                if alert.status != "firing":
                    continue
                silenced = self.silences.matching(name, alert.key, alert.labels, silences)
                if silenced != alert.silenced_by:
                    alert.silenced_by = silenced
                    self._mark()
                if silenced:
                    continue
                if not alert.notified:
                    alert.changed_at = now
                    self._notify("firing", alert, now)
                    self._mark()
                elif alert.clear_since == 0 and now - alert.last_notified >= repeat:
                    alert.changed_at = now
                    self._notify("repeat", alert, now)
                    self._mark()
                if rule.action and alert.clear_since == 0:
                    self.remediator.consider(alert, rule, now)
        self._save_soon()

    # -- reported alerts -----------------------------------------------------------------------

    def report(self, rule: str, key: str, firing: bool, summary: str = "",
               labels: dict[str, str] | None = None, severity: str | None = None,
               value: float | None = None) -> int:
        """Raise (``firing=True``) or clear an alert that another room watches itself.

        ``rule`` names a configured rule or a condition (``feed_over_budget``,
        ``meter_stale``): every enabled rule with that condition whose scope covers the key
        takes it, through the same state machine (the rule's ``for``), silences, grouping and
        delivery. ``key`` identifies the thing (a feed's name); ``summary`` is the message's
        line for it; ``labels`` may carry ``name``, ``group``, ``range`` for scope and
        grouping. Returns how many rules took it (0: no rule watches this; nothing happens).
        Cheap and never raising: callable from a control loop."""
        now = time.time()
        targets = [c for c in self.rules.values()
                   if c.cond.kind == "reported" and rule in (c.rule.name, c.cond.name)]
        labels = dict(labels or {})
        taken = 0
        for compiled in targets:
            if not compiled.covers(labels, key):
                continue
            self.reported.setdefault(compiled.cond.name, {})[key] = Reported(
                firing, summary, labels, value, severity, now)
            taken += 1
        if taken:
            with contextlib.suppress(Exception):
                silences = self.silences.active(now)
                for compiled in targets:
                    self._step_reported(compiled, now, silences, only=key)
                self._after(now, silences)
        return taken

    @property
    def report_grace(self) -> float:
        """How long after a start a reported alert saved before it waits for its reporter to
        speak again (a reporter tells changes; one that stays silent means "no longer")."""
        return max(120.0, 3 * float(self.config.agent.interval))

    def _step_reported(self, compiled: CompiledRule, now: float, silences: list[Silence],
                       only: str | None = None) -> None:
        rule = compiled.rule
        bucket = self.active.setdefault(rule.name, {})
        words = self.reported.get(compiled.cond.name, {})
        keys: Iterable[str] = [only] if only is not None else set(words) | set(bucket)
        for key in keys:
            word = words.get(key)
            alert = bucket.get(key)
            if word is None and alert is not None and now - self.started_at < self.report_grace:
                continue  # known from before a restart: its reporter has not spoken yet
            if word is None or not word.firing:
                if alert is not None:
                    self._clear(bucket, alert, now)
                continue
            if not compiled.covers(word.labels, key):
                continue
            if alert is None:
                alert = bucket[key] = Alert(rule.name, key, "reported",
                                            word.severity or rule.severity, word.at)
                self._mark()
            alert.summary, alert.labels, alert.value = word.summary, word.labels, word.value
            alert.clear_since = 0.0
            if alert.status == "pending" and now - alert.since >= rule.for_:
                self._fire(alert, now, silences)

    # -- records ---------------------------------------------------------------------------

    def add_alert_listener(self, listener: Callable[[Mapping[str, Any]], None]) -> None:
        """Call ``listener(event)`` for every alert event — fired, resolved, ended, and each
        reminder of one still firing — as a JSON-ready mapping (the history's shape; a
        reminder has ``"event": "repeat"``). The site link of a cluster sends them to the hub
        this way. The listener must be quick and must not raise."""
        self._listeners.append(listener)

    def _tell(self, entry: Mapping[str, Any]) -> None:
        for listener in self._listeners:
            try:
                listener(entry)
            except Exception:
                log.exception("alert listener failed")

    def _event(self, event: str, alert: Alert, now: float) -> dict[str, Any]:
        return {"time": now, "event": event, "rule": alert.rule, "key": alert.key,
                "kind": alert.kind, "severity": alert.severity, "value": alert.value,
                "summary": alert.summary, "labels": dict(alert.labels),
                "silenced_by": alert.silenced_by or None}

    def _record(self, event: str, alert: Alert, now: float, note: str = "") -> None:
        entry = self._event(event, alert, now)
        if note:
            entry["note"] = note
        self.history.append(entry)
        self._tell(entry)
        compiled = self.rules.get(alert.rule)
        tags = {"rule": alert.rule, "severity": alert.severity, "kind": alert.kind,
                "key": alert.key,
                "condition": compiled.cond.name if compiled is not None else ""}
        for label in ("group", "range"):
            if alert.labels.get(label):
                tags[label] = alert.labels[label]
        fields: dict[str, Any] = {"state": event, "silenced": bool(alert.silenced_by),
                                  "duration_s": round(now - (alert.fired_at or now), 3)}
        if alert.value is not None:
            fields["value"] = float(alert.value)
        if alert.summary:
            fields["summary"] = alert.summary
        if alert.labels.get("ip"):
            fields["ip"] = alert.labels["ip"]
        self.events.append(Metric(MEASUREMENT, tags, fields, int(now * 1e9)))
        del self.events[:-10_000]

    # -- queries and silences (API, UI, CLI) -------------------------------------------------

    def alerts(self, status: str = "") -> list[Alert]:
        """Pending and firing alerts, firing first, most severe first, newest first."""
        order = {"critical": 0, "warning": 1, "info": 2}
        found = [a for bucket in self.active.values() for a in bucket.values()
                 if not status or a.status == status]
        found.sort(key=lambda a: (a.status != "firing", order.get(a.severity, 3),
                                  -(a.fired_at or a.since)))
        return found

    def firing_keys(self) -> set[str]:
        """Keys (MACs, serials) with a firing alert: the Miners page's filter."""
        return {a.key for bucket in self.active.values() for a in bucket.values()
                if a.status == "firing"}

    def counts(self) -> dict[str, int]:
        firing = pending = silenced = 0
        for bucket in self.active.values():
            for alert in bucket.values():
                if alert.status == "firing":
                    firing += 1
                    silenced += bool(alert.silenced_by)
                else:
                    pending += 1
        return {"firing": firing, "pending": pending, "silenced": silenced}

    def recent(self, limit: int = 100, since: float | None = None, rule: str | None = None,
               key: str | None = None) -> list[dict[str, Any]]:
        out = []
        for entry in reversed(self.history):
            if since is not None and entry["time"] < since:
                break
            if (rule and entry["rule"] != rule) or (key and entry["key"] != key):
                continue
            out.append(entry)
            if len(out) >= limit:
                break
        return out

    def silence(self, *, until: float, who: str = "", comment: str = "",
                rules: list[str] | None = None, groups: list[str] | None = None,
                ranges: list[str] | None = None, macs: list[str] | None = None,
                meters: list[str] | None = None) -> Silence:
        """Create a silence (raises SilenceError); it applies from the next evaluation."""
        silence = make_silence(ends_at=until, created_by=who, comment=comment, rules=rules,
                               groups=groups, ranges=ranges, macs=macs, meters=meters)
        self.silences.add(silence)
        self._resync_silences()
        return silence

    def unsilence(self, silence_id: str) -> bool:
        done = self.silences.expire(silence_id)
        if done:
            self._resync_silences()
        return done

    def _resync_silences(self) -> None:
        with contextlib.suppress(Exception):
            now = time.time()
            active = self.silences.active(now)
            for bucket in self.active.values():
                for alert in bucket.values():
                    if alert.status == "firing":
                        alert.silenced_by = self.silences.matching(alert.rule, alert.key,
                                                                   alert.labels, active)
            self._mark()

    async def test_channel(self, name: str) -> tuple[bool, str]:
        self.start()
        return await self.notifier.test(name)

    # -- persistence ---------------------------------------------------------------------------

    def _mark(self) -> None:
        self._dirty = True

    def load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self.path is None or not self.path.exists():
            return
        try:
            saved = msgspec.json.decode(self.path.read_bytes(), type=SavedState)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("alert state unreadable; starting without it", path=str(self.path),
                      error=str(exc))
            return
        for item in saved.alerts:
            alert = SavedState.unpack(item)
            self.active.setdefault(alert.rule, {})[alert.key] = alert
        self.history.extend(saved.history)
        self.fires = {k: list(v) for k, v in saved.fires.items()}
        self.remediator.last = dict(saved.actions)
        self.memory.load(saved.memory)
        memory = self.path.with_name(MEMORY_FILE)
        if memory.exists():
            try:
                self.memory.load(msgspec.json.decode(memory.read_bytes()))
            except (OSError, msgspec.DecodeError, ValueError, TypeError) as exc:
                log.warning("alert memory unreadable", path=str(memory), error=str(exc))
        log.info("alert state loaded", alerts=len(saved.alerts), path=str(self.path))

    def snapshot(self) -> bytes:
        now = time.time()
        window = float(self.section.flap_window)
        fires = {k: [t for t in v if now - t < window] for k, v in self.fires.items()}
        state = SavedState(
            saved_at=now,
            alerts=[SavedState.pack(a) for bucket in self.active.values()
                    for a in bucket.values()],
            history=list(self.history)[-self.section.history_limit:],
            fires={k: v for k, v in fires.items() if v},
            actions={k: v for k, v in self.remediator.last.items() if now - v < 86400 * 7})
        return msgspec.json.encode(state)

    MEMORY_EVERY = 600.0
    """The conditions' memory (boards seen per miner: thousands of entries) is saved this
    often and at the end, not with every alert change."""

    def save(self, memory: bool = False) -> None:
        if self.path is None:
            return
        now = time.time()
        if memory or now - self._memory_saved_at >= self.MEMORY_EVERY:
            self._memory_saved_at = now
            self._write(self.path.with_name(MEMORY_FILE),
                        msgspec.json.encode(self.memory.to_dict()))
        if not self._dirty:
            return
        self._dirty = False
        if not self._write(self.path, self.snapshot()):
            self._dirty = True

    def _write(self, path: Path, data: bytes) -> bool:
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not path.exists():
                path.touch(mode=0o600)
            write_atomically(path, data.decode())
            os.chmod(path, 0o600)
        except OSError as exc:
            log.error("alert state not saved", path=str(path), error=str(exc))
            return False
        return True

    def _save_soon(self) -> None:
        if not self._dirty or self.path is None:
            return
        if self._saving is not None and not self._saving.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no running loop (a bench, a test)
            self.save()
            return
        self._saving = loop.create_task(asyncio.to_thread(self.save))

    # -- status --------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        counts = self.counts()
        channels = self.notifier.status()
        return {**counts, "enabled": self.section.enabled, "rules": len(self.rules),
                "silences": len(self.silences.active()), "channels": channels,
                "channels_failing": sum(1 for c in channels if not c["healthy"]),
                "messages": self.notifier.messages, "evaluations": self.stats.evaluations,
                "evaluation_time_s": round(self.stats.evaluation_time_s, 6),
                "remediations": self.remediator.runs,
                "remediations_deferred": self.remediator.deferred}

    async def close(self) -> None:
        self.notifier.flush()
        await asyncio.sleep(0)
        await self.notifier.close()
        await self.remediator.close()
        if self._saving is not None:
            with contextlib.suppress(Exception):
                await self._saving
        self._dirty = True
        await asyncio.to_thread(self.save, True)


class _Index:
    """The inventory by range and group (scoped rules read it), and each scoped rule's
    devices, kept for a few evaluations."""

    def __init__(self, devices: list[Device], key: tuple[int, int]) -> None:
        self.devices = devices
        self.key = key
        self.uses = 0
        self._by_range: dict[str, list[Device]] | None = None
        self._by_group: dict[str, list[Device]] | None = None
        self._by_mac: dict[str, Device] | None = None
        self._scopes: dict[int, list[Device]] = {}

    def scope(self, compiled: CompiledRule) -> list[Device]:
        if compiled.everything:
            return self.devices
        found = self._scopes.get(id(compiled))
        if found is None:
            found = self._scopes[id(compiled)] = self._scope(compiled)
        return found

    def _scope(self, compiled: CompiledRule) -> list[Device]:
        if self._by_range is None:
            self._by_range, self._by_group, self._by_mac = {}, {}, {}
            for d in self.devices:
                self._by_range.setdefault(d.range_id, []).append(d)
                self._by_group.setdefault(d.group_id, []).append(d)
                self._by_mac[d.mac] = d
        assert self._by_group is not None and self._by_mac is not None
        chosen: dict[str, Device] = {}
        for group in compiled.groups:
            chosen.update((d.mac, d) for d in self._by_group.get(group, ()))
        for range_id in compiled.ranges:
            chosen.update((d.mac, d) for d in self._by_range.get(range_id, ()))
        for mac in compiled.macs:
            if mac in self._by_mac:
                chosen[mac] = self._by_mac[mac]
        return list(chosen.values())


@dataclass
class AlertsInput:
    """The engine's input: evaluations without sweeps, ``alert`` points, self-metrics."""

    engine: AlertEngine
    _ticks: int = field(default=0)

    async def start(self) -> None:
        self.engine.start()

    async def gather(self, acc: Accumulator) -> None:
        engine = self.engine
        fleet = engine._fleet()
        interval = float(engine.config.agent.interval)
        sweeping = fleet is not None and fleet.ranges.size > 0 and bool(fleet.drivers)
        if not sweeping or time.time() - engine.stats.last_evaluation_at > 2.5 * interval:
            engine.evaluate()
        events, engine.events = engine.events, []
        for metric in events:
            acc.add(metric)
        ts = now_ns()
        for channel in engine.notifier.channels.values():
            s = channel.stats
            acc.add(Metric("webbo_internal", {"component": "alerts", "channel": channel.name},
                           {"sent": s.sent, "failed_attempts": s.failed_attempts,
                            "dropped": s.dropped, "queued": channel.queue.qsize(),
                            "healthy": channel.healthy}, ts))

    def internal_fields(self) -> dict[str, Any]:
        engine = self.engine
        counts = engine.counts()
        return {"alerts_firing": counts["firing"], "alerts_pending": counts["pending"],
                "alerts_silenced": counts["silenced"], "alerts_fired": engine.stats.fired,
                "alerts_resolved": engine.stats.resolved, "messages": engine.notifier.messages,
                "evaluations": engine.stats.evaluations,
                "evaluation_time_s": round(engine.stats.evaluation_time_s, 6),
                "remediations": engine.remediator.runs}
