"""The Miners table, a miner's page, the rack map, and control actions from the pages.

Live parts are re-rendered by the server (the same Jinja templates as the first load) and
fetched by the pages' small scripts: ``/ui/miners/rows`` answers the table's parts as JSON,
the other ``/ui/...`` fragments are HTML. Actions start
:class:`~webbo.agent.fleet.control.Controller` tasks exactly as the API's methods do (same
selection, same audit log, results keyed by MAC); the page then follows the task through
``/ui/tasks/{id}`` without consuming it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec
from litestar import Request, Response, get, post
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath

from webbo.agent.alerts.engine import AlertEngine
from webbo.agent.core.tasks import TaskStatus
from webbo.agent.fleet.addresses import AddressRow
from webbo.agent.fleet.discovery import MinerFleet
from webbo.agent.fleet.driver import Action
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.pools import PoolSpec
from webbo.agent.fleet.selectors import SelectionError, Selector
from webbo.web import services
from webbo.web.ui.chart import chart_svg
from webbo.web.ui.common import agent_of, json, principal
from webbo.web.ui.fleet_view import (
    ADDRESS_ONLY,
    PAGE_SIZES,
    MinerQuery,
    Page,
    hottest,
    ratio,
    run_query,
    select,
)
from webbo.web.ui.i18n import translator
from webbo.web.ui.render import ctx, env, fmt_num, fragment, html

__all__ = ["miner_handlers"]

COLUMNS = [
    ("state", "miners.col.state"), ("ip", "miners.col.ip"), ("model", "miners.col.model"),
    ("place", "miners.col.place"), ("hashrate", "miners.col.hashrate"),
    ("power", "miners.col.power"), ("efficiency", "miners.col.efficiency"),
    ("temp", "miners.col.temp"), ("fans", "miners.col.fans"), ("mode", "miners.col.mode"),
    ("led", "miners.col.led"), ("pool", "miners.col.pool"), ("uptime", "miners.col.uptime"),
    ("errors", "miners.col.errors"),
]
"""Table columns: (sort key, label). The hashrate column sorts by hashrate."""
LONG = frozenset({"miners.col.temp_long", "miners.col.fans_long"})
"""Columns whose short header has a longer explanation (its tooltip)."""

JS_TEXTS = ("act.confirm.led_on", "act.confirm.led_off", "act.confirm.reboot",
            "act.confirm.work_mode", "act.confirm.pools", "act.led_on", "act.led_off",
            "act.reboot", "act.work_mode", "act.pools", "act.running", "act.results",
            "act.none", "miners.selected", "miners.select_all_matching", "live.failed")


# -- look ----------------------------------------------------------------------------------------


def temp_level(value: float | None) -> str:
    if value is None:
        return ""
    if value < 80:
        return "l-ok"
    if value < 90:
        return "l-warm"
    if value < 100:
        return "l-hot"
    return "l-crit"


def ratio_level(value: float | None) -> str:
    if value is None:
        return ""
    if value >= 0.95:
        return "l-ok"
    if value >= 0.8:
        return "l-warm"
    if value >= 0.5:
        return "l-hot"
    return "l-crit"


def pool_host(url: str | None) -> str:
    """``stratum+tcp://btc.pool.example:3333`` → ``btc.pool.example:3333``."""
    if not url:
        return "—"
    parts = urlsplit(url if "://" in url else "//" + url)
    return parts.netloc or url


def big_hash(ths: float, lang: str = "ru") -> str:
    """A farm's hashrate in the page's number format (TH/s, PH/s are written so in Russian
    too)."""
    if ths >= 1000:
        return f"{fmt_num(ths / 1000, 2, lang)} PH/s"
    return f"{fmt_num(ths, 1, lang)} TH/s"


POWER_UNITS = {"ru": ("Вт", "кВт"), "en": ("W", "kW")}


def big_power(watts: float, lang: str = "ru") -> str:
    """Power in the page's language: ``3 250 Вт``, ``12,4 кВт``."""
    unit, kilo = POWER_UNITS.get(lang, POWER_UNITS["en"])
    if abs(watts) >= 1000:
        return f"{fmt_num(watts / 1000, 1, lang)} {kilo}"
    return f"{fmt_num(watts, 0, lang)} {unit}"


def page_window(page: int, pages: int) -> list[int | None]:
    """Page numbers to offer: first, last, and two either side of the current (None = gap)."""
    wanted = {1, pages, *range(page - 2, page + 3)}
    out: list[int | None] = []
    for p in sorted(n for n in wanted if 1 <= n <= pages):
        if out and out[-1] is not None and p - out[-1] > 1:  # type: ignore[operator]
            out.append(None)
        out.append(p)
    return out


env.globals.update(temp_level=temp_level, ratio_level=ratio_level, pool_host=pool_host,
                   big_hash=big_hash, big_power=big_power, page_window=page_window,
                   ratio=ratio, hottest=hottest)


# -- the table -----------------------------------------------------------------------------------


def _fleet(request: Request[Any, Any, Any]) -> MinerFleet | None:
    return services.fleet(agent_of(request))


def _devices(request: Request[Any, Any, Any]) -> list[Device]:
    """Every miner, in address order (what :func:`select` takes with ``ip_ordered``)."""
    fleet = _fleet(request)
    return fleet.inventory.devices_by_ip() if fleet is not None else []


def _empty_message(request: Request[Any, Any, Any], query: MinerQuery, inventory: int) -> str:
    _ = translator(ctx(request)["lang"])
    if inventory:
        return _("miners.empty_filter")
    if not services.network(agent_of(request)).section().ip_range_groups:
        return _("miners.empty_ranges")
    return _("miners.empty_sweep")


def _query(request: Request[Any, Any, Any], params: Any) -> MinerQuery:
    """The Miners table's query; ``state=alerting`` takes the MACs with a firing alert."""
    query = MinerQuery.parse(params)
    if query.state == "alerting":
        engine = agent_of(request).service(AlertEngine)
        keys = engine.firing_keys() if engine is not None else set()
        query = dataclasses.replace(query, alerting=frozenset(keys))
    return query


ADDRESS_ROWS_AFTER_MINERS = 200
"""Unrecognised and timed-out addresses shown under the last page of miners (more: filter)."""


def _address_matches(query: MinerQuery, row: AddressRow) -> bool:
    terms = query.q.lower().split()
    if not terms:
        return True
    text = " ".join((row.ip, row.group, row.range, row.state, *row.said)).lower()
    return all(t in text for t in terms)


def columns(sites: Sequence[str]) -> list[tuple[str, str]]:
    """The table's columns; the site's only when there is more than one site (a hub)."""
    if len(sites) < 2:
        return COLUMNS
    at = next(i for i, (key, _) in enumerate(COLUMNS) if key == "place")
    return [*COLUMNS[:at], ("site", "miners.col.site"), *COLUMNS[at:]]


def _table(request: Request[Any, Any, Any]) -> dict[str, Any]:
    query = _query(request, request.query_params)
    fleet = _fleet(request)
    summary = fleet.addresses(query.group or None, query.range or None) if fleet else None
    addresses: list[AddressRow] = []
    if query.state in ADDRESS_ONLY:
        rows = [r for r in (summary.select({query.state}) if summary else [])
                if _address_matches(query, r)]
        pages = max(1, -(-len(rows) // query.size))
        query = dataclasses.replace(query, page=min(query.page, pages))
        start = (query.page - 1) * query.size
        addresses = rows[start:start + query.size]
        page = Page(query, [], len(rows), pages,
                    inventory=len(fleet.inventory) if fleet else 0)
    else:
        page = run_query(_devices(request), query, ip_ordered=True)
        if summary is not None and page.query.page == page.pages and query.state in ("",
                                                                                   "timeout"):
            wanted = {"timeout"} if query.state else {"unrecognised", "timeout"}
            addresses = [r for r in summary.select(wanted)
                         if _address_matches(query, r)][:ADDRESS_ROWS_AFTER_MINERS]
    sites = services.sites(agent_of(request))
    return {"page": page, "addresses": addresses, "summary": summary, "columns": columns(sites),
            "page_sizes": PAGE_SIZES, "long_labels": LONG, "sites": sites if len(sites) > 1 else [],
            "empty_message": _empty_message(request, query, page.inventory)}


@get("/", sync_to_thread=False, include_in_schema=False, status_code=303)
def home() -> Response[Any]:
    from webbo.web.ui.common import redirect

    return redirect("/miners")


@get("/miners", sync_to_thread=False, include_in_schema=False)
def miners(request: Request[Any, Any, Any]) -> Response[str]:
    _ = translator(ctx(request)["lang"])
    return html(request, "miners.html", active="miners",
                network=services.network(agent_of(request)).section(),
                js_texts={k: _(k) for k in JS_TEXTS}, **_table(request))


@get("/ui/miners/rows", sync_to_thread=False, include_in_schema=False)
def miner_rows(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The table's live parts for the query in the query string."""
    table = _table(request)
    page = table["page"]
    return json({
        "head": fragment(request, "_miner_head.html", **table),
        "rows": fragment(request, "_miner_rows.html", **table),
        "summary": fragment(request, "_miner_summary.html", **table),
        "pager": fragment(request, "_pager.html", **table),
        "total": page.total, "page": page.query.page, "pages": page.pages,
        "query": page.query.params(),
        "macs": [d.mac for d in page.devices],
    })


# -- one miner -----------------------------------------------------------------------------------


def _device(request: Request[Any, Any, Any], mac: str) -> Device:
    fleet = _fleet(request)
    device = fleet.inventory.get(mac.lower()) if fleet is not None else None
    if device is None:
        _ = translator(ctx(request)["lang"])
        raise NotFoundException(_("miner.not_found", mac=mac))
    return device


def _miner_values(request: Request[Any, Any, Any], device: Device) -> dict[str, Any]:
    _ = translator(ctx(request)["lang"])
    fleet = _fleet(request)
    series = fleet.history.series(device.mac) if fleet is not None else []
    labels = {"hashrate": _("chart.hashrate"), "expected": _("chart.expected"),
              "board": _("chart.board"), "chip": _("chart.chip")}
    expected = device.reading.expected_hashrate_ths if device.reading is not None else None
    title = _("miner.chart")
    if series:
        hashes = [p.hashrate_ths for p in series if p.hashrate_ths is not None] or [0.0]
        temps = [p.temp_chip_max_c or p.temp_board_max_c or 0.0 for p in series] or [0.0]
        page = ctx(request)
        span, num = page["duration"](series[-1].time - series[0].time), page["num"]
        title = _("miner.chart_label", lo=num(min(hashes), 1), hi=num(max(hashes), 1),
                  t=num(max(temps), 0), span=span)
    return {"d": device, "series": series,
            "chart": chart_svg(series, expected, labels, title) if series else ""}


@get("/miners/{mac:str}", sync_to_thread=False, include_in_schema=False)
def miner_page(request: Request[Any, Any, Any], mac: FromPath[str]) -> Response[str]:
    _ = translator(ctx(request)["lang"])
    device = _device(request, mac)
    return html(request, "miner.html", active="miners", js_texts={k: _(k) for k in JS_TEXTS},
                **_miner_values(request, device))


@get("/ui/miners/{mac:str}/live", sync_to_thread=False, include_in_schema=False)
def miner_live(request: Request[Any, Any, Any], mac: FromPath[str]) -> Response[str]:
    device = _device(request, mac)
    return html(request, "_miner_live.html", **_miner_values(request, device))


# -- actions -------------------------------------------------------------------------------------


class PoolSlot(msgspec.Struct, forbid_unknown_fields=True):
    address: str
    worker: str
    passwd: str = ""
    suffix_type: Literal["ip", "no_change", "empty"] = "no_change"


class ActionRequest(msgspec.Struct, forbid_unknown_fields=True):
    """What the pages send to ``/ui/miners/actions``: an action and either MACs or the table's
    filters (``select every miner that matches``)."""

    action: Literal["reboot", "led_on", "led_off", "work_mode", "pools"]
    macs: list[str] | None = None
    filter: dict[str, str] | None = None
    mode: Literal["normal", "sleep", "low_power"] | None = None
    pools: list[PoolSlot | None] | None = None


@dataclass
class Planned:
    method: str
    action: Action
    params: dict[str, Any] = field(default_factory=dict)
    pools: list[PoolSpec | None] | None = None


def plan(body: ActionRequest) -> Planned:
    """The controller call for a request (raises HTTPException 422 with the reason)."""
    if body.action == "reboot":
        return Planned("reboot", Action.REBOOT)
    if body.action in ("led_on", "led_off"):
        return Planned("set-led-status", Action.SET_LED,
                       {"status": 1 if body.action == "led_on" else 0})
    if body.action == "work_mode":
        if body.mode is None:
            raise HTTPException(status_code=422, detail="mode: choose normal, sleep or low_power")
        return Planned("set-work-mode", Action.SET_WORK_MODE, {"mode": body.mode})
    slots = body.pools or []
    if len(slots) != 3:
        raise HTTPException(status_code=422, detail="pools: exactly three slots are needed")
    if all(slot is None for slot in slots):
        raise HTTPException(status_code=422, detail="pools: every slot is kept; nothing to do")
    specs: list[PoolSpec | None] = []
    for index, slot in enumerate(slots):
        if slot is None:
            specs.append(None)
            continue
        if not slot.address.strip() or not slot.worker.strip():
            raise HTTPException(status_code=422,
                                detail=f"pool {index + 1}: the address and the worker are needed")
        specs.append(PoolSpec(slot.address.strip(), slot.worker.strip(), slot.passwd,
                              slot.suffix_type))
    return Planned("set-pools", Action.SET_POOLS, pools=specs)


def _chosen_macs(request: Request[Any, Any, Any], body: ActionRequest) -> tuple[str, ...]:
    if body.filter is not None:
        query = _query(request, body.filter)
        return tuple(d.mac for d in select(_devices(request), query, ip_ordered=True))
    return tuple(dict.fromkeys(m.lower() for m in body.macs or ()))


@post("/ui/miners/actions", include_in_schema=False, status_code=200)
async def miner_action(request: Request[Any, Any, Any]) -> Response[bytes]:
    try:
        body = msgspec.json.decode(await request.body(), type=ActionRequest)
    except msgspec.DecodeError as exc:
        return json({"error": f"bad request: {exc}"}, 422)
    planned = plan(body)
    macs = _chosen_macs(request, body)
    if not macs:
        return json({"error": translator(ctx(request)["lang"])("act.none")}, 422)
    try:
        controller = services.controller(agent_of(request))
        task = controller.start_action(planned.method, principal(request).label,
                                       Selector(macs=macs), planned.action, planned.params,
                                       pools=planned.pools)
    except SelectionError as exc:
        return json({"error": str(exc)}, 422)
    return json({"task_id": task.id, "devices": task.devices, "action": body.action})


def _results(request: Request[Any, Any, Any], result: Any
             ) -> Sequence[tuple[str, dict[str, Any], Device | None]] | None:
    if not isinstance(result, dict):
        return None
    fleet = _fleet(request)
    return [(mac, outcome, fleet.inventory.get(mac) if fleet is not None else None)
            for mac, outcome in result.items()]


@get("/ui/tasks/{task_id:str}", sync_to_thread=False, include_in_schema=False)
def task_view(request: Request[Any, Any, Any], task_id: FromPath[str]) -> Response[bytes]:
    """A task's progress and, once it ended, its per-miner results (without consuming the
    task: the API's /api/task-info still reports it)."""
    task = agent_of(request).tasks.registry.peek(task_id)
    if task is None:
        return json({"error": "no such task (finished long ago, or never started)"}, 404)
    results = _results(request, task.result) if task.status == TaskStatus.SUCCESS else None
    ok = sum(1 for _, o, _ in results or () if o.get("success"))
    return json({
        "status": task.status.value, "done": task.done, "devices": task.devices,
        "html": fragment(request, "_task_results.html", task=task, results=results, ok=ok,
                         failed=len(results or ()) - ok),
    })


# -- the rack map --------------------------------------------------------------------------------


@dataclass
class Rack:
    name: str
    devices: list[dict[str, Any]] = field(default_factory=list)
    others: int = 0
    """Addresses of the rack that are silent or not visited yet (a count, not tiles)."""


@dataclass
class Room:
    name: str
    racks: list[Rack] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Miners on the map of this room (address tiles are not miners)."""
        return sum(1 for r in self.racks for t in r.devices if t["mac"])

    @property
    def shown(self) -> bool:
        return any(r.devices or r.others for r in self.racks)


def _tile(device: Device, color: str, lang: str) -> dict[str, Any]:
    _ = translator(lang)
    r = device.reading
    off = device.state in ("unreachable", "error")
    if off:
        level = "l-off"
    elif color == "hash":
        level = ratio_level(ratio(device)) or "l-none"
    else:
        level = temp_level(hottest(device)) or "l-none"
    parts = [device.ip or device.mac, device.model, _("state." + device.state)]
    if r is not None and not off:
        if r.hashrate_ths is not None:
            parts.append(f"{fmt_num(r.hashrate_ths, 1, lang)} TH/s")
        rt = ratio(device)
        if rt is not None:
            parts.append(f"{fmt_num(rt * 100, 0, lang)} %")
        hot = hottest(device)
        if hot is not None:
            parts.append(f"{fmt_num(hot, 0, lang)} °C")
    elif device.error:
        parts.append(device.error)
    return {"mac": device.mac, "level": level, "off": off, "label": " · ".join(parts)}


def rooms(request: Request[Any, Any, Any], color: str) -> list[Room]:
    """Groups → ranges → tiles in the order of ``[network]`` (devices by IP inside a rack);
    miners outside every range (a range just removed) come last."""
    lang = ctx(request)["lang"]
    racks: dict[tuple[str, str], Rack] = {}
    out: list[Room] = []
    only = request.query_params.get("site", "")
    for site, g in services.network(agent_of(request)).groups():
        if only and site != only:
            continue
        room = Room(f"{site} · {g.name or g.uuid}" if site else g.name or g.uuid)
        for r in g.ip_ranges:
            rack = Rack(r.name or f"{r.first}–{r.last}")
            racks[(g.uuid, r.uuid)] = rack
            room.racks.append(rack)
        out.append(room)
    stray = Room(translator(lang)("map.unplaced"), [Rack("")])
    for device in select(_devices(request), MinerQuery(sort="ip", site=only), ip_ordered=True):
        rack = racks.get((device.group_id, device.range_id), stray.racks[0])
        rack.devices.append(_tile(device, color, lang))
    fleet = _fleet(request)
    if fleet is not None:
        _ = translator(lang)
        summary = fleet.addresses()
        for row in summary.select({"unrecognised", "timeout"}):
            rack = racks.get((row.group_id, row.range_id))
            if rack is not None:
                rack.devices.append({"mac": "", "level": "l-addr", "off": False, "ip": row.ip,
                                     "label": f"{row.ip} · {_('state.' + row.state)}"})
        for (_gid, rid), rack in racks.items():
            counts = summary.by_range.get(rid, {})
            rack.others = counts.get("silent", 0) + counts.get("pending", 0)
    if stray.count:
        out.append(stray)
    return [room for room in out if room.shown]


def _color(request: Request[Any, Any, Any]) -> str:
    return "hash" if request.query_params.get("color") == "hash" else "temp"


@get("/map", sync_to_thread=False, include_in_schema=False)
def rack_map(request: Request[Any, Any, Any]) -> Response[str]:
    color = _color(request)
    sites = services.sites(agent_of(request))
    return html(request, "map.html", active="map", color=color, rooms=rooms(request, color),
                sites=sites if len(sites) > 1 else [], site=request.query_params.get("site", ""))


@get("/ui/map/tiles", sync_to_thread=False, include_in_schema=False)
def map_tiles(request: Request[Any, Any, Any]) -> Response[str]:
    color = _color(request)
    return html(request, "_map_tiles.html", color=color, rooms=rooms(request, color))


miner_handlers = [home, miners, miner_rows, miner_page, miner_live, miner_action, task_view,
                  rack_map, map_tiles]
