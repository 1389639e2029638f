"""The Network across sites: get-network answers every site's groups (each naming its site),
set-network hands each site its own groups.

Each site's ``[network]`` stays in that site's webbo.toml: the hub forwards, the site validates,
writes and reloads, exactly as when its own UI saves. To change nothing half-way, the hub first
checks everything it can itself (every group names a known, reachable site; uuids stay unique
across sites), then asks every site concerned for a dry run, and only when all of them accept
does it start the task that applies the change at each. A site refusing in the dry run is a
422 in the manual's envelope, its reason under the hub's key path; nothing is applied anywhere.

Sites that the request names no group of keep their network: a request replaces the groups
of the sites it names (``{"site": "msk-1", ...}`` on a group). With one site only, ``site``
may be left out.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from webbo.agent.cluster.hub_base import HubCore, Requests, SiteSilent, SiteUnreachable
from webbo.agent.cluster.view import SiteView
from webbo.agent.cluster.wire import NetworkReply, NetworkRequest
from webbo.agent.core.config import ConfigError, IPRangeGroup, NetworkSection
from webbo.agent.core.config import ConfigErrors as _ConfigErrors
from webbo.agent.core.network import network_items, network_payload
from webbo.agent.core.tasks import Task, TaskFailed

log = structlog.get_logger("webbo.cluster.hub")

__all__ = ["HubNetwork"]

_GROUP = re.compile(r"^network\.ip_range_groups\[(\d+)\]")


def _where(index: Sequence[int]) -> str:
    """The key path that stands for a site in a request: its first group's ``site``."""
    return f"network.ip_range_groups[{index[0]}].site" if index else "network"


def _fail(errors: list[ConfigError]) -> ConfigError:
    return errors[0] if len(errors) == 1 else _ConfigErrors(errors)


class HubNetwork:
    """The network view the web uses on a hub."""

    def __init__(self, hub: HubCore) -> None:
        self.hub = hub

    # -- reading -------------------------------------------------------------------------------

    def sites(self) -> list[SiteView]:
        return [self.hub.fleet.sites[name] for name in sorted(self.hub.fleet.sites)]

    def groups(self) -> list[tuple[str, IPRangeGroup]]:
        """(site, group) of every site, sites in name order."""
        return [(view.name, group) for view in self.sites()
                for group in view.network.ip_range_groups]

    def section(self) -> NetworkSection:
        return NetworkSection(ip_range_groups=[group for _, group in self.groups()])

    def payload(self) -> dict[str, Any]:
        groups = []
        for view in self.sites():
            for group in network_payload(view.network)["ip_range_groups"]:
                groups.append({"name": group["name"], "uuid": group["uuid"], "site": view.name,
                               "ip_ranges": group["ip_ranges"]})
        return {"ip_range_groups": groups}

    # -- set-network ---------------------------------------------------------------------------

    def _split(self, groups: Sequence[Mapping[str, Any]], replace: Sequence[str] = ()
               ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[int]]]:
        """Groups by site (uuids made for new ones) and, per site, the request index of each of
        its groups; raises ConfigError for a missing or unknown site."""
        known = sorted(self.hub.fleet.sites)
        errors: list[ConfigError] = []
        by_site: dict[str, list[dict[str, Any]]] = {s: [] for s in replace
                                                    if s in self.hub.fleet.sites}
        index: dict[str, list[int]] = {s: [] for s in by_site}
        for i, group in enumerate(groups):
            site = str(group.get("site") or "")
            if not site and len(known) == 1:
                site = known[0]
            if site not in self.hub.fleet.sites:
                names = ", ".join(known) or "none yet"
                reason = (f"no site {site!r} (sites: {names})" if site
                          else f"which site? name one of: {names}")
                errors.append(ConfigError(f"network.ip_range_groups[{i}].site", reason))
                continue
            by_site.setdefault(site, []).append({k: v for k, v in group.items() if k != "site"})
            index.setdefault(site, []).append(i)
        if errors:
            raise _fail(errors)
        return {site: network_items(items) for site, items in by_site.items()}, index

    def _check_ids(self, by_site: Mapping[str, list[dict[str, Any]]],
                   index: Mapping[str, list[int]]) -> None:
        """A uuid names one group or range at one site."""
        owner: dict[str, str] = {}
        for view in self.sites():
            if view.name in by_site:
                continue
            for group in view.network.ip_range_groups:
                owner[group.uuid] = view.name
                owner.update({r.uuid: view.name for r in group.ip_ranges})
        errors: list[ConfigError] = []
        for site, items in by_site.items():
            for local, group in enumerate(items):
                path = f"network.ip_range_groups[{index[site][local]}]"
                ids = [(f"{path}.uuid", group["uuid"])] + [
                    (f"{path}.ip_ranges[{ri}].uuid", r["uuid"])
                    for ri, r in enumerate(group["ip_ranges"])]
                for key, uuid in ids:
                    other = owner.setdefault(uuid, site)
                    if other != site:
                        errors.append(ConfigError(key, f"{uuid} is already used at site "
                                                       f"{other}: ids are unique across sites"))
        if errors:
            raise _fail(errors)

    def _local(self, site: str, index: Sequence[int], error: tuple[str, str]) -> ConfigError:
        """A site's error, under the hub's key path."""
        path, reason = error

        def at(m: re.Match[str]) -> str:
            local = int(m.group(1))
            hub_index = index[local] if local < len(index) else local
            return f"network.ip_range_groups[{hub_index}]"

        return ConfigError(_GROUP.sub(at, path), f"site {site}: {_GROUP.sub(at, reason)}")

    async def _ask(self, site: str, request: NetworkRequest,
                   timeout: float | None = None) -> NetworkReply:
        session: Requests | None = self.hub.session
        if session is None:
            raise SiteUnreachable("the hub is not connected to NATS")
        return await session.network(site, request, timeout)

    async def set_network(self, who: str, groups: Sequence[Mapping[str, Any]],
                          via: str = "", sites: Sequence[str] = ()) -> tuple[Task, list[str]]:
        """Check everything (here, then a dry run at each site concerned), then start the task
        that applies each site's part there; raises ConfigError before anything changes.
        ``sites`` are replaced even when no group names them (the web editor shows every site:
        a site whose last group was deleted there gets an empty network)."""
        by_site, index = self._split(groups, sites)
        self._check_ids(by_site, index)
        unavailable = [ConfigError(_where(index[site]), f"site {site} unreachable: {problem}")
                       for site in by_site if (problem := self.hub.unavailable(site))]
        if unavailable:
            raise _fail(unavailable)
        sites = list(by_site)
        answers = await asyncio.gather(*(self._ask(site, NetworkRequest(
            op="check", hub=self.hub.hub_id, who=who, groups=by_site[site])) for site in sites),
            return_exceptions=True)
        errors: list[ConfigError] = []
        for site, answer in zip(sites, answers, strict=True):
            where = _where(index[site])
            if isinstance(answer, SiteUnreachable | SiteSilent):
                errors.append(ConfigError(where, f"site {site} unreachable: {answer}"))
            elif isinstance(answer, BaseException):
                raise answer
            elif not answer.ok:
                errors.extend(self._local(site, index[site], e) for e in answer.errors)
                if not answer.errors:
                    errors.append(ConfigError(where, f"site {site}: {answer.error}"))
        if errors:
            raise _fail(errors)

        async def apply() -> bool:
            return await self._apply(who, by_site)

        details: dict[str, Any] = {"sites": sites, "groups": len(groups),
                                   "network": {s: items for s, items in by_site.items()}}
        if via:
            details["via"] = via
        return self.hub.tasks.start_job("set-network", who, apply, details), []

    async def _apply(self, who: str, by_site: Mapping[str, list[dict[str, Any]]]) -> bool:
        sites = list(by_site)
        timeout = 3 * float(self.hub.section.request_timeout)
        answers = await asyncio.gather(*(self._ask(site, NetworkRequest(
            op="apply", hub=self.hub.hub_id, who=who, groups=by_site[site]), timeout)
            for site in sites), return_exceptions=True)
        applied, failed = [], []
        for site, answer in zip(sites, answers, strict=True):
            if isinstance(answer, NetworkReply) and answer.ok:
                applied.append(site)
                self.hub.fleet.adopt_network(site, answer.network)
            elif isinstance(answer, NetworkReply):
                failed.append(f"site {site}: {answer.error or answer.errors}")
            else:
                failed.append(f"site {site} unreachable: {answer} (it may or may not have "
                              "applied it: see its get-network)")
        if failed:
            done = f"; applied at {', '.join(applied)}" if applied else "; applied nowhere"
            raise TaskFailed("; ".join(failed) + done)
        return True
