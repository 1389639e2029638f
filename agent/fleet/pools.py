"""set-pools, merged (manual §3.5.7): three slots, ``null`` keeps the device's slot, and the
worker suffix (``ip``, ``no_change``, ``empty``) is applied per device. Drivers only ever write
three complete pools."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from webbo.agent.core.errors import DeviceError

__all__ = ["EMPTY_POOL", "PoolSpec", "merge_pools", "needs_current_pools", "normalise_pools",
           "worker_with_suffix"]

SuffixType = Literal["ip", "no_change", "empty"]


@dataclass(frozen=True)
class PoolSpec:
    """One requested pool slot of set-pools (the manual's MiningPool with ``suffix_type``)."""

    address: str
    worker: str
    passwd: str
    suffix_type: SuffixType = "no_change"


def worker_with_suffix(worker: str, suffix_type: SuffixType, ip: str, current_worker: str) -> str:
    """The worker name a device gets (manual §3.5.7).

    * ``ip``: ``<worker>.<third octet>x<fourth octet>`` of the device's IP in decimal
      (``james`` on 10.30.0.16 → ``james.0x16``);
    * ``no_change``: the device's current suffix — what follows the first ``.`` of the worker now
      in that slot — is kept (``james`` over ``john-doe.001`` → ``james.001``); no current suffix,
      no suffix;
    * ``empty``: the worker exactly as given.
    """
    if suffix_type == "ip":
        octets = ip.split(".")
        if len(octets) != 4:
            raise DeviceError(f"set_pools: cannot make an ip suffix from address {ip!r}")
        return f"{worker}.{int(octets[2])}x{int(octets[3])}"
    if suffix_type == "no_change":
        _, dot, suffix = current_worker.partition(".")
        return f"{worker}.{suffix}" if dot and suffix else worker
    return worker


def needs_current_pools(requested: Sequence[PoolSpec | None]) -> bool:
    return any(spec is None or spec.suffix_type == "no_change" for spec in requested)


EMPTY_POOL = {"address": "", "worker": "", "passwd": ""}


def merge_pools(current: Sequence[Mapping[str, str]] | None, requested: Sequence[PoolSpec | None],
                ip: str) -> list[dict[str, str]]:
    """The three pools to write on one device: ``None`` keeps the device's slot, a given pool
    gets its worker suffix. ``current`` may be None only when no slot needs it."""
    merged = []
    for index, spec in enumerate(requested):
        slot = dict(current[index]) if current is not None else dict(EMPTY_POOL)
        if spec is None:
            merged.append({k: slot.get(k, "") for k in ("address", "worker", "passwd")})
            continue
        merged.append({
            "address": spec.address,
            "worker": worker_with_suffix(spec.worker, spec.suffix_type, ip, slot.get("worker", "")),
            "passwd": spec.passwd,
        })
    return merged


def normalise_pools(value: Any) -> list[dict[str, str]]:
    """Whatever a driver returned for get_pools → exactly three ``{address, worker, passwd}``
    (never ``suffix_type``); missing slots are empty."""
    if not isinstance(value, list | tuple):
        raise DeviceError(f"get_pools: the driver returned {type(value).__name__}, not a list")
    pools = []
    for item in list(value)[:3]:
        data = msgspec.to_builtins(item) if not isinstance(item, Mapping) else item
        if not isinstance(data, Mapping):
            raise DeviceError(f"get_pools: the driver returned a {type(item).__name__} slot")
        pools.append({k: str(data.get(k) or "") for k in ("address", "worker", "passwd")})
    while len(pools) < 3:
        pools.append(dict(EMPTY_POOL))
    return pools
