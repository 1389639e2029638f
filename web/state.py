"""The web's own secrets: users (password hashes), API keys (hashes) and the session secret.

They live in ``<state_dir>/web.json``, mode 0600, never in webbo.toml (which operators share and
commit). The file is the truth: ``webbo apikey create`` and ``webbo user set-password`` write it
while the agent runs, and the agent notices (it re-reads the file when its signature changes).
Every change is a read-modify-write under an exclusive ``flock`` on ``web.json.lock`` and lands
atomically (temp file + rename), so two writers never lose each other's changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from webbo.agent.core.files import write_atomically
from webbo.web.passwords import hash_password

__all__ = ["ApiKeyRecord", "StateData", "StateStore", "UserRecord"]

STATE_FILE = "web.json"
DEFAULT_USER = "miner"
LAST_USED_RESOLUTION = 60.0
"""A key's ``last_used`` is written to disk at most this often (it is read per request)."""


class UserRecord(msgspec.Struct, kw_only=True):
    password_hash: str
    created: float
    changed: float


class ApiKeyRecord(msgspec.Struct, kw_only=True):
    id: str
    name: str
    hash: str
    """sha256 of the secret part (the key is random, 256 bits: a slow hash adds nothing)."""
    user: str
    created: float
    last_used: float | None = None


class StateData(msgspec.Struct, kw_only=True):
    version: int = 1
    users: dict[str, UserRecord] = msgspec.field(default_factory=dict)
    api_keys: list[ApiKeyRecord] = msgspec.field(default_factory=list)
    session_secret: str = ""


class StateError(RuntimeError):
    """The state file cannot be read or written (the message names it)."""


class StateStore:
    """``web.json``: loaded lazily, re-read when it changed on disk, changed under a lock."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir)
        self.path = self.dir / STATE_FILE
        self._lock_path = self.dir / (STATE_FILE + ".lock")
        self._data = StateData()
        self._signature: tuple[int, int, int] | None = None
        self._thread_lock = threading.Lock()
        self._pending_last_used: dict[str, float] = {}

    # -- reading ------------------------------------------------------------------------------

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self) -> StateData:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return StateData()
        except OSError as exc:
            raise StateError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        try:
            return msgspec.json.decode(raw, type=StateData)
        except msgspec.DecodeError as exc:
            raise StateError(f"{self.path} is damaged ({exc}); restore it from a backup or "
                             "move it away to start over (users and API keys are lost)") from None

    @property
    def data(self) -> StateData:
        """The current state (re-read when the file changed since the last look)."""
        signature = self._stat()
        if signature != self._signature:
            with self._thread_lock:
                self._data = self._read()
                self._signature = signature
        return self._data

    # -- writing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with self._thread_lock:
                yield
        finally:
            os.close(fd)

    def mutate(self, change: Callable[[StateData], Any]) -> Any:
        """Apply ``change`` to the freshest state and write it (0600, atomically)."""
        with self._locked():
            data = self._read()
            pending, self._pending_last_used = self._pending_last_used, {}
            for key_id, used in pending.items():
                for key in data.api_keys:
                    if key.id == key_id and (key.last_used or 0) < used:
                        key.last_used = used
            result = change(data)
            if not self.path.exists():
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
                os.close(fd)
            write_atomically(self.path, msgspec.json.format(
                msgspec.json.encode(data), indent=2).decode() + "\n")
            os.chmod(self.path, 0o600)
            self._data = data
            self._signature = self._stat()
            return result

    # -- users --------------------------------------------------------------------------------

    def ensure_default_user(self) -> str | None:
        """Create the ``miner`` user with a random password if there is no user at all.
        Returns that password (to be shown once), or None when users exist. Also makes the
        session secret the web UI signs its cookies with."""
        data = self.data
        if data.users and data.session_secret:
            return None

        def change(state: StateData) -> str | None:

            password = None
            if not state.users:
                password = secrets.token_urlsafe(18)
                now = time.time()
                state.users[DEFAULT_USER] = UserRecord(
                    password_hash=hash_password(password), created=now, changed=now)
            if not state.session_secret:
                state.session_secret = secrets.token_urlsafe(32)
            return password

        return self.mutate(change)

    def set_password(self, user: str, password: str) -> None:

        password_hash = hash_password(password)

        def change(state: StateData) -> None:
            now = time.time()
            record = state.users.get(user)
            if record is None:
                state.users[user] = UserRecord(password_hash=password_hash, created=now,
                                               changed=now)
            else:
                record.password_hash = password_hash
                record.changed = now

        self.mutate(change)

    # -- API keys -----------------------------------------------------------------------------

    def add_key(self, record: ApiKeyRecord) -> None:
        self.mutate(lambda state: state.api_keys.append(record))

    def remove_key(self, key_id: str) -> bool:
        def change(state: StateData) -> bool:
            before = len(state.api_keys)
            state.api_keys = [k for k in state.api_keys if k.id != key_id]
            return len(state.api_keys) != before

        return bool(self.mutate(change))

    def key(self, key_id: str) -> ApiKeyRecord | None:
        for record in self.data.api_keys:
            if record.id == key_id:
                return record
        return None

    def touch_key(self, key_id: str, now: float | None = None) -> bool:
        """Note that a key was used. Returns True when the file should be written now (the
        stored time is older than :data:`LAST_USED_RESOLUTION`); see :meth:`flush`."""
        now = time.time() if now is None else now
        record = self.key(key_id)
        if record is None:
            return False
        stale = record.last_used is None or now - record.last_used >= LAST_USED_RESOLUTION
        self._pending_last_used[key_id] = now
        if not stale:
            return False
        record.last_used = now
        return True

    def flush(self) -> None:
        """Write pending ``last_used`` times."""
        if self._pending_last_used:
            self.mutate(lambda state: None)
