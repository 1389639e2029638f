"""Silences: mute alerts (a rule, a range or group, a set of MACs or meters) until a time.

They live in ``<state_dir>/alert-silences.json`` (0600), not in webbo.toml: a silence is an
operator's act during maintenance, not configuration. The file is the truth: ``webbo alerts
silence`` writes it while the agent runs and the agent notices (it re-reads the file when its
signature changes); every change is a read-modify-write under an exclusive ``flock``, written
atomically. A silenced alert still shows in the UI and the API (with the silence's id); only
its notifications are held back. Expired silences are kept a day for the record.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from webbo.agent.core.files import write_atomically
from webbo.agent.fleet.model import normalise_mac

__all__ = ["SILENCE_FILE", "Silence", "SilenceError", "SilenceStore"]

SILENCE_FILE = "alert-silences.json"
KEEP_EXPIRED = 86400.0
T = TypeVar("T")


class SilenceError(ValueError):
    """A silence that cannot be made (no matcher, an end in the past, a bad MAC)."""


class Silence(msgspec.Struct, kw_only=True):
    id: str
    ends_at: float
    created_at: float
    created_by: str = ""
    comment: str = ""
    rules: list[str] = msgspec.field(default_factory=list)
    groups: list[str] = msgspec.field(default_factory=list)
    ranges: list[str] = msgspec.field(default_factory=list)
    macs: list[str] = msgspec.field(default_factory=list)
    meters: list[str] = msgspec.field(default_factory=list)

    def active(self, now: float) -> bool:
        return self.ends_at > now

    def matches(self, rule: str, key: str, labels: Mapping[str, str]) -> bool:
        """Every matcher given must match (a list matches when any of its items does)."""
        if self.rules and rule not in self.rules:
            return False
        if self.groups and not ({labels.get("group"), labels.get("group_id")} &
                                set(self.groups)):
            return False
        if self.ranges and not ({labels.get("range"), labels.get("range_id")} &
                                set(self.ranges)):
            return False
        if self.macs and key not in self.macs:
            return False
        return not (self.meters and key not in self.meters)

    def describe(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        data: dict[str, Any] = msgspec.to_builtins(self)
        data["active"] = self.active(now)
        return data


class _File(msgspec.Struct):
    version: int = 1
    silences: list[Silence] = msgspec.field(default_factory=list)


def make_silence(*, ends_at: float, created_by: str = "", comment: str = "",
                 rules: list[str] | None = None, groups: list[str] | None = None,
                 ranges: list[str] | None = None, macs: list[str] | None = None,
                 meters: list[str] | None = None, now: float | None = None) -> Silence:
    """A checked silence (raises :class:`SilenceError` naming the field)."""
    now = time.time() if now is None else now
    if ends_at <= now:
        raise SilenceError("until: the silence would end in the past")
    normal = []
    for i, mac in enumerate(macs or []):
        value = normalise_mac(mac)
        if value is None:
            raise SilenceError(f"macs[{i}]: not a MAC address: {mac!r}")
        normal.append(value)
    silence = Silence(id=str(uuid.uuid4()), ends_at=ends_at, created_at=now,
                      created_by=created_by, comment=comment[:500], rules=list(rules or []),
                      groups=list(groups or []), ranges=list(ranges or []), macs=normal,
                      meters=list(meters or []))
    if not (silence.rules or silence.groups or silence.ranges or silence.macs or
            silence.meters):
        raise SilenceError("name what to silence: rules, groups, ranges, macs or meters")
    return silence


class SilenceStore:
    """The silences file: read when it changed on disk, changed under a lock."""

    def __init__(self, state_dir: Path | None) -> None:
        self.path = Path(state_dir) / SILENCE_FILE if state_dir is not None else None
        self._silences: list[Silence] = []
        self._signature: tuple[int, int, int] | None = None

    def _stat(self) -> tuple[int, int, int] | None:
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self) -> list[Silence]:
        assert self.path is not None
        try:
            return msgspec.json.decode(self.path.read_bytes(), type=_File).silences
        except FileNotFoundError:
            return []
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            return list(self._silences)

    def all(self) -> list[Silence]:
        """Every silence (active and recently expired), re-read if the file changed."""
        if self.path is not None:
            signature = self._stat()
            if signature != self._signature:
                self._silences = self._read()
                self._signature = signature
        return list(self._silences)

    def active(self, now: float | None = None) -> list[Silence]:
        now = time.time() if now is None else now
        return [s for s in self.all() if s.active(now)]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = self.path.with_name(SILENCE_FILE + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _mutate(self, change: Callable[[list[Silence]], T]) -> T:
        if self.path is None:
            result = change(self._silences)
            return result
        with self._locked():
            silences = self._read()
            result = change(silences)
            now = time.time()
            silences[:] = [s for s in silences if s.ends_at > now - KEEP_EXPIRED]
            if not self.path.exists():
                self.path.touch(mode=0o600)
            write_atomically(self.path, msgspec.json.encode(_File(silences=silences)).decode())
            self._silences = silences
            self._signature = self._stat()
        return result

    def add(self, silence: Silence) -> Silence:
        self._mutate(lambda items: items.append(silence))
        return silence

    def expire(self, silence_id: str) -> bool:
        """End a silence now (it stays listed, expired). False when there is no such id."""
        def change(items: list[Silence]) -> bool:
            for item in items:
                if item.id == silence_id:
                    item.ends_at = min(item.ends_at, time.time())
                    return True
            return False

        return self._mutate(change)

    def delete(self, silence_id: str) -> bool:
        def change(items: list[Silence]) -> bool:
            before = len(items)
            items[:] = [s for s in items if s.id != silence_id]
            return len(items) != before

        return self._mutate(change)

    def matching(self, rule: str, key: str, labels: Mapping[str, str],
                 active: list[Silence]) -> str:
        """The id of the first of ``active`` that silences this alert, or ""."""
        for silence in active:
            if silence.matches(rule, key, labels):
                return silence.id
        return ""
