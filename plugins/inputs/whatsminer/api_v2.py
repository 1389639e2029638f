"""Whatsminer API v2 on TCP 4028: plain reads, encrypted writes (reference §3.1–§3.5).

Reads go through the shared cgminer RPC client (:mod:`webbo.plugins.common.rpc4028.client`):
cgminer-style reports (``summary``, ``edevs``, ``pools``, ``devdetails``) may be joined with
``+``; the flat ``get_*`` commands and ``status`` never are. Replies are read until the miner
closes the connection, however long (a miner with hundreds of error codes sends more than the
4,000 bytes some clients stop at), and a reply the miner itself cut short is repaired and
flagged as truncated.

Writes: see :mod:`.crypto` for the keys and :mod:`.tokens` for the token's life. A write that
comes back with "check token err" (or that the miner could not decrypt) is sent once more with
a fresh token; a second refusal means the configured password is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from webbo.agent.plugin import Net, OutcomeUnknownError
from webbo.plugins.common.rpc4028 import client as rpc
from webbo.plugins.common.rpc4028.client import nul_terminated
from webbo.plugins.inputs.whatsminer.crypto import (
    CryptoError,
    V2Keys,
    v2_decrypt,
    v2_encrypt,
    v2_keys,
)
from webbo.plugins.inputs.whatsminer.errors import (
    ENABLE_V2,
    CommandRefused,
    TokenLimit,
    WriteApiDisabled,
    WrongPassword,
)
from webbo.plugins.inputs.whatsminer.tokens import Token, TokenCache
from webbo.plugins.inputs.whatsminer.wire import send_write

__all__ = ["V2Api", "is_write_disabled", "msg_of"]

CODE_OK = 131
CODE_TOKEN_OK = 134
CODE_INVALID_CMD = 14
CODE_BAD_JSON = 23
CODE_DENIED = 45
CODE_TOKEN_ERR = 135
CODE_TOKEN_LIMIT = 136
CODE_BASE64 = 137
TOKEN_PROBLEMS = frozenset({CODE_TOKEN_ERR, CODE_BAD_JSON, CODE_BASE64})
"""Codes meaning "I could not use your token or your ciphertext": worth one fresh token."""


def msg_of(reply: dict[str, Any]) -> Any:
    """The ``Msg`` of a flat reply (a string or an object)."""
    return reply.get("Msg")


def is_write_disabled(code: int | None, message: str) -> bool:
    text = message.lower()
    return "can't access write cmd" in text or "write api" in text or code == CODE_DENIED


def _truncated(raw: bytes) -> bool:
    """True when the miner stopped sending mid-reply (its buffer overflowed)."""
    return not raw.rstrip(b"\x00 \r\n\t").endswith((b"}", b"]"))


class V2Api:
    """One miner family's v2 access: port, time limits and the shared token cache."""

    def __init__(self, net: Net, *, port: int = rpc.DEFAULT_PORT, timeout: float | None = None,
                 write_timeout: float = 10.0, tokens: TokenCache | None = None,
                 token_lifetime: float | None = None) -> None:
        self.net = net
        self.port = port
        self.timeout = timeout
        self.write_timeout = write_timeout
        self.tokens = tokens if tokens is not None else TokenCache()
        self.token_lifetime = token_lifetime

    # -- reads ----------------------------------------------------------------------------

    async def read_full(self, ip: str, command: str, *, key: str = "cmd"
                        ) -> tuple[dict[str, Any], bool]:
        """(checked reply, whether the miner cut it short) of one read command."""
        raw = await rpc.exchange(self.net, ip, rpc.encode_request(command, key=key),
                                 port=self.port, timeout=self.timeout)
        truncated = _truncated(raw)
        # btminer ends its replies without a NUL, so a cut one (its buffer overflowed, or the
        # connection broke) shows only as a missing closing bracket: read what did arrive.
        reply = rpc.decode(rpc.repair(raw) if truncated else raw)
        return rpc.check(reply, command), truncated

    async def read(self, ip: str, command: str, *, key: str = "cmd") -> dict[str, Any]:
        return (await self.read_full(ip, command, key=key))[0]

    async def reports(self, ip: str, commands: Iterable[str]
                      ) -> tuple[dict[str, dict[str, Any]], bool]:
        """Several cgminer-style reports, joined with ``+`` where the miner allows it:
        ({command: reply}, whether the join worked)."""
        return await rpc.multicall(self.net, ip, commands, port=self.port, timeout=self.timeout)

    # -- tokens ---------------------------------------------------------------------------

    async def fetch_keys(self, ip: str, password: str) -> V2Keys:
        """Ask the miner for a token and derive the keys (no cache)."""
        raw = await rpc.exchange(self.net, ip, b'{"cmd": "get_token"}', port=self.port,
                                 timeout=self.timeout)
        reply = rpc.decode(raw)
        letter, code, message = rpc.status_of(reply)
        msg = msg_of(reply)
        if msg == "over max connect" or code == CODE_TOKEN_LIMIT:
            raise TokenLimit("get_token: the miner gives this host no more tokens (\"over max "
                             "connect\": at most 32 per client address per 30 minutes); "
                             "try again later")
        if letter in ("E", "F"):
            if is_write_disabled(code, message):
                raise WriteApiDisabled(f"get_token: write API disabled ({message!r}); "
                                       f"{ENABLE_V2}")
            raise CommandRefused(f"get_token: {message or 'refused'} (code {code})", code)
        if not isinstance(msg, dict) or not all(
                isinstance(msg.get(k), str) for k in ("salt", "newsalt", "time")):
            raise rpc.GarbledReply(f"get_token: unexpected answer {str(msg)[:120]!r}")
        try:
            return v2_keys(password, msg["salt"], msg["newsalt"], msg["time"])
        except CryptoError as exc:
            raise rpc.GarbledReply(f"get_token: unusable salt from the miner ({exc})") from None

    async def token(self, ip: str, password: str) -> Token:
        return await self.tokens.get((ip, self.port), password,
                                     lambda: self.fetch_keys(ip, password),
                                     lifetime=self.token_lifetime)

    # -- writes ---------------------------------------------------------------------------

    def encrypt(self, keys: V2Keys, cmd: str, params: dict[str, Any] | None) -> bytes:
        """The bytes of one encrypted request (JSON spaced as every known client writes it)."""
        body = {"cmd": cmd, **(params or {}), "token": keys.sign}
        data = v2_encrypt(keys.aeskey, json.dumps(body).encode())
        return json.dumps({"enc": 1, "data": data}).encode()

    def open_reply(self, keys: V2Keys, raw: bytes, cmd: str) -> dict[str, Any]:
        """A write's reply: ``{"enc": ...}`` decrypted, or a plain (error) reply as it is."""
        reply = rpc.decode(raw)
        enc = reply.get("enc")
        if isinstance(enc, str) and "STATUS" not in reply:
            try:
                plain = v2_decrypt(keys.aeskey, enc)
                inner = json.loads(plain)
            except (CryptoError, UnicodeDecodeError, ValueError):
                raise OutcomeUnknownError(
                    f"{cmd}: the miner's encrypted answer could not be read; it may or may "
                    "not have done it (not retried)") from None
            if not isinstance(inner, dict):
                raise OutcomeUnknownError(f"{cmd}: the miner's answer is not an object; it may "
                                          "or may not have done it (not retried)")
            return inner
        return reply

    async def write(self, ip: str, password: str, cmd: str,
                    params: dict[str, Any] | None = None, *, closes: bool = False
                    ) -> dict[str, Any] | None:
        """Run one encrypted write; the decrypted reply, or None when ``closes`` allowed the
        miner to hang up without answering (reboot)."""
        renewed = False
        while True:
            token = await self.token(ip, password)
            raw = await send_write(self.net, ip, self.port, self.encrypt(token.keys, cmd, params),
                                   what=cmd, timeout=self.write_timeout,
                                   complete=nul_terminated, closes=closes)
            if raw is None:
                return None
            try:
                reply = self.open_reply(token.keys, raw, cmd)
            except rpc.GarbledReply as exc:
                raise OutcomeUnknownError(f"{cmd}: {exc}; the miner may or may not have done "
                                          "it (not retried)") from None
            letter, code, message = rpc.status_of(reply)
            if letter in ("S", "I"):
                return reply
            if is_write_disabled(code, message):
                raise WriteApiDisabled(f"{cmd}: write API disabled on the miner ({message!r}); "
                                       f"{ENABLE_V2}")
            if code in TOKEN_PROBLEMS or "token" in message.lower():
                self.tokens.drop((ip, self.port), token)
                if not renewed:
                    renewed = True
                    continue
                raise WrongPassword(
                    f"{cmd}: the miner refused a fresh token too ({message!r}, code {code}): "
                    "the admin password configured in [[inputs.whatsminer]] is not this "
                    "miner's")
            if code == CODE_INVALID_CMD:
                raise CommandRefused(f"{cmd}: this firmware does not know the command "
                                     f"({message!r})", code)
            raise CommandRefused(f"{cmd}: refused by the miner: {message or 'error'} "
                                 f"(code {code})", code)

    async def write_ok(self, ip: str, password: str, cmd: str,
                       params: dict[str, Any] | None = None, *, closes: bool = False) -> Any:
        """:meth:`write` returning the reply's ``Msg`` (None when the miner hung up)."""
        reply = await self.write(ip, password, cmd, params, closes=closes)
        return None if reply is None else msg_of(reply)
