"""Alerts through the API (our addition): active alerts, their history, silences, the rules,
and a test message through a configured channel.

A channel is tested by its name only: the API never sends to an address a request names.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from webbo.agent.alerts.config import AlertsSection
from webbo.agent.alerts.engine import AlertEngine
from webbo.agent.alerts.silences import SilenceError
from webbo.agent.core.config import ConfigError, Duration, to_json
from webbo.agent.core.config_edit import set_table_array
from webbo.agent.core.tasks import TaskFailed
from webbo.web.api.core import METHODS, ApiError, Call
from webbo.web.api.schemas import NoParams, Params

ERRORS = (400, 401, 415, 422, 500, 501)


class AlertsQuery(Params, kw_only=True):
    status: Literal["", "firing", "pending"] = ""
    """Only alerts in this state ("" for both)."""
    rule: str | None = None
    limit: Annotated[int, Meta(ge=1, le=100_000)] = 10_000


class HistoryQuery(Params, kw_only=True):
    limit: Annotated[int, Meta(ge=1, le=10_000)] = 100
    since: float | None = None
    """Unix time: only events at or after it."""
    rule: str | None = None
    key: str | None = None
    """A MAC, a meter's serial number, a reported key."""


class SilenceParams(Params, kw_only=True):
    rules: list[str] = msgspec.field(default_factory=list)
    groups: list[str] = msgspec.field(default_factory=list)
    ranges: list[str] = msgspec.field(default_factory=list)
    macs: list[str] = msgspec.field(default_factory=list)
    meters: list[str] = msgspec.field(default_factory=list)
    until: float | None = None
    """Unix time the silence ends; or give ``duration``."""
    duration: str | None = None
    """How long from now: "90m", "2h", "1d"."""
    comment: str = ""


class SilenceListParams(Params, kw_only=True):
    include_expired: bool = False


class SilenceId(Params, kw_only=True):
    id: str


class ChannelParams(Params, kw_only=True):
    channel: str
    """The ``name`` of an ``[[alerts.channels]]`` table."""


Seconds = str | float
"""A duration: "2m", "90s", or a number of seconds."""


class RuleParams(Params, kw_only=True):
    """One ``[[alerts.rules]]`` table (see the sample webbo.toml for what each key does)."""

    name: str
    condition: str
    enabled: bool = True
    threshold: float | None = None
    hysteresis: float | None = None
    low: float | None = None
    high: float | None = None
    for_: Seconds = msgspec.field(default=0.0, name="for")
    severity: str = "warning"
    groups: list[str] = msgspec.field(default_factory=list)
    ranges: list[str] = msgspec.field(default_factory=list)
    macs: list[str] = msgspec.field(default_factory=list)
    meters: list[str] = msgspec.field(default_factory=list)
    message: str = ""
    channels: list[str] = msgspec.field(default_factory=list)
    repeat_interval: Seconds | None = None
    action: str = ""
    mode: str = ""
    action_interval: Seconds = 3600.0


class RulesParams(Params, kw_only=True):
    rules: list[RuleParams]
    """The ``[[alerts.rules]]`` tables, as /api/alerts/rules/get answers them."""


def engine_of(call: Call) -> AlertEngine:
    engine = call.agent.service(AlertEngine)
    if engine is None:
        raise ApiError(501, "alerts are not loaded (see `webbo plugins`)")
    return engine


@METHODS.add("/alerts/get", AlertsQuery, summary="Active alerts", tag="alerts",
             result=list[dict[str, Any]], errors=ERRORS, ours=True,
             examples=({}, {"status": "firing"}))
async def alerts_get(call: Call, params: AlertsQuery) -> list[dict[str, Any]]:
    """Pending and firing alerts, firing first, the most severe first: the rule, the key (a
    miner's MAC, a meter's serial number), ``status``, ``since`` (when the condition started
    holding), ``fired_at``, the ``value`` that made it hold, ``labels`` (ip, model, group,
    range, ...), ``silenced_by`` (the silence that holds its messages back, or null) and
    ``flapping``. Answers at once."""
    found = engine_of(call).alerts(params.status)
    if params.rule:
        found = [a for a in found if a.rule == params.rule]
    return [a.describe() for a in found[:params.limit]]


@METHODS.add("/alerts/history", HistoryQuery, summary="Alert history", tag="alerts",
             result=list[dict[str, Any]], errors=ERRORS, ours=True,
             examples=({"limit": 20},))
async def alerts_history(call: Call, params: HistoryQuery) -> list[dict[str, Any]]:
    """Fired and resolved events, newest first (``event``: firing, resolved, or ended when its
    rule was removed)."""
    return engine_of(call).recent(params.limit, params.since, params.rule, params.key)


@METHODS.add("/alerts/silences/create", SilenceParams, summary="Silence alerts", tag="alerts",
             result=dict[str, Any], errors=ERRORS, ours=True,
             examples=({"ranges": ["rack 5"], "duration": "2h", "comment": "maintenance"},))
async def silences_create(call: Call, params: SilenceParams) -> dict[str, Any]:
    """Hold back the messages of the alerts that match (every list given must match; a list
    matches when any item does: rule names, group or range names or uuids, MACs, meter serial
    numbers) until ``until`` (Unix time) or for ``duration``. Silenced alerts still show in
    the UI and in /api/alerts/get. Answers the silence with its ``id``."""
    if (params.until is None) == (params.duration is None):
        raise ApiError(422, "give either until (Unix time) or duration (e.g. \"2h\")")
    until = params.until
    if params.duration is not None:
        try:
            until = time.time() + Duration.parse(params.duration)
        except ValueError as exc:
            raise ApiError(422, f"duration: {exc}") from None
    assert until is not None
    try:
        silence = engine_of(call).silence(
            until=until, who=call.who, comment=params.comment, rules=params.rules,
            groups=params.groups, ranges=params.ranges, macs=params.macs, meters=params.meters)
    except SilenceError as exc:
        raise ApiError(422, str(exc)) from None
    return silence.describe()


@METHODS.add("/alerts/silences/get", SilenceListParams, summary="Silences", tag="alerts",
             result=list[dict[str, Any]], errors=ERRORS, ours=True, examples=({},))
async def silences_get(call: Call, params: SilenceListParams) -> list[dict[str, Any]]:
    """Active silences (and those that ended within a day with ``include_expired``)."""
    now = time.time()
    items = engine_of(call).silences.all()
    return [s.describe(now) for s in items if params.include_expired or s.active(now)]


@METHODS.add("/alerts/silences/delete", SilenceId, summary="End a silence", tag="alerts",
             result=bool, errors=ERRORS, ours=True,
             examples=({"id": "2a67feee-08f0-4ce1-89cd-7f8282bd1369"},))
async def silences_delete(call: Call, params: SilenceId) -> bool:
    """Ends the silence now (it stays listed as expired for a day): ``true``, or ``false``
    when there is no silence with this id."""
    return engine_of(call).unsilence(params.id)


@METHODS.add("/alerts/test-channel", ChannelParams, summary="Test a notification channel",
             tag="alerts", task_result=bool, errors=ERRORS, ours=True)
async def test_channel(call: Call, params: ChannelParams) -> Any:
    """Sends a test message through the configured channel of this name (with its retries).
    The task's result is ``true`` when it went out; it fails with the reason otherwise."""
    engine = engine_of(call)
    if params.channel not in engine.notifier.channels:
        names = ", ".join(engine.notifier.channels) or "none is configured"
        raise ApiError(422, f"channel: no channel named {params.channel!r} ({names})")

    async def body() -> bool:
        ok, error = await engine.test_channel(params.channel)
        if not ok:
            raise TaskFailed(f"{params.channel}: {error or 'not sent'}")
        return True

    return call.tasks.start_job("alerts/test-channel", call.who, body,
                                {"channel": params.channel})


@METHODS.add("/alerts/rules/get", NoParams, summary="Alert rules", tag="alerts",
             result=list[dict[str, Any]], errors=ERRORS, ours=True, examples=({},))
async def rules_get(call: Call, params: NoParams) -> list[dict[str, Any]]:
    """The ``[[alerts.rules]]`` tables of webbo.toml as they are in force (defaults filled in),
    in the shape /api/alerts/rules/set takes."""
    section = call.agent.config.section(AlertsSection)
    rules: list[dict[str, Any]] = msgspec.json.decode(to_json(section.rules))
    return rules


def rule_tables(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rule objects → TOML tables: nulls, empty lists and empty strings left out (the
    defaults apply)."""
    return [{k: v for k, v in rule.items() if v is not None and v != [] and v != ""}
            for rule in rules]


@METHODS.add("/alerts/rules/set", RulesParams, summary="Set the alert rules", tag="alerts",
             task_result=bool, errors=ERRORS, ours=True,
             examples=({"rules": [{"name": "chip hot", "condition": "temp_chip_high",
                                   "threshold": 90, "for": "2m", "severity": "critical"}]},))
async def rules_set(call: Call, params: RulesParams) -> Any:
    """Replaces every ``[[alerts.rules]]`` table of webbo.toml (comments elsewhere kept) and
    reloads. The whole config is checked first: a bad rule is refused with 422 and its key
    path (``alerts.rules[2].ranges[0]: no range named ...``); the running rules stay."""
    tables = rule_tables(msgspec.to_builtins(params.rules))

    def mutate(doc: Any) -> None:
        set_table_array(doc, "alerts.rules", tables)

    try:
        call.agent.edits.check(mutate)
    except ConfigError:
        raise
    except (ValueError, TypeError, UnicodeError) as exc:  # text TOML cannot hold
        raise ApiError(422, f"rules: cannot be written to webbo.toml: {exc}") from None

    async def body() -> bool:
        await call.agent.edits.apply(mutate)
        return True

    return call.tasks.start_job("alerts/rules/set", call.who, body, {"rules": tables})
