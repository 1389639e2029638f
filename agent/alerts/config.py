"""``[alerts]`` of webbo.toml: rules, notification channels, grouping, silences' defaults.

Rules and channels are tables of arrays (``[[alerts.rules]]``, ``[[alerts.channels]]``), edited
by the API and the UI through the one config-edit use case like the rest of the file, so an
invalid rule is refused with its key path (``alerts.rules[2].ranges[0]: no range ...``) and the
running rules stay. What can only be checked against the rest of the config (a scope naming a
range, a channel a rule names) is checked in :func:`check_alerts`; a notification URL is checked
by apprise itself, without sending anything.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Iterator
from typing import Any

import msgspec

from webbo.agent.alerts.conditions import CONDITIONS
from webbo.agent.core.config import Config, ConfigError, Duration, Section
from webbo.agent.fleet.driver import Action
from webbo.agent.fleet.model import WorkMode, normalise_mac

__all__ = ["ACTIONS", "GROUP_BY", "LANGUAGES", "SEVERITIES", "AlertsSection", "ChannelConfig",
           "RuleConfig", "check_alerts", "url_problem"]

SEVERITIES = ("info", "warning", "critical")
LANGUAGES = ("ru", "en")
GROUP_BY = ("rule", "group", "range", "device")
ACTIONS = {"reboot": Action.REBOOT, "set_work_mode": Action.SET_WORK_MODE}
_NAME = re.compile(r"^\w[\w.\- ]{0,63}$")
TEMPLATE_FIELDS = ("rule", "ip", "mac", "model", "group", "range", "serial", "value",
                   "threshold", "key", "summary")
"""Names a rule's ``message`` template may use (``{ip} {value:.0f} °C``)."""


class RuleConfig(Section, kw_only=True):
    """One ``[[alerts.rules]]`` table: a condition over what the agent reads, its scope, how
    long it must hold, how bad it is and what the message says."""

    name: str
    """Unique; silences and the API name a rule by it."""
    condition: str
    """One of :data:`webbo.agent.alerts.conditions.CONDITIONS`."""
    enabled: bool = True
    threshold: float | None = None
    """The condition's limit (°C, %, rpm, s, V); None takes the condition's default."""
    hysteresis: float | None = None
    """How far back past the threshold the value must come before the alert resolves."""
    low: float | None = None
    """Lower bound of a band (phase voltage); None takes the default."""
    high: float | None = None
    """Upper bound of a band (phase voltage); None takes the default."""
    for_: Duration = msgspec.field(default=Duration(0.0), name="for")
    """How long the condition must hold before the alert fires (pending until then)."""
    severity: str = "warning"
    groups: list[str] = msgspec.field(default_factory=list)
    """Scope: groups (rooms) by name or uuid. Empty scope lists together mean everything."""
    ranges: list[str] = msgspec.field(default_factory=list)
    """Scope: ranges (racks) by name or uuid."""
    macs: list[str] = msgspec.field(default_factory=list)
    """Scope: miners by MAC."""
    meters: list[str] = msgspec.field(default_factory=list)
    """Scope: meters by serial number (meter conditions), or keys of reported alerts."""
    message: str = ""
    """A line per device, e.g. ``"{ip}: {value:.0f} °C"``; empty: the built-in text."""
    channels: list[str] = msgspec.field(default_factory=list)
    """Channel names this rule notifies; empty: every channel."""
    repeat_interval: Duration | None = None
    """Overrides ``[alerts] repeat_interval`` for this rule."""
    action: str = ""
    """Remediation (off unless set): "reboot" or "set_work_mode"."""
    mode: str = ""
    """The work mode ``set_work_mode`` sets (normal, sleep, low_power)."""
    action_interval: Duration = Duration(3600.0)
    """At most one action per device within this long."""

    def check(self) -> Iterator[ConfigError]:
        if not _NAME.match(self.name):
            yield ConfigError("name", "1-64 letters (any alphabet), digits, spaces, '.', '_' "
                                      f"or '-', starting with a letter or digit; got "
                                      f"{self.name!r}")
        if self.condition not in CONDITIONS:
            yield ConfigError("condition", f"unknown condition {self.condition!r}; known: "
                                           f"{', '.join(CONDITIONS)}")
        if self.severity not in SEVERITIES:
            yield ConfigError("severity", f"expected one of {', '.join(SEVERITIES)}, "
                                          f"got {self.severity!r}")
        if self.hysteresis is not None and self.hysteresis < 0:
            yield ConfigError("hysteresis", "cannot be negative")
        if self.low is not None and self.high is not None and self.low >= self.high:
            yield ConfigError("high", f"must be above low ({self.low})")
        for i, mac in enumerate(self.macs):
            if normalise_mac(mac) is None:
                yield ConfigError(f"macs[{i}]", f"not a MAC address: {mac!r}")
        yield from _check_template(self.message)
        yield from self._check_action()

    def _check_action(self) -> Iterator[ConfigError]:
        if not self.action:
            if self.mode:
                yield ConfigError("mode", 'only used with action = "set_work_mode"')
            return
        if self.action not in ACTIONS:
            yield ConfigError("action", f"expected one of {', '.join(ACTIONS)}, "
                                        f"got {self.action!r}")
            return
        cond = CONDITIONS.get(self.condition)
        if cond is not None and cond.kind != "miner":
            yield ConfigError("action", "an action acts on miners; this condition is about "
                                        f"{cond.kind}s")
        allowed = (WorkMode.NORMAL.value, WorkMode.SLEEP.value, WorkMode.LOW_POWER.value)
        if self.action == "set_work_mode" and self.mode not in allowed:
            yield ConfigError("mode", f"expected one of {', '.join(allowed)}, got {self.mode!r}")
        if self.action_interval < 60:
            yield ConfigError("action_interval", "at least 60s (an action must have time to "
                                                 "show its effect)")

    @property
    def action_params(self) -> dict[str, Any]:
        return {"mode": self.mode} if self.action == "set_work_mode" else {}


def _check_template(text: str) -> Iterator[ConfigError]:
    if not text:
        return
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        yield ConfigError("message", f"not a valid template: {exc}")
        return
    for field in fields:
        base = re.split(r"[.\[]", field, maxsplit=1)[0]
        if base not in TEMPLATE_FIELDS:
            yield ConfigError("message", f"unknown field {{{field}}}; known: "
                                         f"{', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}")


class ChannelConfig(Section, kw_only=True):
    """One ``[[alerts.channels]]`` table: where notifications go, as one apprise URL
    (``tgram://TOKEN/CHAT``, ``mailto://...``, ``json://host/path``, ``ntfy://topic``, ...).
    ``${ENV}`` keeps secrets out of the file."""

    name: str
    url: str
    enabled: bool = True
    min_severity: str = "info"
    """Only alerts at least this severe go to this channel."""

    def check(self) -> Iterator[ConfigError]:
        if not _NAME.match(self.name):
            yield ConfigError("name", f"1-64 letters, digits, spaces, '.', '_' or '-'; got "
                                      f"{self.name!r}")
        if self.min_severity not in SEVERITIES:
            yield ConfigError("min_severity", f"expected one of {', '.join(SEVERITIES)}, "
                                              f"got {self.min_severity!r}")
        problem = url_problem(self.url)
        if problem:
            yield ConfigError("url", problem)


def url_problem(url: str) -> str:
    """Why apprise cannot use ``url`` (nothing is sent), or "" when it can."""
    if not url.strip():
        return "empty; expected an apprise URL such as tgram://TOKEN/CHAT_ID"
    import apprise

    records: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = _Keep(logging.WARNING)
    logger = logging.getLogger("apprise")
    logger.addHandler(handler)
    try:
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    finally:
        logger.removeHandler(handler)
    if plugin is None:
        reason = f" ({records[-1]})" if records else ""
        scheme = url.split("://", 1)[0] if "://" in url else ""
        return (f"apprise cannot use this URL{reason}" if scheme else
                "not an apprise URL (expected SCHEME://..., e.g. tgram://, mailto://, json://)")
    return ""


class AlertsSection(Section, kw_only=True):
    """``[alerts]``: rules, channels and how notifications are grouped and repeated."""

    enabled: bool = True
    language: str = "ru"
    """Language of the messages: ru or en."""
    ui_url: str = ""
    """The web UI's address as people open it (``http://10.31.0.2``): messages link to the
    miner, the rack and the alerts page. Empty: no links."""
    group_by: list[str] = msgspec.field(default_factory=lambda: ["rule", "range"])
    """What one message covers: alerts of one rule (always) and one range, group, device."""
    group_wait: Duration = Duration(3.0)
    """How long a new group waits for more alerts before its message goes out."""
    repeat_interval: Duration = Duration(4 * 3600.0)
    """A group still firing is reminded this often."""
    send_resolved: bool = True
    flap_window: Duration = Duration(600.0)
    flap_threshold: int = 3
    """An alert that fires this many times within flap_window is flapping: it then resolves
    only after its condition stayed clear for a whole flap_window (no message storm)."""
    retry_attempts: int = 5
    """Attempts per message and channel before it is dropped (logged)."""
    retry_max_backoff: Duration = Duration(60.0)
    remediation_per_minute: int = 5
    """Most devices that rules' actions may act on per minute, farm-wide."""
    history_limit: int = 2000
    """Fired/resolved events kept for the UI and the API."""
    rules: list[RuleConfig] = msgspec.field(default_factory=list)
    channels: list[ChannelConfig] = msgspec.field(default_factory=list)

    def check(self) -> Iterator[ConfigError]:
        if self.language not in LANGUAGES:
            yield ConfigError("language", f"expected one of {', '.join(LANGUAGES)}, "
                                          f"got {self.language!r}")
        if self.ui_url and not re.match(r"^https?://[^\s/]+", self.ui_url):
            yield ConfigError("ui_url", f"expected an http(s) URL, got {self.ui_url!r}")
        for i, item in enumerate(self.group_by):
            if item not in GROUP_BY:
                yield ConfigError(f"group_by[{i}]", f"expected one of {', '.join(GROUP_BY)}, "
                                                    f"got {item!r}")
        for name in ("flap_threshold", "retry_attempts", "remediation_per_minute",
                     "history_limit"):
            if getattr(self, name) < 1:
                yield ConfigError(name, "must be at least 1")
        if self.repeat_interval < 60:
            yield ConfigError("repeat_interval", "at least 60s")
        yield from _unique(self.rules, "rules")
        yield from _unique(self.channels, "channels")


def _unique(items: list[Any], key: str) -> Iterator[ConfigError]:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.name in seen:
            yield ConfigError(f"{key}[{i}].name", f"{item.name!r} is also the name of "
                                                  f"{key}[{seen[item.name]}]")
        seen.setdefault(item.name, i)


def check_alerts(section: AlertsSection, config: Config) -> Iterator[ConfigError]:
    """Checks against the rest of the config: scopes name existing groups and ranges, rules
    name existing channels."""
    groups = {g.name for g in config.network.ip_range_groups} | {
        g.uuid for g in config.network.ip_range_groups}
    ranges = {r.name for g in config.network.ip_range_groups for r in g.ip_ranges} | {
        r.uuid for g in config.network.ip_range_groups for r in g.ip_ranges}
    channels = {c.name for c in section.channels}
    for i, rule in enumerate(section.rules):
        for j, name in enumerate(rule.groups):
            if name not in groups:
                yield ConfigError(f"rules[{i}].groups[{j}]",
                                  f"no group named {name!r} in [network]")
        for j, name in enumerate(rule.ranges):
            if name not in ranges:
                yield ConfigError(f"rules[{i}].ranges[{j}]",
                                  f"no range named {name!r} in [network]")
        for j, name in enumerate(rule.channels):
            if name not in channels:
                yield ConfigError(f"rules[{i}].channels[{j}]",
                                  f"no channel named {name!r} in [[alerts.channels]]")
