"""Pool passwords the agent wrote, remembered per miner.

No Whatsminer API ever shows a pool's password (v2 ``pools`` and v3 ``get.miner.status pools``
list URL and worker only), yet ``update_pools`` / ``set.miner.pools`` must send all three slots
whole. So ``get_pools`` reports, for a slot whose URL and worker are still the ones the agent
set, the password it set; otherwise an empty string (unknown). That keeps "set only pool 2"
(the manual's example) from blanking the passwords of pools 1 and 3 that the agent itself
configured. The file lives in the state folder (0600, like the rest of it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from webbo.agent.plugin import write_atomically

__all__ = ["PoolMemory"]


class _Slot(msgspec.Struct, array_like=True):
    url: str
    worker: str
    passwd: str


class PoolMemory:
    FILE = "whatsminer-pools.json"

    def __init__(self, state_dir: Path | None) -> None:
        self.path = state_dir / self.FILE if state_dir is not None else None
        self._slots: dict[str, list[_Slot]] | None = None

    def _load(self) -> dict[str, list[_Slot]]:
        if self._slots is None:
            self._slots = {}
            if self.path is not None and self.path.exists():
                try:
                    self._slots = msgspec.json.decode(self.path.read_bytes(),
                                                      type=dict[str, list[_Slot]])
                except (OSError, msgspec.DecodeError, msgspec.ValidationError):
                    self._slots = {}
        return self._slots

    def password(self, mac: str, index: int, url: str, worker: str) -> str:
        slots = self._load().get(mac, [])
        if index < len(slots) and slots[index].url == url and slots[index].worker == worker:
            return slots[index].passwd
        return ""

    def remember(self, mac: str, pools: list[dict[str, Any]]) -> None:
        slots = self._load()
        slots[mac] = [_Slot(str(p.get("address", "")), str(p.get("worker", "")),
                            str(p.get("passwd", ""))) for p in pools]
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self.path.exists():
                self.path.touch(mode=0o600)
            write_atomically(self.path, msgspec.json.encode(slots).decode())
            os.chmod(self.path, 0o600)
        except OSError:
            pass  # remembering is a convenience; the write to the miner is what counts
