"""Who may use the API and the UI: passwords, API keys, login rate limits.

* **Passwords** are hashed with scrypt (``hashlib``, n=2^14, r=8, p=1, 16-byte salt) and stored
  as ``scrypt$n$r$p$salt$hash``. A check against an unknown user still costs one scrypt, so the
  answer time does not tell which user names exist.
* **API keys** are ``wbk.<id>.<secret>``: 12 hex digits of id (to find the record without
  scanning) and 256 random bits of secret, of which only the sha256 is stored. The key is shown
  once, at creation. Comparisons are constant-time (:func:`hmac.compare_digest`).
* **Logins** are limited per (client address, user name): ``[web] login_attempts`` failures
  within ``login_window`` lock that pair out until the oldest failure leaves the window.

Used by the API (keys) and by the web UI (sessions for the ``miner`` user).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

from webbo.web.passwords import DUMMY_HASH, verify_password
from webbo.web.state import DEFAULT_USER, ApiKeyRecord, StateStore

__all__ = [
    "KEY_PREFIX",
    "LoginLimiter",
    "Principal",
    "TooManyAttempts",
    "authenticate_user",
    "create_api_key",
    "verify_api_key",
]

KEY_PREFIX = "wbk"












# -- API keys ----------------------------------------------------------------------------------


def _key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(store: StateStore, name: str = "", user: str = DEFAULT_USER
                   ) -> tuple[str, ApiKeyRecord]:
    """Make a key, store its hash; returns (the key, shown once; its record)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    record = ApiKeyRecord(id=key_id, name=name, hash=_key_hash(secret), user=user,
                          created=time.time())
    store.add_key(record)
    return f"{KEY_PREFIX}.{key_id}.{secret}", record


_DUMMY_KEY_HASH = _key_hash("not a key")


def verify_api_key(store: StateStore, presented: str) -> ApiKeyRecord | None:
    """The record of a valid key, else None. The work done is the same whether or not the id
    exists, and the secret is compared in constant time."""
    prefix, _, rest = presented.partition(".")
    key_id, _, secret = rest.partition(".")
    record = store.key(key_id) if prefix == KEY_PREFIX and key_id and secret else None
    want = record.hash if record is not None else _DUMMY_KEY_HASH
    ok = hmac.compare_digest(_key_hash(secret).encode(), want.encode())
    return record if ok and record is not None else None


@dataclass(frozen=True)
class Principal:
    """Who made a request: an API key (on behalf of its user) or a logged-in user."""

    kind: str  # "key" | "user"
    id: str
    name: str = ""
    user: str = ""

    @property
    def label(self) -> str:
        """How the audit log names it: ``key:3f9a1c2b7d4e (ci)`` or ``user:miner``."""
        if self.kind == "key":
            return f"key:{self.id}" + (f" ({self.name})" if self.name else "")
        return f"user:{self.id}"


# -- logins ------------------------------------------------------------------------------------


class TooManyAttempts(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed logins; try again in {int(retry_after) + 1}s")
        self.retry_after = retry_after


class LoginLimiter:
    """Failed logins per (address, user) in a sliding window. Memory is bounded: at most
    ``max_pairs`` pairs are tracked (the least recently failing pairs are forgotten first)."""

    def __init__(self, attempts: int, window: float, max_pairs: int = 100_000) -> None:
        self.attempts = attempts
        self.window = window
        self.max_pairs = max_pairs
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def _recent(self, pair: tuple[str, str], now: float) -> deque[float] | None:
        times = self._failures.get(pair)
        if times is None:
            return None
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._failures[pair]
            return None
        return times

    def check(self, address: str, user: str, now: float | None = None) -> None:
        """Raise :class:`TooManyAttempts` if this pair is locked out now."""
        now = time.monotonic() if now is None else now
        times = self._recent((address, user), now)
        if times is not None and len(times) >= self.attempts:
            raise TooManyAttempts(self.window - (now - times[0]))

    def failed(self, address: str, user: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        pair = (address, user)
        times = self._recent(pair, now) or deque()
        times.append(now)
        self._failures[pair] = times
        self._failures.move_to_end(pair)
        while len(self._failures) > self.max_pairs:
            self._failures.popitem(last=False)

    def succeeded(self, address: str, user: str) -> None:
        self._failures.pop((address, user), None)


def authenticate_user(store: StateStore, limiter: LoginLimiter, address: str, user: str,
                      password: str) -> Principal | None:
    """Check a login. Raises :class:`TooManyAttempts` while the pair is locked out (without
    checking the password); returns the principal, or None for a wrong user or password."""
    limiter.check(address, user)
    record = store.data.users.get(user)
    ok = verify_password(password, record.password_hash if record else DUMMY_HASH)
    if ok and record is not None:
        limiter.succeeded(address, user)
        return Principal(kind="user", id=user, user=user)
    limiter.failed(address, user)
    return None
