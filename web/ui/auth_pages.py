"""Login, logout and the Security page (API keys, password).

The login goes through :func:`webbo.web.auth.authenticate_user` with the app's
:class:`~webbo.web.auth.LoginLimiter` (per address and user name), so the UI and the API share
one rate limit. scrypt runs in a worker thread: a login never stalls the agent's loop.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie

from webbo.web.auth import TooManyAttempts, authenticate_user, create_api_key
from webbo.web.passwords import MIN_PASSWORD_LENGTH, verify_password
from webbo.web.state import DEFAULT_USER, StateStore
from webbo.web.ui.common import principal, redirect, safe_next
from webbo.web.ui.i18n import translator
from webbo.web.ui.render import ctx, html
from webbo.web.ui.session import (
    COOKIE,
    CSRF_FIELD,
    PRE_COOKIE,
    session_of,
    sessions_of,
)

__all__ = ["auth_handlers", "login_handlers"]


def _secure(request: Request[Any, Any, Any]) -> bool:
    return request.url.scheme == "https"


def _client(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client is not None else "?"


def _store(request: Request[Any, Any, Any]) -> StateStore:
    return request.app.state["store"]


def _login_page(request: Request[Any, Any, Any], *, status: int = 200, error: str = "",
                username: str = DEFAULT_USER, next_: str = "/miners", notice: str = ""
                ) -> Response[str]:
    nonce = secrets.token_urlsafe(24)
    token = sessions_of(request).login_token(nonce)
    response = html(request, "login.html", status, error=error, notice=notice,
                    username=username, next=next_, login_token=token)
    response.cookies.append(Cookie(key=PRE_COOKIE, value=nonce, max_age=3600, httponly=True,
                                   samesite="strict", path="/login", secure=_secure(request)))
    return response


@get("/login", sync_to_thread=False, include_in_schema=False)
def login_form(request: Request[Any, Any, Any]) -> Response[Any]:
    """The login page (the only page open without a session)."""
    sessions = sessions_of(request)
    next_ = safe_next(request.query_params.get("next"))
    if sessions.from_cookie(request.cookies.get(COOKIE)) is not None:
        return redirect(next_)
    notice = ""
    if request.query_params.get("ended"):
        notice = translator(ctx(request)["lang"])("login.expired")
    return _login_page(request, next_=next_, notice=notice)


@post("/login", include_in_schema=False, status_code=303)
async def login_submit(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await request.form()
    _ = translator(ctx(request)["lang"])
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    next_ = safe_next(str(form.get("next", "")))
    sessions = sessions_of(request)
    nonce = request.cookies.get(PRE_COOKIE, "")
    token = str(form.get(CSRF_FIELD, ""))
    if not nonce or not secrets.compare_digest(token, sessions.login_token(nonce)):
        return _login_page(request, status=403, error=_("login.stale"), username=username,
                           next_=next_)
    store = _store(request)
    limiter = request.app.state["login_limiter"]
    try:
        who = await asyncio.to_thread(authenticate_user, store, limiter, _client(request),
                                      username, password)
    except TooManyAttempts as exc:
        return _login_page(request, status=429, username=username, next_=next_,
                           error=_("login.locked", seconds=int(exc.retry_after) + 1))
    if who is None:
        return _login_page(request, status=401, error=_("login.bad"), username=username,
                           next_=next_)
    session = sessions.create(who.user)
    response = redirect(next_)
    response.cookies.append(Cookie(key=COOKIE, value=sessions.cookie_value(session),
                                   max_age=int(sessions.ttl), httponly=True, samesite="lax",
                                   path="/", secure=_secure(request)))
    response.cookies.append(Cookie(key=PRE_COOKIE, value="", max_age=0, path="/login"))
    return response


@post("/logout", include_in_schema=False, status_code=303)
async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    sessions_of(request).end(session_of(request))
    response = redirect("/login")
    response.cookies.append(Cookie(key=COOKIE, value="", max_age=0, httponly=True,
                                   samesite="lax", path="/"))
    return response


# -- the Security page ---------------------------------------------------------------------------


def _security_page(request: Request[Any, Any, Any], status: int = 200, **values: Any
                   ) -> Response[str]:
    keys = sorted(_store(request).data.api_keys, key=lambda k: k.created, reverse=True)
    values.setdefault("errors", {})
    values.setdefault("message", "")
    values.setdefault("message_kind", "ok")
    values.setdefault("new_key", "")
    values.setdefault("new_key_name", "")
    return html(request, "security.html", status, active="security", keys=keys,
                min_length=MIN_PASSWORD_LENGTH, **values)


@get("/security", sync_to_thread=False, include_in_schema=False)
def security(request: Request[Any, Any, Any]) -> Response[str]:
    _ = translator(ctx(request)["lang"])
    revoked = request.query_params.get("revoked", "")
    message = _("sec.revoked", id=revoked) if revoked else ""
    if request.query_params.get("changed"):
        message = _("sec.changed")
    return _security_page(request, message=message)


@post("/security/keys", include_in_schema=False, status_code=200)
async def create_key(request: Request[Any, Any, Any]) -> Response[str]:
    """Create a key and show it, once, on the page this post answers (never in a URL)."""
    form = await request.form()
    name = str(form.get("name", "")).strip()[:80]
    who = principal(request)
    key, record = await asyncio.to_thread(create_api_key, _store(request), name, who.user)
    return _security_page(request, new_key=key, new_key_name=record.name)


@post("/security/keys/revoke", include_in_schema=False, status_code=303)
async def revoke_key(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await request.form()
    key_id = str(form.get("id", ""))
    await asyncio.to_thread(_store(request).remove_key, key_id)
    return redirect(f"/security?revoked={key_id}" if key_id.isalnum() else "/security")


@post("/security/password", include_in_schema=False, status_code=303)
async def change_password(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await request.form()
    _ = translator(ctx(request)["lang"])
    session = session_of(request)
    current = str(form.get("current", ""))
    new = str(form.get("new", ""))
    repeat = str(form.get("repeat", ""))
    store = _store(request)
    limiter = request.app.state["login_limiter"]
    errors: dict[str, str] = {}
    try:
        ok = await asyncio.to_thread(authenticate_user, store, limiter, _client(request),
                                     session.user, current)
    except TooManyAttempts as exc:
        errors["current"] = _("login.locked", seconds=int(exc.retry_after) + 1)
    else:
        if ok is None:
            errors["current"] = _("sec.wrong_current")
    if len(new) < MIN_PASSWORD_LENGTH:
        errors["new"] = _("sec.too_short", n=MIN_PASSWORD_LENGTH)
    elif new != repeat:
        errors["repeat"] = _("sec.mismatch")
    elif not errors and await asyncio.to_thread(
            verify_password, new, store.data.users[session.user].password_hash):
        errors["new"] = _("sec.same")
    if errors:
        return _security_page(request, 422, errors=errors)
    await asyncio.to_thread(store.set_password, session.user, new)
    sessions = sessions_of(request)
    sessions.end_user(session.user, keep=session)
    # the password change is newer than this session: give it a fresh one
    sessions.end(session)
    fresh = sessions.create(session.user)
    response = redirect("/security?changed=1")
    response.cookies.append(Cookie(key=COOKIE, value=sessions.cookie_value(fresh),
                                   max_age=int(sessions.ttl), httponly=True, samesite="lax",
                                   path="/", secure=_secure(request)))
    return response


login_handlers = [login_form, login_submit]
auth_handlers = [logout, security, create_key, revoke_key, change_password]
