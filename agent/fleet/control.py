"""Control: selector → devices → a task → one driver method per device → ``{mac: {success,
payload}}``.

This is the engine behind the API's miner methods (manual §3.5). It knows no make and no HTTP:

* :func:`~webbo.agent.fleet.selectors.select` turns the manual's selector into inventory
  devices; a MAC the system does not know still gets an entry in the result (a failure that
  says so) rather than vanishing silently.
* :class:`Controller` runs an action on many devices with at most ``[agent]
  control_concurrency`` at once, calling the method of the driver that owns each device
  (:meth:`MinerFleet.driver_for <webbo.agent.fleet.discovery.MinerFleet.driver_for>`). A
  cancelled task starts no further device; actions already running finish (a write cut short
  has an unknown outcome, which is worse than letting it end).
* ``set_pools`` is merged here, not in drivers: exactly three slots, ``null`` keeps the device's
  current slot, and the worker suffix (``ip``, ``no_change``, ``empty``) is applied per device
  (:mod:`webbo.agent.fleet.pools`).
* Every task is written to the audit log (who, what, selector, device count, result summary).

A write whose outcome is unknown (:class:`~webbo.agent.core.errors.OutcomeUnknownError`, or our
own deadline expiring) is reported as such for that device and never retried.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

import msgspec
import structlog

from webbo.agent.core.audit import redact
from webbo.agent.core.errors import DeviceError, OutcomeUnknownError
from webbo.agent.core.tasks import Task, TaskService
from webbo.agent.fleet.discovery import MinerFleet
from webbo.agent.fleet.driver import WRITE_ACTIONS, Action, MinerDriver
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.model import LedStatus, MiningPool, WorkMode
from webbo.agent.fleet.pools import PoolSpec, merge_pools, needs_current_pools, normalise_pools
from webbo.agent.fleet.selectors import Selection, Selector, select

log = structlog.get_logger("webbo.control")

__all__ = ["ACTION_DEADLINE", "UNKNOWN_PREFIX", "Controller", "invoke"]

ACTION_DEADLINE = 300.0
"""Longest one device action may take before it is given up as "outcome unknown". Drivers have
their own, shorter, timeouts; this only guarantees that a task always ends."""
UNKNOWN_PREFIX = "outcome unknown: "


def _outcome(ok: bool, payload: Any) -> dict[str, Any]:
    return {"success": ok, "payload": payload}


def _led(params: Mapping[str, Any]) -> LedStatus:
    status = params.get("status")
    if isinstance(status, bool) or status not in (0, 1):
        raise DeviceError(f"set_led: status must be 0 or 1, got {status!r}")
    return LedStatus(status)


def _mode(params: Mapping[str, Any]) -> WorkMode:
    mode = params.get("mode")
    allowed = (WorkMode.NORMAL.value, WorkMode.SLEEP.value, WorkMode.LOW_POWER.value)
    if mode not in allowed:
        raise DeviceError(f"set_work_mode: mode must be one of {', '.join(allowed)}, "
                          f"got {mode!r}")
    return WorkMode(mode)


def _pools(params: Mapping[str, Any]) -> list[MiningPool]:
    pools = params.get("pools")
    if not isinstance(pools, list | tuple) or len(pools) != 3:
        raise DeviceError("set_pools: expected three pools")
    checked = []
    for n, pool in enumerate(pools, start=1):
        if isinstance(pool, MiningPool):
            checked.append(pool)
            continue
        if not isinstance(pool, Mapping) or not all(
                isinstance(pool.get(k), str) for k in ("address", "worker", "passwd")):
            raise DeviceError(f"set_pools: pool {n} needs address, worker and passwd strings")
        checked.append(MiningPool(address=pool["address"], worker=pool["worker"],
                                  passwd=pool["passwd"]))
    return checked


async def invoke(driver: MinerDriver, device: Device, action: Action,
                  params: Mapping[str, Any]) -> Any:
    """Call ``driver``'s method for ``action`` with the API's parameters (checked and typed);
    answer what the API reports as ``payload``, in plain JSON."""
    if action == Action.REBOOT:
        await driver.reboot(device)
    elif action == Action.GET_LED:
        led = int(await driver.get_led(device))
        if led not in (LedStatus.NORMAL, LedStatus.BLINK):
            raise DeviceError(f"get_led: the driver returned {led!r}, not 0 or 1")
        return led
    elif action == Action.SET_LED:
        await driver.set_led(device, _led(params))
    elif action == Action.GET_WORK_MODE:
        mode = str(getattr(value := await driver.get_work_mode(device), "value", value))
        return mode if mode in WorkMode._value2member_map_ else WorkMode.UNKNOWN.value
    elif action == Action.SET_WORK_MODE:
        await driver.set_work_mode(device, _mode(params))
    elif action == Action.GET_POOLS:
        return normalise_pools(await driver.get_pools(device))
    elif action == Action.SET_POOLS:
        await driver.set_pools(device, _pools(params))
    elif action == Action.SET_POWER_LIMIT:
        watts = params.get("watts")
        if isinstance(watts, bool) or not isinstance(watts, int) or watts <= 0:
            raise DeviceError(f"set_power_limit: watts must be a positive integer, got {watts!r}")
        await driver.set_power_limit(device, watts)
    elif action == Action.COMMAND:
        name, args = params.get("name"), params.get("args") or {}
        if not isinstance(name, str) or not name or not isinstance(args, Mapping):
            raise DeviceError("command: expected a command name and an object of arguments")
        return msgspec.to_builtins(await driver.command(device, name, dict(args)))
    elif action == Action.RAW:
        command, args = params.get("command"), params.get("params") or {}
        if not isinstance(command, str) or not command or not isinstance(args, Mapping):
            raise DeviceError("raw: expected a command name and an object of parameters")
        reply = await driver.raw(device, command, dict(args), bool(params.get("write")))
        return msgspec.to_builtins(reply)
    else:  # pragma: no cover - Action is closed
        raise DeviceError(f"{action}: unknown action")
    return None


def _remember(device: Device, action: Action, params: Mapping[str, Any], result: Any) -> None:
    """What an action just established about the device shows at once in its latest reading
    (the pages and miners/get), not only after the next poll: the LED the operator switched
    on, the mode that was set and read back."""
    reading = device.reading
    if reading is None:
        return
    if action == Action.SET_LED:
        reading.led = LedStatus(params["status"])
    elif action == Action.GET_LED:
        reading.led = LedStatus(result)
    elif action in (Action.SET_WORK_MODE, Action.GET_WORK_MODE):
        mode = WorkMode(params["mode"] if action == Action.SET_WORK_MODE else result)
        if mode != WorkMode.UNKNOWN:
            reading.work_mode = mode


class Controller:
    """Device actions for the API and the UI (the agent's ``Controller`` service)."""

    def __init__(self, fleet: MinerFleet, tasks: TaskService) -> None:
        self.fleet = fleet
        self.tasks = tasks
        self.in_flight = 0
        """Device actions running now (all tasks)."""
        self.peak_in_flight = 0
        """The most device actions that ran at once (reset it to measure a task)."""

    @property
    def audit(self) -> Any:
        return self.tasks.audit

    def select(self, selector: Selector) -> Selection:
        """Resolve a selector against the inventory (raises :class:`SelectionError`)."""
        return select(self.fleet.inventory.devices(), self.fleet.config.network, selector)

    def supports(self, device: Device) -> frozenset[Action]:
        """What the driver that owns ``device`` can do with it (empty when none serves it)."""
        driver = self.fleet.driver_for(device)
        return driver.supports(device) if driver is not None else frozenset()

    def start_action(self, method: str, who: str, selector: Selector, action: Action,
                     params: Mapping[str, Any] | None = None,
                     pools: Sequence[PoolSpec | None] | None = None) -> Task:
        """Select devices (raises :class:`SelectionError` before anything starts) and start a
        task running ``action`` on each; the result is ``{mac: {"success", "payload"}}``."""
        selection = self.select(selector)
        task = self.tasks.create(method, who)
        task.devices = len(selection.devices) + len(selection.missing)
        params = dict(params or {})
        audit_params = redact({**params, **({"pools": [None if p is None else vars(p)
                                                        for p in pools]} if pools else {})})
        self.tasks.audit.write({
            "event": "start", "task_id": task.id, "who": who, "method": method,
            "action": action.value, "selector": selector.describe(), "params": audit_params,
            "devices": task.devices})
        started = time.monotonic()

        async def body(t: Task) -> dict[str, Any]:
            return await self._run_on(t, selection, action, params, pools)

        def end(done: Task) -> None:
            self.tasks.audit.write({
                "event": "end", "task_id": done.id, "who": who, "method": method,
                "action": action.value, "selector": selector.describe(),
                "devices": done.devices, "status": done.status.value, "summary": done.summary,
                "duration_s": round(time.monotonic() - started, 3)})
            log.info("control task done", task_id=done.id, method=method, who=who,
                     status=done.status.value, **done.summary)

        return self.tasks.run(task, body, end)

    # -- running ------------------------------------------------------------------------------

    async def _run_on(self, task: Task, selection: Selection, action: Action,
                      params: dict[str, Any], pools: Sequence[PoolSpec | None] | None
                      ) -> dict[str, Any]:
        results: dict[str, dict[str, Any]] = {}
        summary = {"ok": 0, "failed": 0, "unknown": 0, "not_started": 0}
        devices = selection.devices
        queue = iter(devices)
        limit = max(1, self.fleet.config.agent.control_concurrency)

        async def worker() -> None:
            for device in queue:
                if task.cancel_requested:
                    return
                task.started += 1
                if action == Action.SET_POOLS and pools is not None:
                    outcome = await self.guarded(device, action, self._set_pools(device, pools))
                else:
                    outcome = await self.act(device, action, params)
                results[device.mac] = outcome
                task.done += 1
                if outcome["success"]:
                    summary["ok"] += 1
                elif str(outcome["payload"]).startswith(UNKNOWN_PREFIX):
                    summary["unknown"] += 1
                else:
                    summary["failed"] += 1

        try:
            await asyncio.gather(*(worker() for _ in range(min(limit, max(1, len(devices))))))
        finally:
            summary["not_started"] = len(devices) - task.started
            summary["failed"] += len(selection.missing)
            task.summary = summary
        for mac in selection.missing:
            results[mac] = _outcome(False, f"{mac}: no such device (the sweep has not found it; "
                                           "see /api/mining/miners/get)")
        task.done += len(selection.missing)
        # Results keyed by MAC in the order the devices were selected (by IP).
        ordered = {d.mac: results[d.mac] for d in devices if d.mac in results}
        ordered.update({m: results[m] for m in selection.missing})
        return ordered

    async def call(self, device: Device, action: Action, params: Mapping[str, Any]) -> Any:
        """Run one action on one device through the driver that owns it; returns the result in
        the API's plain JSON shape (raises DeviceError / OutcomeUnknownError)."""
        driver = self.fleet.driver_for(device)
        if driver is None:
            raise DeviceError(f"{action.value}: no [[inputs.{device.driver}]] serves this "
                              f"device's range")
        if not device.ip:
            raise DeviceError(f"{action.value}: the miner has no known address")
        if action not in driver.supports(device):
            if action == Action.GET_WORK_MODE:
                return WorkMode.UNKNOWN.value  # the manual's answer for a mode nobody can read
            raise driver.unsupported(action, device)
        result = await invoke(driver, device, action, params)
        _remember(device, action, params, result)
        if action == Action.SET_WORK_MODE:
            device.work_mode_set = str(params.get("mode", ""))
            self.fleet.inventory.dirty = True
        return result

    async def act(self, device: Device, action: Action, params: Mapping[str, Any]
                  ) -> dict[str, Any]:
        """One device's ``{"success", "payload"}`` for ``action``."""
        return await self.guarded(device, action, self.call(device, action, params))

    async def guarded(self, device: Device, action: Action, work: Awaitable[Any]
                      ) -> dict[str, Any]:
        """Await ``work`` and turn what happens into the device's ``{"success", "payload"}``."""
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            value = await asyncio.wait_for(work, ACTION_DEADLINE)
        except OutcomeUnknownError as exc:
            log.warning("control outcome unknown", mac=device.mac, ip=device.ip,
                        action=action.value, error=str(exc))
            return _outcome(False, UNKNOWN_PREFIX + str(exc))
        except TimeoutError:
            if action in WRITE_ACTIONS:
                return _outcome(False, f"{UNKNOWN_PREFIX}{action.value}: no answer within "
                                       f"{ACTION_DEADLINE:.0f}s (not retried)")
            return _outcome(False, f"{action.value}: no answer within {ACTION_DEADLINE:.0f}s")
        except DeviceError as exc:
            return _outcome(False, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("control action raised", mac=device.mac, action=action.value,
                          driver=device.driver)
            return _outcome(False, f"{action.value}: driver error: {exc!r}")
        finally:
            self.in_flight -= 1
        return _outcome(True, value)

    async def _set_pools(self, device: Device, requested: Sequence[PoolSpec | None]) -> None:
        """Merge the request with the device's current pools and write all three slots.

        Nothing is written when the merged pools equal the current ones (writing pools restarts
        the mining software on most firmware)."""
        current = None
        if needs_current_pools(requested):
            try:
                current = await self.call(device, Action.GET_POOLS, {})
            except DeviceError as exc:  # nothing was written yet: a plain failure
                raise DeviceError(f"set_pools: could not read the current pools first: {exc}"
                                  ) from None
        merged = merge_pools(current, requested, device.ip)
        if current is not None and merged == current:
            return None
        await self.call(device, Action.SET_POOLS, {"pools": merged})
        return None

    def status(self) -> dict[str, Any]:
        return {"actions_in_flight": self.in_flight}
