"""Whatsminer API v3 on TCP 4433 (reference §3.6).

Every message is framed: 4-byte little-endian length + JSON. Replies are
``{"code": 0, "when": ..., "msg": ..., "desc": "<cmd>"}``; a non-zero code is an error
(-1 failed, -2 unknown command, -3 bad parameter, -4 no permission, -5 out of memory).

Reads (``get.*``) need nothing. A write (``set.*``) carries ``ts``, ``account`` and an
8-character token made from the command, the account's password, the miner's salt (from
``get.device.info`` ``salt``, cached) and ``ts``; sensitive parameters (pools) are encrypted
with the token's full digest. A write refused with -4 is tried once more with the salt fetched
again (it changes when the password does); a second -4 is reported, naming the cause the miner
shows: its API switch off, or a wrong password.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from webbo.agent.plugin import DeviceError, DeviceTimeout, Net, OutcomeUnknownError
from webbo.plugins.common.rpc4028.client import GarbledReply
from webbo.plugins.inputs.whatsminer.crypto import v3_encrypt_param, v3_token
from webbo.plugins.inputs.whatsminer.errors import (
    ENABLE_V3,
    CommandRefused,
    WriteApiDisabled,
    WrongPassword,
)
from webbo.plugins.inputs.whatsminer.wire import (
    decode_body,
    frame,
    frame_complete,
    frames_complete,
    send_write,
    split_frames,
    unframe,
)

__all__ = ["DEFAULT_PORT", "V3Api", "read_request", "v3_error"]

DEFAULT_PORT = 4433
NO_PARAM = object()
_encoder = msgspec.json.Encoder()


def read_request(cmd: str, param: Any = NO_PARAM) -> tuple[str, bytes]:
    """(cmd, framed bytes) of one read: a poll's reads never change, so they are made once."""
    body: dict[str, Any] = {"cmd": cmd}
    if param is not NO_PARAM:
        body["param"] = param
    return cmd, frame(_encoder.encode(body))

_MEANING = {
    -1: "the miner could not do it",
    -2: "this firmware does not know the command",
    -3: "the miner rejected the parameters",
    -4: "no permission",
    -5: "the miner is out of memory",
}


def v3_error(cmd: str, reply: dict[str, Any]) -> CommandRefused:
    code = reply.get("code")
    msg = reply.get("msg")
    meaning = _MEANING.get(code, "error") if isinstance(code, int) else "unreadable answer"
    detail = f" ({msg!r})" if msg else ""
    return CommandRefused(f"{cmd}: {meaning}{detail} (code {code})",
                          code if isinstance(code, int) else None)


class V3Api:
    """v3 access to miners: port, time limits, cached salts, an injectable clock for ``ts``."""

    def __init__(self, net: Net, *, port: int = DEFAULT_PORT, timeout: float | None = None,
                 write_timeout: float = 10.0, clock: Callable[[], float] = time.time) -> None:
        self.net = net
        self.port = port
        self.timeout = timeout
        self.write_timeout = write_timeout
        self.clock = clock
        self._salts: dict[str, str] = {}
        self.one_by_one: set[str] = set()
        """Miners that take one request at a time (see :meth:`reads`)."""

    async def request(self, ip: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send one framed read and return the decoded reply (not yet checked), on the
        connection kept open to this miner (API v3 keeps connections for 300 s)."""
        raw = await self.net.exchange(ip, self.port, frame(json.dumps(body).encode()),
                                      complete=frame_complete, timeout=self.timeout, keep=True)
        return unframe(raw)

    async def reads(self, ip: str, requests: Sequence[tuple[str, bytes]]
                    ) -> dict[str, dict[str, Any]]:
        """Several reads (from :func:`read_request`) in one exchange: sent together on the
        kept connection, the replies read together. {cmd: reply} (not yet checked).

        A firmware that answers only the first of requests sent together (or closes the
        connection after each reply) is remembered and asked one request at a time."""
        if len(requests) == 1 or ip in self.one_by_one:
            return await self._one_at_a_time(ip, requests)
        try:
            raw = await self.net.exchange(ip, self.port, b"".join(r[1] for r in requests),
                                          complete=frames_complete(len(requests)),
                                          timeout=self.timeout, keep=True)
        except DeviceTimeout as exc:
            raw = exc.partial
            if not split_frames(raw)[0]:
                raise
        frames, _ = split_frames(raw)
        replies = self._match(requests, frames)
        if len(replies) < len(requests):
            self.one_by_one.add(ip)
            replies.update(await self._one_at_a_time(
                ip, [r for r in requests if r[0] not in replies]))
        return replies

    async def _one_at_a_time(self, ip: str, requests: Sequence[tuple[str, bytes]]
                             ) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for cmd, payload in requests:
            raw = await self.net.exchange(ip, self.port, payload, complete=frame_complete,
                                          timeout=self.timeout, keep=True)
            out[cmd] = unframe(raw)
        return out

    @staticmethod
    def _match(requests: Sequence[tuple[str, bytes]], frames: list[bytes]
               ) -> dict[str, dict[str, Any]]:
        """Replies by the command they answer (``desc``; in order where a reply lacks it)."""
        asked = {cmd for cmd, _ in requests}
        out: dict[str, dict[str, Any]] = {}
        for (cmd, _), body in zip(requests, frames, strict=False):
            reply = decode_body(body)
            desc = reply.get("desc")
            out[desc if isinstance(desc, str) and desc in asked else cmd] = reply
        return out

    async def get(self, ip: str, cmd: str, param: Any = NO_PARAM) -> Any:
        """A read's ``msg``; raises :class:`CommandRefused` for a non-zero code."""
        body: dict[str, Any] = {"cmd": cmd}
        if param is not NO_PARAM:
            body["param"] = param
        reply = await self.request(ip, body)
        if reply.get("code") != 0:
            raise v3_error(cmd, reply)
        return reply.get("msg")

    async def salt(self, ip: str) -> str:
        salt = self._salts.get(ip)
        if salt is None:
            msg = await self.get(ip, "get.device.info", "salt")
            salt = msg.get("salt") if isinstance(msg, dict) else None
            if not isinstance(salt, str) or not salt:
                raise GarbledReply(f"get.device.info salt: unexpected answer {str(msg)[:120]!r}")
            self._salts[ip] = salt
        return salt

    def build(self, cmd: str, account: str, password: str, salt: str, param: Any,
              sensitive: bool) -> bytes:
        ts = int(self.clock())
        token, key = v3_token(cmd, password, salt, ts)
        body: dict[str, Any] = {"cmd": cmd, "ts": ts, "token": token, "account": account}
        if param is not NO_PARAM:
            body["param"] = v3_encrypt_param(key, param) if sensitive else param
        return frame(json.dumps(body).encode())

    async def set(self, ip: str, account: str, password: str, cmd: str, param: Any = NO_PARAM,
                  *, sensitive: bool = False, closes: bool = False) -> Any:
        """Run one write; its ``msg`` (None when ``closes`` allowed the miner to hang up)."""
        for attempt in (1, 2):
            payload = self.build(cmd, account, password, await self.salt(ip), param, sensitive)
            raw = await send_write(self.net, ip, self.port, payload, what=cmd,
                                   timeout=self.write_timeout, complete=frame_complete,
                                   closes=closes)
            if raw is None:
                return None
            try:
                reply = unframe(raw)
            except GarbledReply as exc:
                raise OutcomeUnknownError(f"{cmd}: {exc}; the miner may or may not have done "
                                          "it (not retried)") from None
            code = reply.get("code")
            if code == 0:
                return reply.get("msg")
            if code == -4:
                self._salts.pop(ip, None)
                if attempt == 1:
                    continue
                raise await self._permission_error(ip, cmd, account, reply)
            raise v3_error(cmd, reply)
        raise AssertionError("unreachable")

    async def _permission_error(self, ip: str, cmd: str, account: str,
                                reply: dict[str, Any]) -> Exception:
        """Tell "API switch off" from "wrong password" by asking the miner its switch."""
        switch = None
        try:
            msg = await self.get(ip, "get.device.info", "system")
            if isinstance(msg, dict) and isinstance(msg.get("system"), dict):
                switch = msg["system"].get("apiswitch")
        except DeviceError:  # best effort: the refusal itself is what we report
            switch = None
        said = reply.get("msg")
        if str(switch) == "0":
            return WriteApiDisabled(f"{cmd}: write API disabled on the miner ({said!r}, "
                                    f"code -4); {ENABLE_V3}")
        return WrongPassword(
            f"{cmd}: no permission ({said!r}, code -4) for account {account!r}: its password "
            "in [[inputs.whatsminer]] (v3_password) is not this miner's, or the account may "
            f"not write; {ENABLE_V3}")
