"""Settings ▸ Meter settings, and the Meters page.

Both talk to the agent's serial backend (a service the Mercury plugin provides):
"Refresh ports" lists the ports, "Add device" runs the live test of ``add_device`` and says what
the meter answered, the table of added meters deletes with ``delete_device``. The Meters page
reads the live values of each polled meter from the same backend (``meters()``) without
importing the plugin: without meter support the pages say so instead of failing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litestar import Request, Response, get, post

from webbo.agent.core.contract import SerialBackend
from webbo.agent.core.tasks import TaskStatus
from webbo.web import services
from webbo.web.ui.common import agent_of, principal, redirect
from webbo.web.ui.errors import translate_error
from webbo.web.ui.i18n import translator
from webbo.web.ui.render import ctx, html

__all__ = ["meter_handlers"]


BAUDRATES = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
FORM_DEFAULTS = {"port": "", "device_model": "230", "serial_number": "", "address": "",
                 "access_level": "1", "password_1": "111111", "password_2": "222222",
                 "baudrate": "9600", "bytesize": "8", "parity": "N", "stopbits": "1",
                 "timeout": "", "all_ports": ""}


def backend_of(request: Request[Any, Any, Any]) -> SerialBackend | None:
    return services.serial_backend(agent_of(request))


def _number(text: str) -> int | float | str:
    """A typed number (so the backend's checks name a wrong one), else the text as typed."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def device_from_form(form: Mapping[str, str]) -> dict[str, Any]:
    """The manual's device object from the form (empty optional fields left out)."""
    settings: dict[str, Any] = {"baudrate": _number(form["baudrate"]),
                                "bytesize": _number(form["bytesize"]),
                                "parity": form["parity"], "stopbits": _number(form["stopbits"])}
    if form["timeout"]:
        settings["timeout"] = _number(form["timeout"])
    device: dict[str, Any] = {"port": form["port"], "device_model": form["device_model"],
                              "serial_number": form["serial_number"], "port_settings": settings,
                              "access_level": _number(form["access_level"])}
    if form["address"]:
        device["address"] = _number(form["address"])
    for key in ("password_1", "password_2"):
        if form[key]:
            device[key] = form[key]
    return device


def _live_meters(request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
    """The serial backend's live view of each polled meter."""
    backend = backend_of(request)
    return list(backend.meters()) if backend is not None else []


def _meters_page(request: Request[Any, Any, Any], *, status: int = 200,
                 form: Mapping[str, str] | None = None, **values: Any) -> Response[str]:
    backend = backend_of(request)
    devices = list(backend.get_devices()) if backend is not None else []
    live = {m.get("serial_number"): m for m in _live_meters(request)}
    values.setdefault("errors", {})
    values.setdefault("message", "")
    values.setdefault("message_kind", "ok")
    values.setdefault("ports", [])
    values.setdefault("ports_listed", False)
    values.setdefault("focus", None)
    values.setdefault("settings_open", False)
    return html(request, "settings_meters.html", status, active="settings_meters",
                backend=backend is not None, devices=devices, live_by_serial=live,
                form=dict(form or FORM_DEFAULTS),
                models=backend.models if backend is not None else (), baudrates=BAUDRATES, **values)


@get("/settings/meters", sync_to_thread=False, include_in_schema=False)
def meters_form(request: Request[Any, Any, Any]) -> Response[str]:
    _ = translator(ctx(request)["lang"])
    added = request.query_params.get("added")
    deleted = request.query_params.get("deleted")
    message = (_("msettings.added", serial=added) if added
               else _("msettings.deleted", serial=deleted) if deleted else "")
    return _meters_page(request, message=message)


def meter_error_key(path: str) -> str:
    """``device.port_settings.baudrate`` → ``port_settings.baudrate``; ``device`` → ``""``."""
    key = path.removeprefix("device").lstrip(".")
    return key if key in FORM_DEFAULTS or key.startswith("port_settings") else ""


@post("/settings/meters", include_in_schema=False, status_code=200)
async def meters_submit(request: Request[Any, Any, Any]) -> Response[Any]:
    posted = await request.form()
    form = {k: str(posted.get(k, v if k != "all_ports" else "")).strip()
            for k, v in FORM_DEFAULTS.items()}
    _ = translator(ctx(request)["lang"])
    backend = backend_of(request)
    if backend is None:
        return _meters_page(request, status=501, form=form)
    if posted.get("op") == "refresh":
        ports = await backend.get_ports(bool(form["all_ports"]))
        return _meters_page(request, form=form, ports=ports, ports_listed=True, focus="port")
    device = device_from_form(form)

    async def add() -> bool:
        return bool(await backend.add_device(device))

    task = agent_of(request).tasks.start_job("serial/devices/add", principal(request).label,
                                             add, {"device": device, "via": "web UI"})
    assert task.handle is not None
    await task.handle
    if task.status == TaskStatus.SUCCESS and task.result:
        return redirect(f"/settings/meters?added={form['serial_number']}")
    lang = ctx(request)["lang"]
    return _meters_page(request, status=422, form=form, message_kind="error",
                        message=_("msettings.not_added",
                                  error=translate_error(str(task.result), lang)),
                        settings_open=str(task.result).startswith("device.port_settings"),
                        errors=_meter_errors(str(task.result), lang))


def _meter_errors(message: str, lang: str) -> dict[str, str]:
    path, sep, reason = message.partition(": ")
    key = meter_error_key(path) if sep and path.startswith("device") else ""
    return {key: translate_error(reason, lang)} if key else {}


@post("/settings/meters/delete", include_in_schema=False, status_code=303)
async def meters_delete(request: Request[Any, Any, Any]) -> Response[Any]:
    posted = await request.form()
    serial = str(posted.get("serial_number", "")).strip()
    backend = backend_of(request)
    if backend is None:
        return _meters_page(request, status=501)

    async def delete() -> bool:
        return bool(await backend.delete_device(serial))

    task = agent_of(request).tasks.start_job("serial/devices/delete", principal(request).label,
                                             delete, {"serial_number": serial, "via": "web UI"})
    assert task.handle is not None
    await task.handle
    if task.status == TaskStatus.SUCCESS:
        return redirect(f"/settings/meters?deleted={serial}")
    _ = translator(ctx(request)["lang"])
    return _meters_page(request, status=422, message_kind="error",
                        message=f"{_('common.error')}: "
                                f"{translate_error(str(task.result), ctx(request)['lang'])}")


# -- the Meters page -----------------------------------------------------------------------------


def _meters_values(request: Request[Any, Any, Any]) -> dict[str, Any]:
    backend = backend_of(request)
    configured = list(backend.get_devices()) if backend is not None else []
    live = {(m.get("site"), m.get("serial_number")): m for m in _live_meters(request)}
    meters = []
    for device in configured:
        entry = {"state": "new", "error": "", "values": {}, "updated_at": None, **device,
                 **live.get((device.get("site"), device["serial_number"]), {})}
        meters.append(entry)
    total_p = sum(m["values"].get("power_active_w", 0.0) for m in meters)
    total_e = sum(m["values"].get("energy_active_import_kwh", 0.0) for m in meters)
    sites = services.sites(agent_of(request))
    return {"meters": meters, "backend": backend is not None, "total_p": total_p,
            "total_e": total_e, "sites": sites if len(sites) > 1 else []}


@get("/meters", sync_to_thread=False, include_in_schema=False)
def meters_page(request: Request[Any, Any, Any]) -> Response[str]:
    return html(request, "meters.html", active="meters", **_meters_values(request))


@get("/ui/meters/table", sync_to_thread=False, include_in_schema=False)
def meters_table(request: Request[Any, Any, Any]) -> Response[str]:
    return html(request, "_meters_table.html", **_meters_values(request))


meter_handlers = [meters_form, meters_submit, meters_delete, meters_page, meters_table]
