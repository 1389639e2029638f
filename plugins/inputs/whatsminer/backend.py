"""What the v2 and v3 backends share: the read-back after each change.

A control action is reported done only once the miner shows the change (design §8): the LED
pattern, the work mode, the pools. Each backend supplies the wire-level reads and writes.
"""

from __future__ import annotations

from typing import Any

from webbo.agent.plugin import DeviceError, LedStatus, PoolReading, Reading, WorkMode
from webbo.plugins.inputs.whatsminer.commands import Command
from webbo.plugins.inputs.whatsminer.wire import confirm

__all__ = ["LED_BLINK", "Backend", "optional", "slots_of"]

LED_BLINK = {"color": "red", "period": 1000, "duration": 500, "start": 0}
"""The locate pattern: red, on for half of each second."""


async def optional(coro: Any) -> Any:
    """The result of a read a poll can do without, or None if the miner failed it."""
    try:
        return await coro
    except DeviceError:
        return None


def slots_of(pools: list[PoolReading]) -> list[tuple[str, str]]:
    """(url, worker) of the three pool slots; empty strings for a slot the miner lacks."""
    slots = [("", "")] * 3
    for pool in pools:
        if 0 <= pool.index < 3:
            slots[pool.index] = (pool.url, pool.user)
    return slots


class Backend:
    """One API generation. Subclasses implement the methods that raise NotImplementedError."""

    api_name = ""

    def __init__(self, confirm_timeout: float, settings_every: int = 1) -> None:
        self.confirm_timeout = confirm_timeout
        self.settings_every = max(1, settings_every)
        self._settings: dict[str, tuple[int, Any]] = {}

    def settings_due(self, ip: str) -> bool:
        """Whether this poll reads the settings (every ``settings_every``-th poll; at once
        after a control action forgot them)."""
        polls, _ = self._settings.get(ip, (self.settings_every, None))
        return polls >= self.settings_every

    def settings_seen(self, ip: str, fresh: Any = None, *, asked: bool = False) -> Any:
        """Count this poll and return the settings to report: ``fresh`` if they were
        ``asked`` for now and read, else the last ones read (a failed read is retried at the
        next poll)."""
        polls, value = self._settings.get(ip, (self.settings_every, None))
        if asked:
            if fresh is not None:
                value, polls = fresh, 0
            else:
                polls = self.settings_every - 1
        self._settings[ip] = (polls + 1, value)
        return value

    async def settings(self, ip: str, read: Any) -> Any:
        """A read that changes only when someone changes the miner (LED, host name, power mode
        setting): made on every ``settings_every``-th poll, else the last answer is reused.
        Our own control actions forget it, so a change the agent made shows at once."""
        if not self.settings_due(ip):
            read.close()
            return self.settings_seen(ip)
        return self.settings_seen(ip, await optional(read), asked=True)

    def forget_settings(self, ip: str) -> None:
        self._settings.pop(ip, None)

    # -- to implement ---------------------------------------------------------------------

    async def poll(self, ip: str, firmware: str | None = None, model: str = "") -> Reading:
        """One reading (``firmware`` and ``model`` as identification found them)."""
        raise NotImplementedError

    async def reboot(self, ip: str) -> None:
        raise NotImplementedError

    async def get_led(self, ip: str) -> LedStatus:
        raise NotImplementedError

    async def write_led(self, ip: str, status: LedStatus) -> None:
        raise NotImplementedError

    async def get_work_mode(self, ip: str) -> WorkMode:
        raise NotImplementedError

    async def write_work_mode(self, ip: str, mode: WorkMode) -> None:
        """Send what it takes to reach ``mode`` from wherever the miner is (nothing if there)."""
        raise NotImplementedError

    async def read_pools(self, ip: str) -> list[tuple[str, str]]:
        """(url, worker) of the three slots; empty strings for a slot the miner lacks."""
        raise NotImplementedError

    async def write_pools(self, ip: str, pools: list[dict[str, str]]) -> None:
        raise NotImplementedError

    async def command(self, ip: str, command: Command, args: Any) -> Any:
        raise NotImplementedError

    async def pools_not_applied(self, ip: str, pools: list[dict[str, str]]) -> None:
        """Called when the miner accepted pools but does not show them within 3 seconds:
        wait for them up to ``confirm_timeout``, then fail."""
        if not await self.pools_shown(ip, pools, self.confirm_timeout):
            raise DeviceError("set_pools: the miner accepted the pools but still shows others")

    # -- shared: write, then read back ----------------------------------------------------

    async def set_led(self, ip: str, status: LedStatus) -> None:
        self.forget_settings(ip)
        await self.write_led(ip, status)

        async def shows() -> bool:
            return await self.get_led(ip) == status

        if not await confirm(shows, self.confirm_timeout):
            raise DeviceError("set_led: the miner accepted it but its LED state did not follow")

    async def set_work_mode(self, ip: str, mode: WorkMode) -> None:
        self.forget_settings(ip)
        await self.write_work_mode(ip, mode)
        last: list[WorkMode] = []

        async def reached() -> bool:
            last[:] = [await self.get_work_mode(ip)]
            return last[0] == mode

        if not await confirm(reached, self.confirm_timeout):
            now = last[0].value if last else "nothing readable"
            raise DeviceError(f"set_work_mode: the miner accepted {mode.value} but reports "
                              f"{now} after {self.confirm_timeout:g}s")

    async def pools_shown(self, ip: str, pools: list[dict[str, str]], timeout: float) -> bool:
        """True once every non-empty slot shows the URL and worker written."""
        wanted = [(p["address"], p["worker"]) for p in pools]

        async def applied() -> bool:
            shown = await self.read_pools(ip)
            return all(shown[i] == wanted[i] for i in range(3) if wanted[i][0])

        return await confirm(applied, timeout)

    async def set_pools(self, ip: str, pools: list[dict[str, str]]) -> None:
        await self.write_pools(ip, pools)
        if not await self.pools_shown(ip, pools, min(3.0, self.confirm_timeout)):
            await self.pools_not_applied(ip, pools)
