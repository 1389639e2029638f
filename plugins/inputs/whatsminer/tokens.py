"""The v2 write-token cache: one token per miner, reused until shortly before it expires.

A miner keeps a token for 30 minutes and gives one client address at most 32 of them, so a
token is fetched once and reused for every write to that miner, and renewed ``lifetime``
after it was fetched (25 minutes by default: well inside the miner's 30). A miner that
forgets a token early (a reboot, a btminer restart) answers "check token err"; the caller
then drops the token and fetches one new one (once).

The clock is injectable so tests can age tokens without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from webbo.plugins.inputs.whatsminer.crypto import V2Keys

__all__ = ["Token", "TokenCache"]


@dataclass(frozen=True, slots=True)
class Token:
    keys: V2Keys
    fetched_at: float
    secret: str
    """The password the keys were made from: a config change makes the token unusable."""


class TokenCache:
    """Tokens by miner (e.g. ``(ip, port)``), with one fetch in flight per miner."""

    def __init__(self, lifetime: float = 25 * 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self._tokens: dict[Hashable, Token] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self.fetches = 0

    def __len__(self) -> int:
        return len(self._tokens)

    def valid(self, key: Hashable, secret: str, lifetime: float | None = None) -> Token | None:
        """The token of ``key`` if it was made from ``secret`` and is younger than
        ``lifetime`` (default: the cache's)."""
        token = self._tokens.get(key)
        if token is None:
            return None
        limit = self.lifetime if lifetime is None else lifetime
        if token.secret != secret or self.clock() - token.fetched_at >= limit:
            self._tokens.pop(key, None)
            return None
        return token

    async def get(self, key: Hashable, secret: str, fetch: Callable[[], Awaitable[V2Keys]],
                  lifetime: float | None = None) -> Token:
        """The cached token for ``key``, or a new one from ``fetch`` (one fetch at a time)."""
        token = self.valid(key, secret, lifetime)
        if token is not None:
            return token
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            token = self.valid(key, secret, lifetime)  # another task may have fetched it meanwhile
            if token is None:
                keys = await fetch()
                self.fetches += 1
                token = Token(keys, self.clock(), secret)
                self._tokens[key] = token
            return token

    def drop(self, key: Hashable, token: Token | None = None) -> None:
        """Forget the token of ``key`` (only if it is still ``token``, when given)."""
        if token is None or self._tokens.get(key) is token:
            self._tokens.pop(key, None)
