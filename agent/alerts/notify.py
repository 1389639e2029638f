"""Delivery: alerts grouped into messages, each message to every channel that wants it.

* Grouping: alerts of one rule that turn (firing, repeat, resolved) together and share the
  group key (``[alerts] group_by``: the range by default) become one message; a group waits
  ``group_wait`` for stragglers first. A rack losing power is one message, not 48.
* Channels: one apprise URL each, with a queue and a task of its own, so a channel that fails
  (a dead SMTP server, a webhook that hangs) delays only itself. A message is retried with
  back-off (1 s, 2 s, 4 s, ... up to ``retry_max_backoff``) ``retry_attempts`` times, then
  dropped with its reason logged. apprise sends in worker threads: polling never waits.
* What each channel did (sent, failed attempts, dropped, the last error) is kept for the
  status, the self-metrics and the UI.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from webbo.agent.alerts.config import SEVERITIES, AlertsSection, ChannelConfig
from webbo.agent.alerts.messages import Message, render, test_message

log = structlog.get_logger("webbo.alerts")

__all__ = ["Channel", "ChannelStats", "Notifier"]

QUEUE_LIMIT = 1000
SEND_TIMEOUT = 30.0


@dataclass
class ChannelStats:
    sent: int = 0
    failed_attempts: int = 0
    dropped: int = 0
    last_ok_at: float | None = None
    last_error: str = ""
    last_error_at: float | None = None
    last_latency_s: float | None = None
    latencies: list[float] = field(default_factory=list)
    """Seconds from a message's creation to its delivery (the last 1000; the bench reads it)."""


def _mask(url: str) -> str:
    """The URL with its secrets hidden (apprise's own privacy form where it can)."""
    try:
        import apprise

        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        if plugin is not None:
            return str(plugin.url(privacy=True))
    except Exception:  # pragma: no cover - apprise raising here is its bug, not ours
        pass
    scheme = url.split("://", 1)[0] if "://" in url else "?"
    return f"{scheme}://…"


class Channel:
    """One ``[[alerts.channels]]`` table: its queue, its sender task, its figures."""

    def __init__(self, config: ChannelConfig, section: AlertsSection) -> None:
        self.config = config
        self.name = config.name
        self.attempts = section.retry_attempts
        self.max_backoff = float(section.retry_max_backoff)
        self.queue: asyncio.Queue[tuple[Message, asyncio.Future[bool] | None]] = (
            asyncio.Queue(QUEUE_LIMIT))
        self.stats = ChannelStats()
        self.masked = _mask(config.url)
        self._apprise: Any = None
        self._task: asyncio.Task[None] | None = None

    @property
    def key(self) -> tuple[str, str, bool]:
        return (self.config.name, self.config.url, self.config.enabled)

    def wants(self, severity: str, rule_channels: Sequence[str]) -> bool:
        if not self.config.enabled or (rule_channels and self.name not in rule_channels):
            return False
        return SEVERITIES.index(severity) >= SEVERITIES.index(self.config.min_severity)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"alert channel {self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def put(self, message: Message, done: asyncio.Future[bool] | None = None) -> None:
        try:
            self.queue.put_nowait((message, done))
        except asyncio.QueueFull:
            self.stats.dropped += 1
            log.error("alert channel queue full; message dropped", channel=self.name,
                      title=message.title)
            if done is not None and not done.done():
                done.set_result(False)

    async def _client(self) -> Any:
        if self._apprise is None:
            def build() -> Any:
                import apprise

                client = apprise.Apprise()
                if not client.add(self.config.url):
                    raise ValueError("apprise cannot use this URL")
                return client

            self._apprise = await asyncio.to_thread(build)
        return self._apprise

    async def _send_once(self, message: Message) -> str:
        """Send one message; "" when it went out, else why not."""
        try:
            client = await self._client()
            result = await client.async_notify(body=message.body, title=message.title,
                                               notify_type=message.notify_type,
                                               timeout=SEND_TIMEOUT)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        if bool(result):
            return ""
        reasons: list[str] = []
        with contextlib.suppress(Exception):
            reasons = [str(entry).split(" - ", 2)[-1] for entry in result.logs()][-2:]
        status = str(getattr(getattr(result, "status", None), "name", "failure")).lower()
        return status + (f": {' | '.join(reasons)}" if reasons else "")

    async def _run(self) -> None:
        while True:
            message, done = await self.queue.get()
            ok = await self.deliver(message)
            if done is not None and not done.done():
                done.set_result(ok)

    async def deliver(self, message: Message) -> bool:
        delay = 1.0
        error = ""
        for attempt in range(1, self.attempts + 1):
            error = await self._send_once(message)
            now = time.time()
            if not error:
                stats = self.stats
                stats.sent += 1
                stats.last_ok_at = now
                stats.last_latency_s = now - message.created
                stats.latencies.append(stats.last_latency_s)
                del stats.latencies[:-1000]
                return True
            self.stats.failed_attempts += 1
            self.stats.last_error = error
            self.stats.last_error_at = now
            log.warning("alert notification failed", channel=self.name, attempt=attempt,
                        of=self.attempts, error=error)
            if attempt < self.attempts:
                await asyncio.sleep(delay)
                delay = min(self.max_backoff, delay * 2)
        self.stats.dropped += 1
        log.error("alert notification dropped", channel=self.name, title=message.title,
                  attempts=self.attempts, reason=error)
        return False

    @property
    def healthy(self) -> bool:
        s = self.stats
        return not s.last_error_at or bool(s.last_ok_at and s.last_ok_at > s.last_error_at)

    def status(self) -> dict[str, Any]:
        s = self.stats
        return {"name": self.name, "url": self.masked, "enabled": self.config.enabled,
                "min_severity": self.config.min_severity, "healthy": self.healthy,
                "queued": self.queue.qsize(), "sent": s.sent,
                "failed_attempts": s.failed_attempts, "dropped": s.dropped,
                "last_ok_at": s.last_ok_at, "last_error": s.last_error,
                "last_error_at": s.last_error_at}


@dataclass
class _Batch:
    created: float
    alerts: list[Any] = field(default_factory=list)


class Notifier:
    """Groups alert changes into messages and hands them to the channels."""

    def __init__(self, rules: Callable[[str], Any], condition_of: Callable[[Any], Any]) -> None:
        self.section = AlertsSection()
        self.channels: dict[str, Channel] = {}
        self._rules = rules
        self._condition_of = condition_of
        self._batches: dict[tuple[str, str, tuple[str, ...]], _Batch] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.messages = 0

    def configure(self, section: AlertsSection) -> list[Channel]:
        """Adopt the channels of ``section`` (unchanged ones keep their queue); returns the
        channels that were removed (the caller stops them)."""
        self.section = section
        removed = []
        fresh: dict[str, Channel] = {}
        for config in section.channels:
            current = self.channels.get(config.name)
            if current is not None and current.key == (config.name, config.url,
                                                       config.enabled):
                current.config = config
                current.attempts = section.retry_attempts
                current.max_backoff = float(section.retry_max_backoff)
                fresh[config.name] = current
            else:
                if current is not None:
                    removed.append(current)
                fresh[config.name] = Channel(config, section)
        removed += [c for name, c in self.channels.items() if name not in fresh]
        self.channels = fresh
        if self._task is not None:
            for channel in fresh.values():
                channel.start()
        return removed

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="alert notifier")
        for channel in self.channels.values():
            channel.start()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for channel in self.channels.values():
            await channel.stop()

    # -- grouping ------------------------------------------------------------------------------

    def group_key(self, alert: Any) -> tuple[str, ...]:
        by = self.section.group_by
        key = []
        if "device" in by:
            return (alert.key,)
        for part in ("group", "range"):
            if part in by:
                key.append(alert.labels.get(part + "_id") or alert.labels.get(part, ""))
        return tuple(key)

    def add(self, kind: str, alert: Any, now: float) -> None:
        """``alert`` turned ``kind`` (firing, repeat, resolved): batch it for its message."""
        key = (kind, alert.rule, self.group_key(alert))
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = _Batch(now)
        batch.alerts.append(alert)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            if not self._batches:
                self._wake.clear()
                await self._wake.wait()
            now = time.time()
            wait = float(self.section.group_wait)
            due = [k for k, b in self._batches.items() if now - b.created >= wait]
            for key in due:
                batch = self._batches.pop(key)
                try:
                    self.dispatch(key[0], batch.alerts, now)
                except Exception:
                    log.exception("alert message failed to render", rule=key[1])
            if self._batches:
                first = min(b.created for b in self._batches.values())
                await asyncio.sleep(max(0.05, first + wait - time.time()))

    def flush(self) -> None:
        """Send every waiting batch now (at shutdown)."""
        now = time.time()
        for key, batch in list(self._batches.items()):
            del self._batches[key]
            with contextlib.suppress(Exception):
                self.dispatch(key[0], batch.alerts, now)

    def dispatch(self, kind: str, alerts: list[Any], now: float) -> None:
        rule = self._rules(alerts[0].rule)
        if rule is None:
            return
        condition = self._condition_of(rule)
        section = self.section
        message = render(kind, alerts, rule, condition, section.language, section.group_by,
                         section.ui_url.rstrip("/"), min(a.changed_at for a in alerts))
        targets = [c for c in self.channels.values()
                   if c.wants(rule.severity, rule.channels)]
        if targets:
            self.messages += 1
        for channel in targets:
            channel.put(message)

    async def test(self, name: str) -> tuple[bool, str]:
        """Send a test message through one channel now (queued like any other)."""
        channel = self.channels.get(name)
        if channel is None:
            return False, f"no channel named {name!r}"
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        channel.start()
        channel.put(test_message(name, self.section.language, time.time()), done)
        ok = await done
        return ok, "" if ok else channel.stats.last_error

    def status(self) -> list[dict[str, Any]]:
        return [c.status() for c in self.channels.values()]
