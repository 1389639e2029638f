"""The cgminer-compatible RPC on TCP 4028, shared by every driver that speaks it (cgminer,
bmminer on Antminer, btminer on Whatsminer v1/v2).

Wire facts (reference §1): one request per connection; the request is JSON
``{"command": "summary"}`` (btminer also takes ``"cmd"``); the reply is JSON followed by one
NUL byte, then the server closes. ``"summary+stats+pools"`` asks several report commands at once
and nests each full reply, in a one-element list, under its command name; some firmwares refuse
it, so :func:`multicall` falls back to one command per connection.

Firmwares send broken JSON in known ways (reference §1.4). :func:`decode` tries the fast, strict
parse first and repairs only when that fails, so the repairs cost nothing on healthy devices.
Numbers often arrive as strings (``"GHS 5s": "140258.58"``): read them with
:mod:`webbo.plugins.common.numbers`, which never raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import msgspec

from webbo.agent.plugin import DeviceError, DeviceTimeout, Net, OutcomeUnknownError
from webbo.plugins.common.numbers import as_int

__all__ = [
    "READ_COMMANDS",
    "RpcError",
    "call",
    "decode",
    "encode_request",
    "joined",
    "multicall",
    "probe_call",
    "raw_call",
    "repair",
]

DEFAULT_PORT = 4028
_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def nul_terminated(buffer: bytearray) -> bool:
    """A cgminer reply is complete when it ends with one NUL byte."""
    return buffer.endswith(b"\x00")


class RpcError(DeviceError):
    """The device answered with STATUS E/F (or an unusable reply) to a command."""

    def __init__(self, message: str, code: int | None = None, status: str = "E") -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class GarbledReply(DeviceError):
    """The reply could not be read as JSON, even after the known repairs."""


def encode_request(command: str, parameter: str | None = None, *, key: str = "command",
                   **extra: Any) -> bytes:
    """``{"command": ..., "parameter": ...}`` plus any top-level extras (e.g. ``new_api``)."""
    body: dict[str, Any] = {key: command}
    if parameter is not None:
        body["parameter"] = parameter
    body.update(extra)
    return _encoder.encode(body)


# -- repairs (reference §1.4) -------------------------------------------------------------------

_BARE_NONFINITE = re.compile(rb'(:\s*)-?(?:inf|nan)\b', re.I)
_QUOTED_NONFINITE = re.compile(rb'(:\s*)"-?(?:inf|nan)"', re.I)
_ERROR_CODE_LIST = re.compile(rb'"error_code"\s*:\s*\[((?:\s*"[^"]*"\s*:\s*"[^"]*"\s*,?)*)\]')


def _close_truncated(data: bytes) -> bytes:
    """Cut a reply that stopped mid-way (btminer's overflowing buffer) after its last complete
    element and close every open bracket, so what did arrive can still be read."""
    stack: list[int] = []
    in_string = escaped = False
    last_cut = -1
    cut_stack: list[int] = []
    for index, byte in enumerate(data):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
            continue
        if byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):  # { [
            stack.append(byte)
        elif byte in (0x7D, 0x5D):  # } ]
            if stack:
                stack.pop()
            if not stack:
                return data[: index + 1]
        elif byte == 0x2C:  # a comma ends a complete element at this depth
            last_cut = index
            cut_stack = list(stack)
    if last_cut < 0:
        return data
    closers = b"".join(b"}" if opener == 0x7B else b"]" for opener in reversed(cut_stack))
    return data[:last_cut] + closers


def repair(raw: bytes) -> bytes:
    """Apply the known firmware JSON fixes, in the order clients have learnt to apply them."""
    data = raw.rstrip(b"\x00").strip()
    data = data.replace(b",}", b"}").replace(b",]", b"]")  # trailing commas (btminer)
    data = data.replace(b"\n", b"").replace(b"\r", b"")  # embedded newlines (btminer)
    data = data.replace(b"}{", b"},{")  # missing comma between objects (bmminer STATS)
    data = data.replace(b"[,{", b"[{")  # leading comma in an array (bmminer)
    data = data.replace(b'""temp0', b'","temp0')  # btminer 2023-01-06 build
    data = _QUOTED_NONFINITE.sub(rb"\g<1>0", data)  # Avalon "inf"/"nan"
    data = _BARE_NONFINITE.sub(rb"\g<1>0", data)
    if data.startswith(b","):  # Avalon garbage such as ,"id":1}
        data = b"{" + data[1:]
    data = _ERROR_CODE_LIST.sub(rb'"error_code":{\1}', data)  # btminer 2.0.4 list-as-dict
    if data and not data.endswith((b"}", b"]")):
        data = _close_truncated(data)
    return data


def decode(raw: bytes) -> dict[str, Any]:
    """Parse one reply: strict first, repaired if needed. Raises :class:`GarbledReply`, also
    for a reply the connection cut short (no NUL, no closing bracket)."""
    body = raw[:-1] if raw.endswith(b"\x00") else raw
    try:
        data = _decoder.decode(body)
    except msgspec.DecodeError:
        if not raw.endswith(b"\x00") and raw.lstrip().startswith(b"{") and \
                not raw.rstrip().endswith((b"}", b"]")):
            # No NUL and no closing bracket: the connection ended mid-reply. (A reply that
            # overflowed btminer's buffer is cut too, but still ends with its NUL.)
            raise GarbledReply(f"reply cut short after {len(raw)} bytes") from None
        fixed = repair(raw)
        try:
            data = _decoder.decode(fixed)
        except msgspec.DecodeError:
            text = raw[:120].decode("utf-8", "replace")
            if not raw.strip(b"\x00 \r\n\t"):
                raise GarbledReply("empty reply") from None
            raise GarbledReply(f"unreadable reply: {text!r}") from None
    if not isinstance(data, dict):
        raise GarbledReply(f"reply is a {type(data).__name__}, not an object")
    return data


def status_of(reply: dict[str, Any]) -> tuple[str, int | None, str]:
    """(letter, code, message) of a reply's STATUS, whichever shape it has."""
    status = reply.get("STATUS")
    if isinstance(status, list) and status and isinstance(status[0], dict):
        entry = status[0]
    elif isinstance(status, dict):
        entry = status
    elif isinstance(status, str):  # btminer flat style: {"STATUS":"S","Code":131,"Msg":...}
        entry = reply
        letter = status
        return letter, as_int(entry.get("Code")), str(entry.get("Msg", ""))
    else:
        return "", None, ""
    return str(entry.get("STATUS", "")), as_int(entry.get("Code")), str(entry.get("Msg", ""))


def check(reply: dict[str, Any], command: str) -> dict[str, Any]:
    """Raise :class:`RpcError` for STATUS E/F; return the reply otherwise."""
    letter, code, message = status_of(reply)
    if letter in ("E", "F"):
        raise RpcError(f"{command}: {message or 'error'}" + (f" (code {code})" if code else ""),
                       code, letter)
    return reply


async def call(net: Net, ip: str, command: str, parameter: str | None = None, *,
               port: int = DEFAULT_PORT, timeout: float | None = None, key: str = "command",
               checked: bool = True, **extra: Any) -> dict[str, Any]:
    """Send one command on its own connection; return the decoded (and checked) reply."""
    raw = await exchange(net, ip, encode_request(command, parameter, key=key, **extra),
                         port=port, timeout=timeout)
    reply = decode(raw)
    return check(reply, command) if checked else reply


READ_COMMANDS = frozenset({
    "version", "config", "summary", "pools", "devs", "edevs", "stats", "estats", "devdetails",
    "coin", "check", "privileged", "notify", "lcd", "usbstats", "lockstats", "asccount",
    "pgacount", "asc", "pga"})
"""cgminer RPC commands that only read (the rest change the device: pools, restart, ascset,
quit, save, ...)."""


async def raw_call(net: Net, ip: str, command: str, params: dict[str, Any], *, write: bool,
                   writes_allowed: bool, setting: str, port: int = DEFAULT_PORT,
                   timeout: float | None = None) -> dict[str, Any]:
    """One command of the RPC as it is, for an operator's raw request: ``params`` may carry
    ``parameter`` (the cgminer parameter string, e.g. ``"0,led,1-1"``). A command outside
    :data:`READ_COMMANDS` changes the device: it needs ``write`` and ``writes_allowed`` (the
    driver's ``setting``, named in the refusal). A write that goes unanswered has an unknown
    outcome and is not retried."""
    reads = command in READ_COMMANDS
    if not reads and not write:
        raise DeviceError(f"{command}: not a read command of the RPC; send it as a write "
                          f"(write: true) if it is meant to change the device")
    if not reads and not writes_allowed:
        raise DeviceError(f"{command}: raw writes are off for these miners ({setting} = false)")
    unknown = sorted(set(params) - {"parameter"})
    if unknown:
        raise DeviceError(f"{command}: unknown parameter {unknown[0]!r} (RPC commands take "
                          '"parameter", a string)')
    parameter = params.get("parameter")
    if parameter is not None and not isinstance(parameter, str | int | float):
        raise DeviceError(f"{command}: parameter must be a string")
    text = None if parameter is None else str(parameter)
    if reads:
        return await call(net, ip, command, text, port=port, timeout=timeout)
    try:
        return await call(net, ip, command, text, port=port, timeout=timeout)
    except DeviceTimeout:
        raise OutcomeUnknownError(f"{command}: no answer in time; the miner may or may not "
                                  "have done it (not retried)") from None


async def exchange(net: Net, ip: str, payload: bytes, *, port: int = DEFAULT_PORT,
                   timeout: float | None = None) -> bytes:
    """Raw request → raw reply (until NUL or EOF). A timeout after part of a reply keeps the
    part, so a half reply can still be repaired and read."""
    try:
        return await net.exchange(ip, port, payload, complete=nul_terminated, timeout=timeout)
    except DeviceTimeout as exc:
        if exc.partial.strip(b"\x00"):
            return exc.partial
        raise


def _split_multi(reply: dict[str, Any], commands: list[str]) -> dict[str, dict[str, Any]] | None:
    """The per-command replies of a ``+`` reply, or None if it is not one."""
    out: dict[str, dict[str, Any]] = {}
    for command in commands:
        part = reply.get(command)
        if isinstance(part, list) and part and isinstance(part[0], dict):
            out[command] = part[0]
        elif isinstance(part, dict):
            out[command] = part
        else:
            return None
    return out


async def joined(net: Net, ip: str, commands: Iterable[str], *, port: int = DEFAULT_PORT,
                 timeout: float | None = None, key: str = "command"
                 ) -> dict[str, dict[str, Any]] | None:
    """Several report commands ``+``-joined on one connection: {command: reply} (each reply
    checked: a command that fails raises), or None when the firmware refuses the join or
    answers it unreadably. Raises :class:`DeviceUnreachable` when nothing answers and
    :class:`DeviceTimeout` when nothing answers in time."""
    wanted = list(dict.fromkeys(commands))
    try:
        raw = await exchange(net, ip, encode_request("+".join(wanted), key=key), port=port,
                             timeout=timeout)
        reply = decode(raw)
    except GarbledReply:
        return None
    parts = _split_multi(reply, wanted)
    if parts is not None:
        for command, part in parts.items():
            check(part, command)
    return parts


async def multicall(net: Net, ip: str, commands: Iterable[str], *, port: int = DEFAULT_PORT,
                    timeout: float | None = None, key: str = "command",
                    allow_multi: bool = True) -> tuple[dict[str, dict[str, Any]], bool]:
    """Ask several report commands; returns ({command: reply}, whether ``+`` worked).

    Each reply is checked; a command that fails raises. When the joined request is refused or
    unreadable, each command is asked on its own connection instead.
    """
    wanted = list(dict.fromkeys(commands))
    if allow_multi and len(wanted) > 1:
        try:
            parts = await joined(net, ip, wanted, port=port, timeout=timeout, key=key)
        except DeviceTimeout:
            parts = None  # a firmware that hangs on a joined request: ask one at a time
        if parts is not None:
            return parts, True
    out = {}
    for command in wanted:
        out[command] = await call(net, ip, command, port=port, timeout=timeout, key=key)
    return out, False


# -- lenient numbers and units ------------------------------------------------------------------












async def probe_call(probe: Any, command: str, *, port: int = DEFAULT_PORT,
                     timeout: float | None = None) -> dict[str, Any]:
    """``command`` asked once per address through an identification
    :class:`~webbo.agent.plugin.Probe` (so every driver that wants RPC ``version`` shares one
    connection). Raises like :func:`call`; the error is remembered too."""

    async def ask() -> dict[str, Any]:
        reply = await call(probe.net, probe.ip, command, port=port, timeout=timeout)
        probe.note(f"rpc {command}: {_snippet(reply)}")
        return reply

    return await probe.ask(("rpc", port, command), ask)


def _snippet(reply: dict[str, Any], limit: int = 200) -> str:
    return _encoder.encode(reply)[:limit].decode("utf-8", "replace")
