"""Power control through the API (our addition, design §13): feeds, budgets, signals.

* read: ``get-status`` (every feed: budget and its source, measured and estimated kW, miners
  by state, the plan), ``get-feed`` (one feed, with its miners and its recent past),
  ``get-config`` (``[power]`` as JSON);
* budgets: ``set-budget`` (optionally until an end time), ``clear-budget`` (back to the
  schedule and the config), ``signal`` (a demand-response request or a price, always with an
  end), ``clear-signal``;
* config edits (webbo.toml, comments kept, reloaded): ``set-config`` (the whole ``[power]``),
  ``set-mode``, ``exclude``.

Bad input — an unknown feed, a budget below zero or above the feed's limit, a signal without
an end, a feed naming a meter or a range that does not exist, overlapping feeds — is refused
with a 422 naming the field; the running control stays as it was.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta

from webbo.agent.power.controller import PowerController, parse_until
from webbo.agent.power.edits import replace_power, section_dict, set_excluded, set_mode
from webbo.web import services
from webbo.web.api.core import METHODS, ApiError, Call
from webbo.web.api.schemas import MACAddr, NoParams, Params

ERRORS = (400, 401, 415, 422, 500, 501)
Kilowatts = Annotated[float, Meta(description="kilowatts")]
Until = Annotated[str | float, Meta(
    description='end time: ISO 8601 ("2025-07-01T18:00:00+03:00"; without an offset in the '
                "farm's time zone) or unix seconds")]


class FeedParams(Params, kw_only=True):
    feed: str


class FeedQuery(Params, kw_only=True):
    feed: str
    miners: bool = True
    """Include every miner of the feed (level, kW, estimate or reading, status)."""
    history: bool = True
    """Include the recent past: [unix time, measured kW, estimated kW, budget kW] per cycle."""


class SetBudgetParams(Params, kw_only=True):
    feed: str
    budget_kw: Kilowatts
    until: Until | None = None
    """Without it the budget stays until cleared."""


class SignalParams(Params, kw_only=True):
    kind: Literal["demand_response", "price"]
    until: Until
    feed: str | None = None
    """One feed; none: every feed."""
    budget_kw: Kilowatts | None = None
    """demand_response: reduce to this."""
    price: float | None = None
    """price: compared with each feed's strike_price."""


class ClearSignalParams(Params, kw_only=True):
    feed: str | None = None
    kind: Literal["demand_response", "price"] | None = None


class ModeParams(Params, kw_only=True):
    mode: Literal["off", "dry-run", "on"]


class ExcludeParams(Params, kw_only=True):
    macs: list[MACAddr]
    excluded: bool = True


def power(call: Call) -> PowerController:
    try:
        return services.power(call.agent)
    except services.ServiceMissing as exc:
        raise ApiError(501, str(exc)) from None


def _until(controller: PowerController, value: Any) -> float | None:
    return parse_until(value, controller.section.timezone)


@METHODS.add("/power/get-status", NoParams, summary="Every feed's power", tag="power",
             result=list[dict[str, Any]], ours=True, errors=ERRORS, examples=({},))
async def get_status(call: Call, params: NoParams) -> list[dict[str, Any]]:
    """Per feed: ``mode``, ``state`` (ok, shedding, restoring, settling, hold, off) and
    ``problem``, ``budget_kw`` with ``budget_source`` (config, api, schedule,
    demand_response, price) and ``sources`` (each source's value and whether it is active),
    ``measured_kw`` (the meters), ``estimated_kw`` (base load + the miners' readings or model
    estimates), ``predicted_kw`` (where changes in flight take it), ``miners`` (counts: full,
    reduced, sleeping, excluded, in_flight, uncertain, estimated, ...), ``plan`` (this cycle's
    step and the cycles after it), ``last_step`` and ``alerts``. Answers at once."""
    controller = power(call)
    return [controller.feed_status(feed.name, miners=False, history=False)
            for feed in controller.section.feeds]


@METHODS.add("/power/get-feed", FeedQuery, summary="One feed in detail", tag="power",
             result=dict[str, Any], ours=True, errors=ERRORS)
async def get_feed(call: Call, params: FeedQuery) -> dict[str, Any]:
    """What get-status says of the feed, plus ``miner_list`` (each miner: mac, ip, model,
    level, pct, kw, ``estimated`` when the kW come from the model table, jth, status) and
    ``history``."""
    return power(call).feed_status(params.feed, miners=params.miners, history=params.history)


@METHODS.add("/power/get-config", NoParams, summary="The [power] section", tag="power",
             result=dict[str, Any], ours=True, errors=ERRORS, examples=({},))
async def get_config(call: Call, params: NoParams) -> dict[str, Any]:
    """``[power]`` of webbo.toml as JSON (durations in seconds)."""
    return section_dict(power(call).section)


@METHODS.add("/power/set-config", dict[str, Any], summary="Replace the [power] section",
             tag="power", result=dict[str, Any], ours=True, errors=ERRORS)
async def set_config(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """The body is the whole ``[power]`` table as JSON (the shape get-config answers; keys
    left out take their defaults; durations as "10s" or seconds). It is checked whole —
    unknown keys, a feed naming a meter or a range that does not exist, overlapping feeds, a
    budget below zero or above the feed's ``limit_kw`` are refused with the key path — then
    written to webbo.toml (comments kept) and the agent reloads. Answers the new section."""
    controller = power(call)
    mutate = replace_power(params)
    call.agent.edits.check(mutate)
    await call.agent.edits.apply(mutate)
    call.tasks.audit.write({"event": "config", "method": "power/set-config", "who": call.who,
                            "feeds": len(controller.section.feeds)})
    return section_dict(controller.section)


@METHODS.add("/power/set-mode", ModeParams, summary="Off, dry-run or on", tag="power",
             result=dict[str, Any], ours=True, errors=ERRORS)
async def set_power_mode(call: Call, params: ModeParams) -> dict[str, Any]:
    """``[power] mode``: ``off`` measures and shows only, ``dry-run`` also plans every step
    and shows it without acting, ``on`` acts. Written to webbo.toml; answers the section."""
    controller = power(call)
    mutate = set_mode(params.mode)
    call.agent.edits.check(mutate)
    await call.agent.edits.apply(mutate)
    call.tasks.audit.write({"event": "config", "method": "power/set-mode", "who": call.who,
                            "mode": params.mode})
    return section_dict(controller.section)


@METHODS.add("/power/exclude", ExcludeParams, summary="Exclude miners from control",
             tag="power", result=dict[str, Any], ours=True, errors=ERRORS)
async def exclude(call: Call, params: ExcludeParams) -> dict[str, Any]:
    """Adds the MACs to ``[power] exclude`` (``excluded: false`` takes them out): the
    controller never touches them (a manual override). Answers the section."""
    controller = power(call)
    mutate = set_excluded(params.macs, params.excluded)
    call.agent.edits.check(mutate)
    await call.agent.edits.apply(mutate)
    call.tasks.audit.write({"event": "config", "method": "power/exclude", "who": call.who,
                            "macs": params.macs, "excluded": params.excluded})
    return section_dict(controller.section)


@METHODS.add("/power/set-budget", SetBudgetParams, summary="Set a feed's budget",
             tag="power", result=dict[str, Any], ours=True, errors=ERRORS)
async def set_budget(call: Call, params: SetBudgetParams) -> dict[str, Any]:
    """A budget for the feed from the API, until ``until`` or until cleared. The lowest
    active source wins, so this can lower the feed's budget below the config and the schedule,
    never raise it above them. 0 ≤ ``budget_kw`` ≤ the feed's ``limit_kw``. Answers the
    feed's status (the budget applies from the next cycle)."""
    controller = power(call)
    until = _until(controller, params.until)
    controller.set_budget(params.feed, params.budget_kw, until, call.who)
    return controller.feed_status(params.feed)


@METHODS.add("/power/clear-budget", FeedParams, summary="Back to the schedule",
             tag="power", result=dict[str, Any], ours=True, errors=ERRORS)
async def clear_budget(call: Call, params: FeedParams) -> dict[str, Any]:
    """Drops the API's budget of the feed: the schedule, the signals and the config decide
    again. Answers the feed's status."""
    controller = power(call)
    controller.clear_budget(params.feed, call.who)
    return controller.feed_status(params.feed)


@METHODS.add("/power/signal", SignalParams, summary="A demand-response or price signal",
             tag="power", result=list[str], ours=True, errors=ERRORS)
async def signal(call: Call, params: SignalParams) -> list[str]:
    """``demand_response``: "reduce to ``budget_kw`` until ``until``" for the feed (or every
    feed). ``price``: the price until ``until``; each feed whose ``strike_price`` it passes
    curtails to its ``price_floor_kw``. A signal needs an end; it releases by itself then
    (or with clear-signal). A new signal of a kind replaces the feed's previous one. Answers
    the feeds it applies to."""
    controller = power(call)
    until = _until(controller, params.until)
    return controller.signal([params.feed] if params.feed else None, params.kind, until,
                             call.who, budget_kw=params.budget_kw, price=params.price)


@METHODS.add("/power/clear-signal", ClearSignalParams, summary="End signals now",
             tag="power", result=int, ours=True, errors=ERRORS, examples=({},))
async def clear_signal(call: Call, params: ClearSignalParams) -> int:
    """Ends the feed's (or every feed's) signals of the kind (or of both kinds) now. Answers
    how many ended."""
    return power(call).clear_signal([params.feed] if params.feed else None, params.kind,
                                    call.who)

