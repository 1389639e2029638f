"""Mining methods: the Network (manual §3.4) and the miner control methods (§3.5)."""

from __future__ import annotations

from typing import Any

import msgspec

from webbo.agent.fleet.addresses import AddressRow
from webbo.agent.fleet.driver import Action
from webbo.web import services
from webbo.web.api.core import METHODS, Call, Started
from webbo.web.api.schemas import (
    AddressOut,
    CommandParams,
    DeviceResults,
    MinerOut,
    MinersList,
    MinersParams,
    MinersQuery,
    MiningPoolOut,
    Network,
    NetworkOut,
    NoParams,
    SetLedParams,
    SetPoolsParams,
    SetWorkModeParams,
)

MANUAL_NETWORK = {"ip_range_groups": [{"name": "подсобка", "ip_ranges": [
    {"name": "пятая стойка", "first": "10.30.0.0", "last": "10.30.0.128"}]}]}
MANUAL_SET_POOLS = {"ip_range": {"first": "10.30.0.10", "last": "10.30.0.128"}, "pools": [
    None, {"address": "stratum+tcp://super-duper.pool:443", "worker": "james", "passwd": "654321",
           "suffix_type": "ip"}, None]}

# -- network -----------------------------------------------------------------------------------


@METHODS.add("/mining/get-network", NoParams, summary="The polled ranges (Network)",
             tag="network", result=NetworkOut, examples=({},))
async def get_network(call: Call, params: NoParams) -> dict[str, Any]:
    """The groups of ranges the sweep covers (the ``[network]`` of webbo.toml), each with its
    name and uuid. Answers at once. On a hub: every site's groups, each with its ``site``."""
    return services.network(call.agent).payload()


@METHODS.add("/mining/set-network", Network, summary="Replace the polled ranges",
             tag="network", task_result=bool, examples=(MANUAL_NETWORK,))
async def set_network(call: Call, params: Network) -> Any:
    """Replaces the whole Network. Groups and ranges without a ``uuid`` get a new one, which is
    kept from then on. The object is validated first (addresses, ``first`` ≤ ``last``, no
    overlapping ranges, unique ids, the address cap): an invalid one is refused with the
    field's path and nothing changes. Otherwise webbo.toml is rewritten (its comments kept) and
    the agent reloads; the task's result is ``true``. When the new ranges cannot be swept (no
    miner driver is configured) the answer says so in ``warnings`` next to ``task_id``. On a
    hub, each group names its ``site``: the groups of each site named are checked by that site
    (a dry run at every site first: one refusal and nothing changes anywhere), then written by
    it; sites not named keep theirs."""
    task, warnings = await services.network(call.agent).set_network(
        call.who, msgspec.to_builtins(params.ip_range_groups))
    return Started(task, warnings)


# -- miners ------------------------------------------------------------------------------------


def _start(call: Call, method: str, params: MinersParams, action: Action,
           args: dict[str, Any] | None = None) -> Any:
    return call.controller.start_action(method, call.who, params.selector(), action, args)


@METHODS.add("/mining/miners/reboot", MinersParams, summary="Reboot miners", tag="miners",
             task_result=DeviceResults, examples=({"macs": "*"},))
async def reboot(call: Call, params: MinersParams) -> Any:
    """Reboots the selected miners. Result per MAC: ``{"success": true, "payload": null}``."""
    return _start(call, "reboot", params, Action.REBOOT)


@METHODS.add("/mining/miners/get-led-status", MinersParams, summary="LED (locate) status",
             tag="miners", task_result=DeviceResults,
             examples=({"macs": ["ce:86:7e:e5:1b:33"]},))
async def get_led_status(call: Call, params: MinersParams) -> Any:
    """Result per MAC: payload ``1`` when the locate LEDs blink, ``0`` when they do not."""
    return _start(call, "get-led-status", params, Action.GET_LED)


@METHODS.add("/mining/miners/set-led-status", SetLedParams, summary="Blink or stop LEDs",
             tag="miners", task_result=DeviceResults,
             examples=({"ip_range": {"first": "10.30.0.10", "last": "10.30.0.128"}, "status": 1},))
async def set_led_status(call: Call, params: SetLedParams) -> Any:
    """``status`` 1 starts blinking the locate LEDs, 0 stops. Result per MAC: payload null."""
    return _start(call, "set-led-status", params, Action.SET_LED, {"status": params.status})


@METHODS.add("/mining/miners/get-work-mode", MinersParams, summary="Work mode",
             tag="miners", task_result=DeviceResults, examples=({"macs": "*"},))
async def get_work_mode(call: Call, params: MinersParams) -> Any:
    """Result per MAC: payload ``normal``, ``sleep``, ``low_power`` or ``unknown``."""
    return _start(call, "get-work-mode", params, Action.GET_WORK_MODE)


@METHODS.add("/mining/miners/set-work-mode", SetWorkModeParams, summary="Set the work mode",
             tag="miners", task_result=DeviceResults,
             examples=({"macs": "*", "mode": "low_power"},))
async def set_work_mode(call: Call, params: SetWorkModeParams) -> Any:
    """``mode`` is ``normal``, ``sleep`` or ``low_power``. A device reports success once it
    really is in that mode (drivers read it back); a mode its firmware lacks is a failure that
    says so. Result per MAC: payload null."""
    return _start(call, "set-work-mode", params, Action.SET_WORK_MODE, {"mode": params.mode})


@METHODS.add("/mining/miners/get-pools", MinersParams, summary="Mining pools",
             tag="miners", task_result=dict[str, list[MiningPoolOut]],
             examples=({"ip_range": {"first": "10.30.0.10", "last": "10.30.0.150"}},))
async def get_pools(call: Call, params: MinersParams) -> Any:
    """Result per MAC: payload is the device's three pools, each ``{address, worker,
    passwd}`` (an empty slot has empty strings)."""
    return _start(call, "get-pools", params, Action.GET_POOLS)


@METHODS.add("/mining/miners/set-pools", SetPoolsParams, summary="Set mining pools",
             tag="miners", task_result=DeviceResults, examples=(MANUAL_SET_POOLS,))
async def set_pools(call: Call, params: SetPoolsParams) -> Any:
    """``pools`` is exactly three slots, each a MiningPool or null. null keeps the device's
    pool in that slot. ``suffix_type`` sets the worker per device: ``ip`` appends
    ``.<third octet>x<fourth octet>`` of the device's IP (``james`` on 10.30.0.16 →
    ``james.0x16``); ``no_change`` (the default) keeps the suffix the device has in that slot
    now (what follows the first ``.`` of its worker); ``empty`` uses the worker as given. A
    device whose pools would not change is not written to. Result per MAC: payload null."""
    specs = [None if pool is None else pool.spec() for pool in params.pools]
    return call.controller.start_action("set-pools", call.who, params.selector(),
                                        Action.SET_POOLS, pools=specs)


@METHODS.add("/mining/miners/command", CommandParams,
             summary="Run a command of the miners' own API",
             tag="miners", task_result=DeviceResults, ours=True, examples=(
                 {"macs": "*", "command": "summary"},
                 {"macs": ["ce:86:7e:e5:1b:33"], "command": "power_off",
                  "params": {"respbefore": "true"}, "write": True}))
async def miners_command(call: Call, params: CommandParams) -> Any:
    """Sends ``command`` of each selected miner's own API as it is — what the ``whatsminer``
    library's ``get_read_only_info(cmd)`` and ``exec_command(cmd, additional_params)`` do, and
    the same for API v3 (``get.*`` reads, ``set.*`` writes) and cgminer-style RPC. Reads are
    always allowed; a command that changes the miner needs ``write: true`` and the driver's
    ``raw_writes = true`` in webbo.toml (Whatsminer v2 writes go encrypted with the miner's
    token, renewed once when it expired). Audited like every action; a write whose outcome is
    unknown is reported so and never retried. Result per MAC: payload is the miner's reply."""
    return call.controller.start_action(
        "command", call.who, params.selector(), Action.RAW,
        {"command": params.command, "params": params.params, "write": params.write})


# -- inventory ---------------------------------------------------------------------------------


@METHODS.add("/mining/miners/get", MinersQuery, summary="Known miners with latest readings",
             tag="miners", result=MinersList, ours=True,
             examples=({"group": "стенд", "state": ["unreachable", "error"]},))
async def miners_get(call: Call, params: MinersQuery) -> MinersList:
    """The inventory: every miner the sweep found, with its place (group, range), state
    (``new``, ``ok``, or failing: ``unreachable``, ``timeout``, ``error``, with ``error`` saying
    why and ``failing_since`` since when) and latest reading (null until the first successful
    poll). Every address of the ranges is accounted for: ``counts`` has every state, the
    addresses that hold no known miner included (``unrecognised``: something answers that no
    driver knows; ``timeout``: something accepts and then hangs; ``silent``: nothing answers,
    retried after a minute; ``pending``: not visited yet), and they add up to the number of
    addresses; ``addresses`` lists those addresses (the ``state`` filter picks which; without
    it, the unrecognised and timed-out ones). Filters are optional and combine: ``macs``,
    ``group`` and ``range`` (name or uuid), ``state`` (one or a list), on a hub ``site``;
    ``offset`` and ``limit`` page through the result, ordered by IP. On a hub every miner names
    its ``site``, and a site not heard from for ``[hub] stale_after`` shows its miners
    ``stale``. Answers at once."""
    fleet = services.fleet(call.agent)
    # in address order, as task results are (kept by the inventory between changes)
    devices = fleet.inventory.devices_by_ip() if fleet is not None else []
    macs = set(params.macs) if params.macs is not None else None
    states = ({params.state} if isinstance(params.state, str) else set(params.state)
              if params.state is not None else None)
    chosen = [
        d for d in devices
        if (macs is None or d.mac in macs)
        and (params.group is None or params.group in (d.group, d.group_id))
        and (params.range is None or params.range in (d.range, d.range_id))
        and (states is None or d.state in states)
        and (params.site is None or d.site == params.site)
    ]
    end = None if params.limit is None else params.offset + params.limit
    page = chosen[params.offset:end]
    counts: dict[str, int] = {}
    addresses: list[AddressRow] = []
    if fleet is not None:
        summary = fleet.addresses(params.group, params.range)
        counts = summary.counts
        if macs is None:
            addresses = summary.select(states)
    return MinersList(
        total=len(chosen),
        miners=[MinerOut(
            mac=d.mac, ip=d.ip, make=d.make, model=d.model, firmware=d.firmware,
            hostname=d.hostname, serial=d.serial, driver=d.driver, group=d.group,
            group_id=d.group_id, range=d.range, range_id=d.range_id,
            state=d.state,  # type: ignore[arg-type]
            error=d.error, failures=d.failures, failing_since=d.failing_since or None,
            first_seen=d.first_seen, last_seen=d.last_seen, reading=d.reading,
            site=d.site or msgspec.UNSET)
            for d in page],
        counts=counts,
        addresses=[AddressOut(
            ip=a.ip, state=a.state,  # type: ignore[arg-type]
            group=a.group, group_id=a.group_id, range=a.range, range_id=a.range_id,
            since=a.since, until=a.until, ports=list(a.ports), said=list(a.said))
            for a in addresses[params.offset:end]],
        addresses_total=len(addresses))
