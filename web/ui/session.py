"""Logins for the web UI: server-side sessions behind a signed cookie, and CSRF tokens.

* A session is a random 256-bit id held in the agent's memory with its user and expiry
  (``[web] session_ttl`` from the login; no sliding renewal). Logging out, or changing the
  password, ends it on the server at once — a copied cookie is then worthless. A restart of
  the agent ends every session (operators log in again).
* The cookie carries ``<id>.<HMAC-SHA256(session_secret, id)>``: a forged or truncated cookie
  is refused before any lookup. Flags: HttpOnly, SameSite=Lax (a link from Grafana still lands
  logged in; nothing state-changing is a GET), Path=/, Secure when the request came over HTTPS.
* CSRF: every state-changing request of the UI (form posts and the pages' JSON calls) must carry
  the session's token (``HMAC(secret, "csrf:" + id)``) in the ``_csrf`` form field or the
  ``X-CSRF-Token`` header, and, when the browser sends ``Origin``, come from this very host.
  The guard checks it for every non-GET route of the UI router, so no handler can forget.
  The login form itself is protected by a pre-session token bound to a short-lived cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler

from webbo.web.state import StateStore

__all__ = [
    "COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "CsrfRefused",
    "LoginRequired",
    "Session",
    "Sessions",
    "require_session",
    "session_of",
    "sessions_of",
]

COOKIE = "webbo_session"
PRE_COOKIE = "webbo_login"
CSRF_FIELD = "_csrf"
CSRF_HEADER = "x-csrf-token"
SCOPE_KEY = "webbo.ui.session"
MAX_SESSIONS = 10_000
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class LoginRequired(HTTPException):
    """No valid session: pages redirect to /login, the pages' JSON calls get a 401."""

    status_code = 401

    def __init__(self) -> None:
        super().__init__(detail="login required", status_code=401)


class CsrfRefused(HTTPException):
    """A state-changing request without this session's CSRF token (or from another origin)."""

    def __init__(self, why: str) -> None:
        super().__init__(detail=f"request refused: {why}", status_code=403)


@dataclass
class Session:
    id: str
    user: str
    created: float
    expires: float


class Sessions:
    """The live sessions of one app, in memory, bounded (the oldest go first)."""

    def __init__(self, store: StateStore, ttl: float) -> None:
        self.store = store
        self.ttl = ttl
        self._by_id: OrderedDict[str, Session] = OrderedDict()
        self._fallback_secret = secrets.token_bytes(32)

    @property
    def secret(self) -> bytes:
        """The state file's ``session_secret`` (made at the first start of the server); a
        process-local one when there is none yet (sessions live in memory anyway)."""
        stored = self.store.data.session_secret
        return stored.encode() if stored else self._fallback_secret

    def _mac(self, label: str, value: str) -> str:
        return _b64(hmac.new(self.secret, f"{label}:{value}".encode(), hashlib.sha256).digest())

    # -- sessions -------------------------------------------------------------------------------

    def create(self, user: str, now: float | None = None) -> Session:
        now = time.time() if now is None else now
        session = Session(secrets.token_urlsafe(32), user, now, now + self.ttl)
        self._by_id[session.id] = session
        while len(self._by_id) > MAX_SESSIONS:
            self._by_id.popitem(last=False)
        return session

    def cookie_value(self, session: Session) -> str:
        return f"{session.id}.{self._mac('session', session.id)}"

    def from_cookie(self, value: str | None, now: float | None = None) -> Session | None:
        """The live session a cookie names, or None (forged, ended, expired, user gone or
        password changed since)."""
        if not value:
            return None
        sid, _, mac = value.partition(".")
        if not sid or not hmac.compare_digest(mac.encode(), self._mac("session", sid).encode()):
            return None
        session = self._by_id.get(sid)
        now = time.time() if now is None else now
        if session is None:
            return None
        if session.expires <= now:
            del self._by_id[sid]
            return None
        record = self.store.data.users.get(session.user)
        if record is None or record.changed > session.created:
            del self._by_id[sid]
            return None
        return session

    def end(self, session: Session) -> None:
        self._by_id.pop(session.id, None)

    def end_user(self, user: str, keep: Session | None = None) -> int:
        """End every session of ``user`` but ``keep``; returns how many ended."""
        gone = [s.id for s in self._by_id.values() if s.user == user and s is not keep]
        for sid in gone:
            del self._by_id[sid]
        return len(gone)

    def __len__(self) -> int:
        return len(self._by_id)

    # -- CSRF -----------------------------------------------------------------------------------

    def csrf_token(self, session: Session) -> str:
        return self._mac("csrf", session.id)

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token).encode(),
                                                   self.csrf_token(session).encode())

    def login_token(self, nonce: str) -> str:
        """The login form's token, bound to the pre-session cookie ``nonce``."""
        return self._mac("login", nonce)


def sessions_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Sessions:
    """The app's session table (made on first use, as ``app.state["ui_sessions"]``)."""
    state = connection.app.state
    sessions = state.get("ui_sessions")
    if sessions is None:
        agent = state["agent"]
        sessions = Sessions(state["store"], float(agent.config.web.session_ttl))
        state["ui_sessions"] = sessions
    sessions.ttl = float(state["agent"].config.web.session_ttl)
    return sessions


def session_of(request: Request[Any, Any, Any]) -> Session:
    """The session the guard found for this request."""
    session = request.scope.get(SCOPE_KEY)  # type: ignore[call-overload]
    if not isinstance(session, Session):
        raise LoginRequired()
    return session


def same_origin(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """False when the browser says the request comes from a page of another origin."""
    origin = connection.headers.get("origin")
    if not origin:
        return True  # old browsers and non-browser clients; the token still has to match
    if origin == "null":
        return False
    host = connection.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower()


async def presented_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    token = connection.headers.get(CSRF_HEADER)
    if token:
        return token
    content_type = connection.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        request: Request[Any, Any, Any] = Request(connection.scope, connection.receive)
        form = await request.form()  # cached in the connection state for the handler
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


async def require_session(connection: ASGIConnection[Any, Any, Any, Any],
                          _: BaseRouteHandler) -> None:
    """Guard of every UI route but the login page: a live session, and for anything but
    GET/HEAD the session's CSRF token from this origin."""
    sessions = sessions_of(connection)
    session = sessions.from_cookie(connection.cookies.get(COOKIE))
    if session is None:
        raise LoginRequired()
    if connection.scope.get("method", "GET") not in SAFE_METHODS:
        if not same_origin(connection):
            raise CsrfRefused("it comes from a page of another site")
        if not sessions.csrf_ok(session, await presented_token(connection)):
            raise CsrfRefused("the form is stale or forged (missing or wrong CSRF token); "
                              "reload the page and try again")
    connection.scope[SCOPE_KEY] = session  # type: ignore[literal-required]
