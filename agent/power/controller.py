"""The power controller: the agent's ``PowerController`` service (design §13, issue 14).

Every ``[power] interval`` it runs one cycle per feed (as a core input of the agent, so its
``power`` metric goes to the outputs like any other):

1. the meters: the feed's measured draw from the ``meter`` metrics it hears (:mod:`.meters`);
   a stale or missing reading *holds* the feed where it is — nothing is switched — and says
   so (status, metric, audit, alert);
2. the budget: the lowest active of config, API, schedule and signals (:mod:`.budget`);
3. the miners: each one's draw, efficiency, level and freedom (:mod:`.units`);
4. the step: shed or restore within the band, the ramp and the dwell (:mod:`.plan`);
5. acting: ``mode = "on"`` sends the step through the fleet's :class:`Controller` (the audited
   path the API uses), each miner's writes in order, concurrently across miners, in the
   background (a cycle never waits for a miner); ``dry-run`` records the plan (in the audit
   log when it changes) and touches nothing; ``off`` measures and shows only.

Every step is in the audit log twice: when it is sent (feed, reason, miners, what each is set
to) and when its writes are done (each miner's result). A write whose outcome is unknown is
never retried: it counts as "maybe applied" until a reading tells (:mod:`.units`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import structlog

from webbo.agent.core.config import Config, ConfigError, config_key
from webbo.agent.core.contract import Accumulator, CoreInput, PluginContext
from webbo.agent.core.metric import Metric
from webbo.agent.core.tasks import TaskService
from webbo.agent.fleet.control import UNKNOWN_PREFIX, Controller
from webbo.agent.fleet.discovery import MinerFleet
from webbo.agent.fleet.driver import Action
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.model import normalise_mac
from webbo.agent.power.budget import Override, farm_zone
from webbo.agent.power.config import FeedConfig, PowerSection, feed_ranges
from webbo.agent.power.feed import Assessment, FeedRuntime, Inputs, assess, plan_dict, record
from webbo.agent.power.meters import MeterWatch
from webbo.agent.power.models import ModelTable, Refinements
from webbo.agent.power.plan import Plan, Step
from webbo.agent.power.state import STATE_FILE, Pending, PowerState
from webbo.agent.power.units import Context, Profile

log = structlog.get_logger("webbo.power")

__all__ = ["MEASUREMENT", "AlertReporter", "PowerController", "PowerCycle", "parse_until"]

MEASUREMENT = "power"
SIGNAL_KINDS = ("demand_response", "price")


@runtime_checkable
class AlertReporter(Protocol):
    """What power control tells alerts through (the alerts room's engine): an alert a room
    watches itself, raised or cleared by key. Found by type among the agent's services, so
    the two rooms meet without either naming the other's plugin."""

    def report(self, rule: str, key: str, firing: bool, summary: str = "",
               labels: dict[str, str] | None = None, severity: str | None = None,
               value: float | None = None) -> int: ...


class PowerCycle:
    """The core input that runs the controller's cycles on ``[power] interval``."""

    def __init__(self, controller: PowerController, interval: float) -> None:
        self.controller = controller
        self.interval = interval

    async def gather(self, acc: Accumulator) -> None:
        self.controller.cycle(acc)

    def internal_fields(self) -> dict[str, Any]:
        c = self.controller
        return {"cycles": c.cycles, "decide_time_s": round(c.decide_time, 6),
                "steps_sent": c.steps_sent, "steps_running": len(c.tasks)}


class PowerController:
    """Feeds, budgets and curtailment: the ``power`` service."""

    def __init__(self, context: PluginContext, persistent: bool = True) -> None:
        self.context = context
        self.config = context.config
        self.section = context.config.section(PowerSection)
        self.state = PowerState.load(context.state_dir / STATE_FILE if persistent else None)
        self.refinements = Refinements(self.state.refinements)
        self.state.refinements = self.refinements.factors
        self.table = ModelTable(self.section.models)
        self.meters = MeterWatch()
        self.feeds: dict[str, FeedRuntime] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.cycles = 0
        self.decide_time = 0.0
        self.steps_sent = 0
        self.profiles: dict[str, Profile] = {}
        self.generation = 0
        """Bumped by a reload or a refinement: cached per-miner profiles are made again."""
        self.alert_hooks: list[Callable[[str, str, bool, str, dict[str, str]], Any]] = []
        """Called (condition, feed, firing, summary, labels) when a feed's meter goes stale
        (``meter_stale``) or its draw goes over budget (``feed_over_budget``), and when that
        ends; the agent's :class:`AlertReporter` (the alerts engine) is told the same."""

    # -- wiring -----------------------------------------------------------------------------

    def on_metric(self, metric: Metric) -> None:
        """Every gathered metric (the agent calls it on the poll path): meters only."""
        if metric.name == "meter":
            self.meters.observe(metric)

    def inputs(self, config: Config) -> list[CoreInput]:
        """The cycle, while there are feeds."""
        self.config = config
        self.section = config.section(PowerSection)
        self.table = ModelTable(self.section.models)
        self.generation += 1
        for name in list(self.feeds):
            if self.section.feed(name) is None:
                del self.feeds[name]
                left = [m.mac for m in self.state.miners.values()
                        if m.feed == name and m.managed]
                if left:
                    log.warning("feed removed while miners it curtailed are still down; they "
                                "stay where they are", feed=name, miners=left[:20],
                                count=len(left))
        if not self.section.feeds:
            return []
        interval = float(self.section.interval)
        key = b"power|" + config_key(interval)
        return [(key, "power", lambda: PowerCycle(self, interval))]

    @property
    def fleet(self) -> MinerFleet | None:
        return self.context.shared.find(MinerFleet)

    @property
    def controller(self) -> Controller | None:
        return self.context.shared.find(Controller)

    @property
    def audit(self) -> Any:
        tasks = self.context.shared.find(TaskService)
        return tasks.audit if tasks is not None else None

    def _audit(self, entry: dict[str, Any]) -> None:
        audit = self.audit
        if audit is not None:
            audit.write(entry)

    # -- the cycle ----------------------------------------------------------------------------

    def _context(self, now: float) -> Context:
        section = self.section
        excluded = frozenset(filter(None, (normalise_mac(m) for m in section.exclude)))
        critical = frozenset(normalise_mac(c) or c for c in section.critical)
        fleet = self.fleet
        sweep = fleet.last_sweep.duration_s if fleet is not None else 0.0
        # a reading is fresh while it is from one of the last sweeps (however long they take)
        fresh_s = 3 * max(float(self.config.agent.interval), sweep) + float(section.interval)
        return Context(self.table, self.refinements, now, fresh_s=fresh_s,
                       min_dwell=float(section.min_dwell),
                       settle_min=float(section.settle_min),
                       settle_timeout=float(section.settle_timeout), excluded=excluded,
                       critical=critical, supports=self._supports(), profiles=self.profiles,
                       generation=self.generation)

    def _members(self) -> dict[str, list[Device]]:
        fleet = self.fleet
        owner: dict[str, str] = {}
        for feed in self.section.feeds:
            for range_id in feed_ranges(feed, self.config.network):
                owner[range_id] = feed.name
        members: dict[str, list[Device]] = {feed.name: [] for feed in self.section.feeds}
        if fleet is not None:
            for device in fleet.inventory.devices():
                name = owner.get(device.range_id)
                if name is not None:
                    members[name].append(device)
        return members

    def _supports(self) -> Callable[[Device], frozenset[Action]]:
        controller = self.controller
        if controller is None:
            return lambda device: frozenset()
        return controller.supports

    def assess_all(self, now: float | None = None) -> list[tuple[FeedConfig, Assessment]]:
        """Every feed's assessment now (the decision part of a cycle; nothing is sent)."""
        now = time.time() if now is None else now
        ctx = self._context(now)
        zone = farm_zone(self.section.timezone)
        members = self._members()
        out = []
        for feed in self.section.feeds:
            runtime = self.feeds.setdefault(feed.name, FeedRuntime(feed.name))
            given = Inputs(self.section, members.get(feed.name, []), self.state.miners,
                           self.state.overrides.get(feed.name, {}), self.meters, ctx, zone)
            out.append((feed, assess(feed, runtime, given)))
        return out

    def cycle(self, acc: Accumulator | None = None) -> None:
        """One cycle for every feed."""
        started = time.perf_counter()
        results = self.assess_all()
        self.decide_time = time.perf_counter() - started
        self.cycles += 1
        for feed, result in results:
            runtime = self.feeds[feed.name]
            self._act(feed, runtime, result)
            record(runtime, result)
            self._learn(runtime, result)
            if acc is not None:
                acc.add(self._metric(feed, runtime, result))

    def _act(self, feed: FeedConfig, runtime: FeedRuntime, result: Assessment) -> None:
        if result.mode == "off":
            runtime.state, runtime.problem = "off", ""
            self._alert(runtime, feed, result, stale=False)
            return
        if result.measured.watts is None:
            if runtime.state != "hold":
                self._audit({"event": "hold", "method": "power/hold", "who": self._who(feed),
                             "feed": feed.name, "reason": result.measured.problem})
                log.warning("power control holds: no fresh meter reading", feed=feed.name,
                            problem=result.measured.problem)
            runtime.state, runtime.problem = "hold", result.measured.problem
            runtime.problem_note = result.measured.note
            self._alert(runtime, feed, result, stale=True)
            return
        self._alert(runtime, feed, result, stale=False)
        plan = result.plan
        runtime.problem, runtime.problem_note = "", ("", {})
        if plan is None or not plan.steps:
            runtime.state = "settling" if result.in_flight else "ok"
            runtime.dry_key = ()
            return
        runtime.state = "shedding" if plan.direction == "shed" else "restoring"
        reason = self._reason(result, plan)
        if result.mode == "dry-run":
            key = tuple((s.mac, s.to) for s in plan.steps)  # a percent moving by one is noise
            if key != runtime.dry_key:
                runtime.dry_key = key
                self._audit({"event": "plan", "method": "power/plan", "mode": "dry-run",
                             "who": self._who(feed), "feed": feed.name, "reason": reason,
                             "direction": plan.direction,
                             "miners": [s.describe() for s in plan.steps]})
            return
        self._send(feed, runtime, result, plan, reason)

    @staticmethod
    def _who(feed: FeedConfig) -> str:
        return f"power:{feed.name}"

    @staticmethod
    def _reason(result: Assessment, plan: Plan) -> str:
        measured = (result.measured.watts or 0.0) / 1000
        predicted = (result.predicted_w or 0.0) / 1000
        budget = result.tuning.budget_w / 1000
        source = result.budget.source
        if plan.direction == "shed":
            return (f"over budget: measured {measured:.1f} kW, heading for {predicted:.1f} kW, "
                    f"budget {budget:.1f} kW ({source}); shedding "
                    f"{-plan.delta_w / 1000:.1f} kW")
        return (f"under budget: measured {measured:.1f} kW, heading for {predicted:.1f} kW, "
                f"budget {budget:.1f} kW ({source}); restoring {plan.delta_w / 1000:.1f} kW")

    # -- sending a step -------------------------------------------------------------------

    def _send(self, feed: FeedConfig, runtime: FeedRuntime, result: Assessment, plan: Plan,
              reason: str) -> None:
        fleet, controller = self.fleet, self.controller
        if fleet is None or controller is None:
            runtime.problem = "miner control is not loaded"
            return
        step_id = uuid.uuid4().hex[:12]
        now = time.time()
        for step in plan.steps:
            miner = self.state.miner(step.mac)
            miner.pending = Pending(step_id, step.to, step.pct, step.before_w, step.after_w,
                                    now, miner.level, miner.pct,
                                    meter_before_w=result.measured.watts)
            miner.level, miner.pct, miner.changed_at = step.to, step.pct, now
            miner.managed = step.to != miner.top
            miner.uncertain = False
        for record_ in runtime.open_steps.values():
            record_["clean"] = False
        runtime.open_steps[step_id] = {
            "macs": [s.mac for s in plan.steps], "expected_w": plan.delta_w,
            "meter_before_w": result.measured.watts, "clean": result.in_flight == 0,
            "models": {}}
        miners = [s.describe() for s in plan.steps]
        self._audit({"event": "start", "method": "power/step", "who": self._who(feed),
                     "step_id": step_id, "feed": feed.name, "reason": reason,
                     "direction": plan.direction, "budget_kw": result.tuning.budget_w / 1000,
                     "budget_source": result.budget.source, "miners": miners})
        log.info("power step", feed=feed.name, step_id=step_id, direction=plan.direction,
                 miners=len(plan.steps), delta_kw=round(plan.delta_w / 1000, 2))
        runtime.steps += 1
        runtime.last_step = {
            "step_id": step_id, "at": now, "direction": plan.direction, "reason": reason,
            "measured_kw": round((result.measured.watts or 0.0) / 1000, 3),
            "predicted_kw": round((result.predicted_w or 0.0) / 1000, 3),
            "budget_kw": round(result.tuning.budget_w / 1000, 3),
            "budget_source": result.budget.source,
            "delta_kw": round(plan.delta_w / 1000, 3), "miners": miners, "results": None}
        self.steps_sent += 1
        self.state.save()
        task = asyncio.get_running_loop().create_task(
            self._run_step(feed.name, step_id, plan.steps, reason, fleet, controller),
            name=f"power step {feed.name} {step_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run_step(self, feed: str, step_id: str, steps: list[Step], reason: str,
                        fleet: MinerFleet, controller: Controller) -> None:
        limit = asyncio.Semaphore(max(1, self.config.agent.control_concurrency))
        started = time.monotonic()

        async def one(step: Step) -> dict[str, Any]:
            async with limit:
                device = fleet.inventory.get(step.mac)
                if device is None:
                    return {"success": False, "payload": "no longer in the inventory"}
                outcome: dict[str, Any] = {"success": True, "payload": None}
                for n, (action, params) in enumerate(step.actions):
                    outcome = await controller.act(device, Action(action), params)
                    if not outcome["success"]:
                        if n > 0 and not str(outcome["payload"]).startswith(UNKNOWN_PREFIX):
                            outcome = {"success": False, "payload": UNKNOWN_PREFIX +
                                       f"partly applied: {outcome['payload']}"}
                        break
                return outcome

        results = await asyncio.gather(*(one(step) for step in steps))
        summary = {"ok": 0, "failed": 0, "unknown": 0}
        done_at = time.time()
        for step, outcome in zip(steps, results, strict=True):
            summary[self._landed(step, step_id, outcome, done_at)] += 1
        by_mac = {s.mac: o for s, o in zip(steps, results, strict=True)}
        self._audit({"event": "end", "method": "power/step", "who": f"power:{feed}",
                     "step_id": step_id, "feed": feed, "reason": reason, "summary": summary,
                     "results": by_mac, "duration_s": round(time.monotonic() - started, 3)})
        runtime = self.feeds.get(feed)
        if runtime is not None and runtime.last_step and \
                runtime.last_step.get("step_id") == step_id:
            runtime.last_step["results"] = summary
        self.state.save()

    def _landed(self, step: Step, step_id: str, outcome: dict[str, Any], done_at: float
                ) -> str:
        """Record one miner's result; answers ok, unknown or failed."""
        miner = self.state.miner(step.mac)
        pending = miner.pending
        if pending is None or pending.step_id != step_id:
            return "ok" if outcome["success"] else "failed"
        pending.done_at = done_at
        if outcome["success"]:
            pending.outcome = "ok"
            return "ok"
        text = str(outcome["payload"])
        if text.startswith(UNKNOWN_PREFIX):
            pending.outcome = "unknown"  # maybe applied: never sent again blindly
            return "unknown"
        miner.level, miner.pct = pending.prev_level, pending.prev_pct
        miner.managed = miner.level != miner.top
        miner.pending = None
        if step.to == "low_power" and "low_power" in text and "not supported" in text:
            miner.low_unsupported = True
        return "failed"

    # -- learning from the meter -----------------------------------------------------------

    def _learn(self, runtime: FeedRuntime, result: Assessment) -> None:
        """When a step's miners have all settled and nothing else moved meanwhile, the meter's
        response refines the model table for the miners that report no power."""
        estimated = {d.mac: (d.model, table) for d, _, table, _ in result.rows}
        for step_id, info in list(runtime.open_steps.items()):
            macs = info["macs"]
            if any(self.state.miners.get(m) is not None and
                   self.state.miners[m].pending is not None and
                   self.state.miners[m].pending.step_id == step_id for m in macs):
                continue
            del runtime.open_steps[step_id]
            before, after = info["meter_before_w"], result.measured.watts
            expected = info["expected_w"]
            if not info["clean"] or before is None or after is None or abs(expected) < 1000 \
                    or result.in_flight:
                continue
            models = {estimated[m][0] for m in macs if m in estimated}
            if all(m in estimated and estimated[m][1] for m in macs):
                ratio = (after - before) / expected
                self.generation += 1
                for model in models:
                    factor = self.refinements.learn(model, ratio)
                    log.info("model draw refined from the meter", model=model,
                             observed_over_expected=round(ratio, 3), factor=factor)

    # -- alerts ----------------------------------------------------------------------------

    def _alert(self, runtime: FeedRuntime, feed: FeedConfig, result: Assessment,
               stale: bool) -> None:
        now = time.time()
        if not stale:
            runtime.unmeasured_since = None
        else:
            if runtime.unmeasured_since is None:
                runtime.unmeasured_since = now
            # A meter not read yet (the agent has just started, or the feed is new) holds the
            # feed at once but alerts only once it has stayed unread for stale_after, like a
            # reading that went stale; a start is not an incident.
            if result.measured.note[0] == "no_reading" and \
                    now - runtime.unmeasured_since < float(self.section.stale_after):
                stale = runtime.stale_since is not None
        was_stale = runtime.stale_since is not None
        if stale != was_stale:
            runtime.stale_since = now if stale else None
            self._notify("meter_stale", feed.name, stale,
                         result.measured.problem if stale else "the meters answer again")
        over = (result.measured.watts is not None and
                result.measured.watts > result.tuning.budget_w)
        if over != (runtime.over_since is not None):
            runtime.over_since = now if over else None
            measured = (result.measured.watts or 0.0) / 1000
            self._notify("feed_over_budget", feed.name, over,
                         f"feed {feed.name}: {measured:.1f} kW measured, budget "
                         f"{result.tuning.budget_w / 1000:.1f} kW ({result.budget.source})"
                         if over else f"feed {feed.name} is within its budget again")

    def _notify(self, condition: str, feed: str, firing: bool, summary: str) -> None:
        reporter = self.context.shared.find(AlertReporter)  # type: ignore[type-abstract]
        hooks = [*self.alert_hooks, *([reporter.report] if reporter is not None else [])]
        for hook in hooks:
            try:
                hook(condition, feed, firing, summary, {"feed": feed})
            except Exception:
                log.exception("power alert hook failed", condition=condition, feed=feed)

    # -- the metric --------------------------------------------------------------------------

    def _metric(self, feed: FeedConfig, runtime: FeedRuntime, result: Assessment) -> Metric:
        counts = result.counts
        fields: dict[str, Any] = {
            "budget_kw": round(result.tuning.budget_w / 1000, 3),
            "budget_source": result.budget.source,
            "estimated_kw": round(result.estimated_w / 1000, 3),
            "deadband_kw": round(result.tuning.deadband_w / 1000, 3),
            "state": runtime.state, "mode": result.mode,
            "meter_stale": result.measured.watts is None,
            "over_budget": runtime.over_since is not None,
            "miners_full": counts["full"], "miners_reduced": counts["reduced"],
            "miners_sleeping": counts["sleeping"], "miners_excluded": counts["excluded"],
            "miners_in_flight": counts["in_flight"],
        }
        if result.measured.watts is not None:
            fields["measured_kw"] = round(result.measured.watts / 1000, 3)
        if result.predicted_w is not None:
            fields["predicted_kw"] = round(result.predicted_w / 1000, 3)
        return Metric(MEASUREMENT, {"feed": feed.name}, fields)

    # -- what the API and the UI call -------------------------------------------------------

    def _feed(self, name: str) -> FeedConfig:
        feed = self.section.feed(name)
        if feed is None:
            known = ", ".join(f.name for f in self.section.feeds) or "none"
            raise ConfigError("feed", f"no feed {name!r} (feeds: {known})")
        return feed

    def _check_budget(self, feed: FeedConfig, budget_kw: float, key: str = "budget_kw"
                      ) -> None:
        if budget_kw < 0:
            raise ConfigError(key, "a budget cannot be below zero")
        if budget_kw > feed.limit:
            raise ConfigError(key, f"{budget_kw:g} kW is above the limit of feed "
                                   f"{feed.name!r} ({feed.limit:g} kW)")

    @staticmethod
    def _check_until(until: float | None, now: float, required: bool) -> None:
        if until is None:
            if required:
                raise ConfigError("until", "a signal needs an end time (until)")
            return
        if until <= now:
            raise ConfigError("until", "the end time is in the past")

    def set_budget(self, name: str, budget_kw: float, until: float | None, who: str) -> None:
        """A budget from the API for feed ``name``, until ``until`` (unix time) or cleared."""
        feed = self._feed(name)
        now = time.time()
        self._check_budget(feed, budget_kw)
        self._check_until(until, now, required=False)
        self.state.overrides.setdefault(name, {})["api"] = Override(
            "api", float(budget_kw), until, who, now)
        self._changed(name, who, "set-budget", {"budget_kw": budget_kw, "until": until})

    def clear_budget(self, name: str, who: str) -> bool:
        """Back to the schedule (and the config): drop the API's budget. True if one was set."""
        self._feed(name)
        removed = self.state.overrides.get(name, {}).pop("api", None) is not None
        self._changed(name, who, "clear-budget", {"removed": removed})
        return removed

    def signal(self, names: list[str] | None, kind: str, until: float | None, who: str, *,
               budget_kw: float | None = None, price: float | None = None) -> list[str]:
        """A demand-response request ("reduce to ``budget_kw`` until ``until``") or a price
        (curtails feeds whose strike price it passes) for ``names`` (None: every feed).
        Checks everything before changing anything; answers the feeds it applies to."""
        now = time.time()
        if kind not in SIGNAL_KINDS:
            raise ConfigError("kind", f"expected {' or '.join(SIGNAL_KINDS)}, got {kind!r}")
        self._check_until(until, now, required=True)
        feeds = [self._feed(n) for n in names] if names else list(self.section.feeds)
        if not feeds:
            raise ConfigError("feed", "there are no feeds ([[power.feeds]])")
        if kind == "demand_response":
            if budget_kw is None:
                raise ConfigError("budget_kw", "a demand-response signal needs budget_kw")
            for feed in feeds:
                self._check_budget(feed, budget_kw)
        elif price is None:
            raise ConfigError("price", "a price signal needs the price")
        applied = []
        for feed in feeds:
            if kind == "price" and feed.strike_price is None:
                continue
            kw = float(budget_kw) if budget_kw is not None else feed.price_floor_kw
            self.state.overrides.setdefault(feed.name, {})[kind] = Override(
                kind, kw, until, who, now, price)
            applied.append(feed.name)
        if kind == "price" and not applied:
            raise ConfigError("price", "no feed has a strike_price: a price signal would "
                                       "change nothing")
        for name in applied:
            self._changed(name, who, f"signal {kind}",
                          {"budget_kw": budget_kw, "price": price, "until": until})
        return applied

    def clear_signal(self, names: list[str] | None, kind: str | None, who: str) -> int:
        feeds = [self._feed(n) for n in names] if names else list(self.section.feeds)
        if kind is not None and kind not in SIGNAL_KINDS:
            raise ConfigError("kind", f"expected {' or '.join(SIGNAL_KINDS)}, got {kind!r}")
        removed = 0
        for feed in feeds:
            kinds = self.state.overrides.get(feed.name, {})
            for k in [kind] if kind else list(SIGNAL_KINDS):
                if kinds.pop(k, None) is not None:
                    removed += 1
                    self._changed(feed.name, who, f"clear-signal {k}", {})
        return removed

    def _changed(self, feed: str, who: str, what: str, details: dict[str, Any]) -> None:
        self._audit({"event": "budget", "method": f"power/{what}", "who": who, "feed": feed,
                     **details})
        log.info("power budget changed", feed=feed, what=what, who=who, **details)
        self.state.save()

    def feed_status(self, name: str, *, miners: bool = False, history: bool = False
                    ) -> dict[str, Any]:
        feed = self._feed(name)
        runtime = self.feeds.get(name) or FeedRuntime(name)
        result = runtime.last
        out: dict[str, Any] = {
            "name": feed.name, "mode": feed.mode or self.section.mode, "state": runtime.state,
            "problem": runtime.problem, "problem_note": runtime.problem_note[0],
            "problem_args": runtime.problem_note[1], "limit_kw": feed.limit,
            "base_load_kw": feed.base_load_kw, "meters": list(feed.meters),
            "groups": list(feed.groups), "ranges": list(feed.ranges),
            "last_step": runtime.last_step, "steps": runtime.steps,
            "alerts": {"meter_stale": runtime.stale_since is not None,
                       "over_budget": runtime.over_since is not None},
        }
        if result is None:
            out.update({"budget_kw": feed.budget_kw, "budget_source": "config",
                        "sources": [], "measured_kw": None, "estimated_kw": None,
                        "predicted_kw": None, "miners": {}, "plan": plan_dict_empty()})
        else:
            out.update({
                "budget_kw": round(result.tuning.budget_w / 1000, 3),
                "budget_source": result.budget.source, "budget_until": result.budget.until,
                "deadband_kw": round(result.tuning.deadband_w / 1000, 3),
                "sources": [s.as_dict() for s in result.found],
                "measured_kw": None if result.measured.watts is None
                else round(result.measured.watts / 1000, 3),
                "measured_at": result.measured.at or None,
                "estimated_kw": round(result.estimated_w / 1000, 3),
                "predicted_kw": None if result.predicted_w is None
                else round(result.predicted_w / 1000, 3),
                "offset_kw": round(runtime.offset_w / 1000, 3),
                "miners": result.counts, "plan": plan_dict(result),
            })
            if miners:
                out["miner_list"] = [
                    {"mac": v.mac, "ip": v.ip, "model": v.model, "level": v.level,
                     "pct": v.pct, "kw": round(v.est_w / 1000, 3), "estimated": v.estimated,
                     "jth": None if v.jth == float("inf") else round(v.jth, 2),
                     "status": v.status, "managed": v.managed}
                    for v in result.views]
        if history:
            out["history"] = [[round(t, 1), m, round(e, 3), round(b, 3)]
                              for t, m, e, b in runtime.history]
        return out

    def status(self) -> dict[str, Any]:
        """For ``webbo status`` and the agent's status."""
        return {
            "mode": self.section.mode, "cycles": self.cycles,
            "decide_time_s": round(self.decide_time, 6), "steps_sent": self.steps_sent,
            "steps_running": len(self.tasks),
            "feeds": {name: {"state": rt.state, "problem": rt.problem,
                             "budget_kw": None if rt.last is None
                             else round(rt.last.tuning.budget_w / 1000, 3),
                             "measured_kw": None if rt.last is None or
                             rt.last.measured.watts is None
                             else round(rt.last.measured.watts / 1000, 3)}
                      for name, rt in self.feeds.items()},
        }

    async def close(self) -> None:
        for task in list(self.tasks):  # writes in flight finish: cutting them is worse
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), 30)
        self.state.save()


def plan_dict_empty() -> dict[str, Any]:
    return {"direction": "none", "need_kw": 0.0, "cycles": []}


def parse_until(value: Any, zone_name: str) -> float | None:
    """An end time from the API: ISO 8601 (without an offset: the farm's time zone) or unix
    seconds; None stays None. Raises ConfigError for anything else."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError("until", "expected an ISO 8601 time or unix seconds")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ConfigError("until", f"not an ISO 8601 time: {value!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=farm_zone(zone_name))
        return moment.timestamp()
    raise ConfigError("until", "expected an ISO 8601 time or unix seconds")

