"""The web UI (manual §2, §3.1): server-rendered pages with a few small scripts of our own.

Pages: login; Miners (live table, actions) and a miner's page; the rack map; Meters; Alerts;
Энергия (power per feed); on a hub, Sites; Settings ▸ Miner settings / Meter settings /
Энергия; Security (API keys, password). Every asset is served by the app
itself from ``static/`` (farms are often offline: no CDN, no third-party front-end code).

:func:`ui_routes` returns the route handlers :func:`webbo.web.app.create_app` mounts. Only the
login page and the static assets are open; everything else sits behind
:func:`~webbo.web.ui.session.require_session` (a session, plus the CSRF token for anything but
GET/HEAD), which a test proves by enumerating every route the app registers.
"""

from __future__ import annotations

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from webbo.web.ui.alert_pages import alert_handlers
from webbo.web.ui.auth_pages import auth_handlers, login_handlers
from webbo.web.ui.common import ui_exception_handlers
from webbo.web.ui.meter_pages import meter_handlers
from webbo.web.ui.miner_pages import miner_handlers
from webbo.web.ui.network_pages import network_handlers
from webbo.web.ui.power_pages import power_handlers
from webbo.web.ui.render import STATIC
from webbo.web.ui.session import require_session
from webbo.web.ui.site_pages import site_handlers

__all__ = ["ui_routes"]


def ui_routes() -> list[ControllerRouterHandler]:
    static = create_static_files_router(
        path="/static", directories=[STATIC], name="ui_static",
        cache_control=CacheControlHeader(max_age=300),
        exception_handlers=ui_exception_handlers)
    open_pages = Router(path="/", route_handlers=list(login_handlers),
                        exception_handlers=ui_exception_handlers)
    pages = Router(path="/", route_handlers=[*auth_handlers, *miner_handlers,
                                             *network_handlers, *meter_handlers, *site_handlers,
                                             *alert_handlers, *power_handlers],
                   guards=[require_session], exception_handlers=ui_exception_handlers)
    return [static, open_pages, pages]
