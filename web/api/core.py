"""The API's machinery: the envelope, strict body decoding, the method registry, the key guard.

Every answer is ``{"success": bool, "payload": ...}`` (manual §3.2), errors included; the HTTP
status says what kind of error it is:

====  ======================================================================================
400   the body is not JSON (or is empty: methods without parameters take ``{}``)
401   no ``X-Api-Key`` header, or a key that is not valid (revoked, mistyped)
404   no such method
405   not POST
415   ``Content-Type`` is not ``application/json``
422   valid JSON, but not what the method takes (wrong type, unknown field, two selectors,
      a bad MAC, an unknown range id, four pools, ...); the payload names the field
500   a bug: the payload says so, the agent's log has the traceback
501   the method needs a plugin that is not loaded (the serial methods without meter support)
====  ======================================================================================

Nothing is changed by a request that gets an error: parameters are checked before any task
starts or any file is touched.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler

from webbo.agent.core.agent import Agent
from webbo.agent.core.config import ConfigError
from webbo.agent.core.tasks import Task, TaskService
from webbo.agent.fleet.selectors import SelectionError
from webbo.web import services
from webbo.web.api.schemas import HINTS, PATTERN_NAMES
from webbo.web.auth import Principal, verify_api_key
from webbo.web.state import StateStore

log = structlog.get_logger("webbo.web.api")

PRINCIPAL = "webbo.principal"
"""Scope key under which the guard leaves the request's :class:`Principal`."""

_JSON = "application/json"


class ApiError(HTTPException):
    """An error answered in the envelope with this status and message."""

    def __init__(self, status_code: int, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail=message, status_code=status_code, headers=headers)


def envelope(success: bool, payload: Any, status_code: int = 200,
             headers: dict[str, str] | None = None) -> Response[bytes]:
    body = msgspec.json.encode({"success": success, "payload": payload})
    return Response(body, status_code=status_code, media_type=_JSON, headers=headers)


# -- decoding ------------------------------------------------------------------------------------

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<key>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<key>[^`]*)`$")
_REGEX = re.compile(r"^Expected `str` matching regex '(?P<regex>.*)'$", re.S)
_ENUM = re.compile(r"^Invalid enum value (?P<value>.*)$", re.S)
_LENGTH = re.compile(r"^Expected `array` of length (?P<n>\d+)$")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def describe_validation(error: msgspec.ValidationError) -> str:
    """msgspec's ``Expected `int`, got `str` - at `$.status``` → ``status: expected int, got
    str``: the field's path first, then what is wrong in words an operator can act on."""
    match = _AT.match(str(error))
    assert match is not None
    msg, path = match.group("msg"), (match.group("path") or "").lstrip(".")
    if m := _UNKNOWN.match(msg):
        return f"{_join(path, m.group('key'))}: unknown field"
    if m := _MISSING.match(msg):
        return f"{_join(path, m.group('key'))}: required field is missing"
    if m := _REGEX.match(msg):
        regex = m.group("regex").encode().decode("unicode_escape")
        wanted = PATTERN_NAMES.get(regex, f"a string matching {regex}")
        return f"{path}: expected {wanted}"
    leaf = re.sub(r"\[\d+\]$", "", path).rpartition(".")[2]
    if m := _ENUM.match(msg):
        hint = HINTS.get(leaf)
        return f"{path}: invalid value {m.group('value')}" + (f"; expected {hint}" if hint else "")
    if m := _LENGTH.match(msg):
        if leaf == "pools":
            return (f"{path}: expected exactly three slots, each a pool object or null "
                    "(null keeps the device's pool)")
        return f"{path}: expected a list of exactly {m.group('n')} items"
    if msg.startswith("Expected ") and leaf in HINTS:
        msg += f" ({HINTS[leaf]})"
    msg = msg[0].lower() + msg[1:] if msg.startswith("Expected") else msg
    msg = msg.replace("`", "")
    return f"{path}: {msg}" if path else msg


def check_content_type(request: Request[Any, Any, Any]) -> None:
    value = request.headers.get("content-type", "")
    media_type = value.split(";", 1)[0].strip().lower()
    if media_type != _JSON:
        got = f"got {value!r}" if value else "none was sent"
        raise ApiError(415, f"Content-Type must be application/json ({got})")


def decode_params(body: bytes, kind: type) -> Any:
    if not body.strip():
        raise ApiError(400, "the request body is empty: send a JSON object "
                            "(methods without parameters take {})")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise ApiError(422, describe_validation(exc)) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from None


# -- methods -------------------------------------------------------------------------------------


@dataclass
class Call:
    """What a method's function gets besides its parameters."""

    request: Request[Any, Any, Any]
    principal: Principal

    @property
    def agent(self) -> Agent:
        agent: Agent = self.request.app.state["agent"]
        return agent

    @property
    def controller(self) -> services.ControlService:
        try:
            return services.controller(self.agent)
        except services.ServiceMissing as exc:
            raise ApiError(501, str(exc)) from None

    @property
    def tasks(self) -> TaskService:
        return self.agent.tasks

    @property
    def store(self) -> StateStore:
        return self.request.app.state["store"]

    @property
    def who(self) -> str:
        return self.principal.label


MethodFunc = Callable[[Call, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Started:
    """A started task and what the operator should know right away (the answer's payload gets
    ``warnings`` next to ``task_id``; a client that reads only ``task_id`` is unaffected)."""

    task: Task
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ApiMethod:
    """One POST method of the API."""

    path: str
    params: type
    func: MethodFunc
    summary: str
    description: str
    tag: str
    result: Any = None
    """Type of the payload of an immediate method (None for a task method)."""
    task_result: Any = None
    """Type of the eventual ``result`` of a task method (documentation)."""
    errors: tuple[int, ...] = (400, 401, 415, 422, 500)
    ours: bool = False
    """Not in the manual: our addition (docs/API.md says so)."""
    examples: tuple[Any, ...] = ()
    """Request bodies from the manual (OpenAPI examples; a test sends each of them)."""

    @property
    def is_task(self) -> bool:
        return self.result is None


@dataclass
class MethodTable:
    methods: list[ApiMethod] = field(default_factory=list)

    def add(self, path: str, params: type, *, summary: str, tag: str, result: Any = None,
            task_result: Any = None, errors: tuple[int, ...] = (400, 401, 415, 422, 500),
            ours: bool = False, examples: tuple[Any, ...] = ()
            ) -> Callable[[MethodFunc], MethodFunc]:
        def register(func: MethodFunc) -> MethodFunc:
            self.methods.append(ApiMethod(
                path=path, params=params, func=func, summary=summary,
                description=(func.__doc__ or "").strip(), tag=tag, result=result,
                task_result=task_result, errors=errors, ours=ours, examples=examples))
            return func

        return register


    def ordered(self) -> list[ApiMethod]:
        """Methods in the manual's order: tasks, network, miners, serial, then the rest."""
        rank = {tag: i for i, tag in enumerate(TAG_ORDER)}
        return sorted(self.methods, key=lambda m: rank.get(m.tag, len(rank)))


TAG_ORDER = ("tasks", "network", "miners", "serial", "audit", "alerts", "cluster")

METHODS = MethodTable()
"""Every method of the API, in the order docs and the OpenAPI document list them."""


async def run_method(method: ApiMethod, request: Request[Any, Any, Any]) -> Response[bytes]:
    """Check, decode, run, envelope. Errors become :class:`ApiError` before anything runs."""
    check_content_type(request)
    params = decode_params(await request.body(), method.params)
    principal = request.scope.get(PRINCIPAL)  # type: ignore[call-overload]
    if not isinstance(principal, Principal):  # the guard always sets it; never run without
        raise ApiError(401, "not authenticated")
    try:
        result = await method.func(Call(request, principal), params)
    except SelectionError as exc:
        raise ApiError(422, str(exc)) from None
    except ConfigError as exc:
        raise ApiError(422, "\n".join(line.removeprefix("network.")
                                      for line in str(exc).splitlines())) from None
    if isinstance(result, Task):
        return envelope(True, {"task_id": result.id})
    if isinstance(result, Started):
        payload: dict[str, Any] = {"task_id": result.task.id}
        if result.warnings:
            payload["warnings"] = result.warnings
        return envelope(True, payload)
    return envelope(True, result)


# -- the API key guard ---------------------------------------------------------------------------

_background: set[asyncio.Future[None]] = set()


async def require_api_key(connection: ASGIConnection[Any, Any, Any, Any],
                          _: BaseRouteHandler) -> None:
    """Every /api route: a valid ``X-Api-Key`` or 401 (checked before the body is read)."""
    presented = connection.headers.get("x-api-key")
    if not presented:
        raise ApiError(401, "missing X-Api-Key header (create a key on the Security page or "
                            "with `webbo apikey create`)")
    store: StateStore = connection.app.state["store"]
    record = verify_api_key(store, presented.strip())
    if record is None:
        raise ApiError(401, "invalid API key")
    connection.scope[PRINCIPAL] = Principal(  # type: ignore[literal-required]
        kind="key", id=record.id, name=record.name, user=record.user)
    if store.touch_key(record.id):
        future = asyncio.get_running_loop().run_in_executor(None, _flush, store)
        _background.add(future)
        future.add_done_callback(_background.discard)


def _flush(store: StateStore) -> None:
    try:
        store.flush()
    except Exception as exc:
        log.error("could not record the API key's last use", error=str(exc))
