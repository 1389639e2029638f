"""A site behind its own leaf node loses its link to the hub and gets it back (issue 16, §4).

The deployment docs/deploy.md recommends: the hub's nats-server (JetStream, domain ``hub``,
leaf nodes listening) and, per site, a small nats-server of its own (JetStream in the site's
domain) that is a leaf node of the hub's, logging in as the site's restricted leaf user. The
site agent talks only to its local server, so it publishes (into its stream) whether or not the
hub can be reached. The WAN link between the two servers is a TCP relay that the test cuts.

While the link is down the site keeps polling and publishing; the hub marks it stale. When the
link is back, the state and the alerts published during the outage reach the hub, in the order
they were published, without the site or the hub restarting.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from api_helpers import start_sims
from minerfarm import make_agent
from nats_servers import NatsServer, Relay, hub_config, leaf_config, ports

from webbo.agent.core.plugins import default_registry

pytestmark = pytest.mark.slow

FARM = ["127.62.0.1", "127.62.0.2"]
HTTP_PORT = 18162


def site_text(state, port: int) -> str:
    return f"""[agent]
interval = "500ms"
timeout = "2s"
internal_metrics = false
watch_config = false
[web]
enabled = false
state_dir = "{state}"
[cluster]
site = "lnk"
urls = ["nats://127.0.0.1:{port}"]
user = "agent"
password = "agentpw"
jetstream_domain = "lnk"
heartbeat = "300ms"
[[network.ip_range_groups]]
name = "зал"
[[network.ip_range_groups.ip_ranges]]
first = "{FARM[0]}"
last = "{FARM[-1]}"
[[inputs.bitmain_http]]
web_port = {HTTP_PORT}
"""


def hub_text(state, port: int) -> str:
    return f"""[agent]
interval = "500ms"
internal_metrics = false
watch_config = false
[web]
enabled = false
state_dir = "{state}"
[hub]
enabled = true
urls = ["nats://127.0.0.1:{port}"]
user = "hub"
password = "hubpw"
stale_after = "2s"
"""


async def until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_what_a_site_publishes_while_cut_off_arrives_in_order(tmp_path):
    hub_port, hub_http, leaf_port, site_port, site_http = ports(5)
    relay = Relay(leaf_port)
    await relay.restore()
    hub_nats = NatsServer(tmp_path / "hub-nats", hub_config(
        tmp_path / "hub-store", port=hub_port, http=hub_http, sites={},
        leafs={"lnk": "leafpw"}, leaf_port=leaf_port, domain="hub",
        leaf_advertise=f"127.0.0.1:{relay.port}"), hub_http, "hub").start()
    site_nats = NatsServer(tmp_path / "site-nats", leaf_config(
        tmp_path / "site-store", site="lnk", port=site_port, http=site_http,
        hub_leaf=f"127.0.0.1:{relay.port}", password="leafpw"), site_http, "site").start()
    registry = default_registry()
    sims = await start_sims(registry, "antminer", FARM, http_port=HTTP_PORT,
                            models=["Antminer S19"])
    site = make_agent(registry, site_text(tmp_path / "site", site_port),
                      tmp_path / "site.toml")
    hub = make_agent(registry, hub_text(tmp_path / "hub", hub_port), tmp_path / "hub.toml")
    await site.start(signals=False)
    await hub.start(signals=False)
    try:
        link, view_of = site.services["cluster"], hub.services["hub"].fleet.sites
        await until(lambda: "lnk" in view_of and view_of["lnk"].state == "online"
                    and sum(d.state == "ok" for d in view_of["lnk"].devices.values()) == 2
                    and view_of["lnk"].state_messages > 0, 60, "the site at the hub")
        view = view_of["lnk"]
        assert view.heartbeat.stream == "WEBBO_lnk" and view.heartbeat.domain == "lnk"
        alerts = hub.services["hub"].alerts
        link.publish_alert({"rule": "before", "n": 0})
        await until(lambda: len(alerts) == 1, 10, "the first alert")

        # -- the link goes down -------------------------------------------------------------
        await relay.cut()
        await until(lambda: view.state == "stale", 10, "the site stale at the hub")
        assert {d.state for d in view.devices.values()} == {"stale"}
        seq_before = link.seq
        for n in range(1, 6):
            link.publish_alert({"rule": "during", "n": n})
            await asyncio.sleep(0.3)
        sweeps = site.services["miners"].sweeps
        await until(lambda: site.services["miners"].sweeps >= sweeps + 3, 20, "sweeps")
        await asyncio.sleep(0.5)
        seq_during = link.seq
        published = list(range(seq_before + 1, seq_during + 1))
        assert len(published) >= 8  # five alerts and at least three sweeps' state
        assert len(alerts) == 1 and not set(published) & set(view.recent)
        assert site.services["miners"].last_sweep.polled_ok == 2  # it kept polling

        # -- the link is back ---------------------------------------------------------------
        await relay.restore()
        await until(lambda: set(published) <= set(view.recent), 30,
                    "what was published during the outage")
        applied = [seq for seq in view.recent if seq in set(published)]
        assert applied == published  # every one, once, in the order published
        assert [a["alert"]["n"] for a in alerts] == [0, 1, 2, 3, 4, 5]
        assert all(a["received"] > a["time"] for a in alerts)
        await until(lambda: view.state == "online", 10, "the site online again")
        await until(lambda: {d.state for d in view.devices.values()} == {"ok"}, 10, "ok")
    finally:
        await hub.stop(flush_timeout=1)
        await site.stop(flush_timeout=1)
        await sims.close()
        site_nats.stop()
        await relay.cut()
        hub_nats.stop()


async def test_a_site_without_jetstream_publishes_plain_messages(tmp_path):
    """``[cluster] jetstream = false`` (or a server without JetStream): state and alerts are
    plain messages; the hub reads them as they come (what is published while the link is down
    is lost: docs/deploy.md)."""
    port, http = ports(2)
    server = NatsServer(tmp_path / "nats", f"listen: 127.0.0.1:{port}\nhttp: 127.0.0.1:{http}\n",
                        http).start()
    registry = default_registry()
    sims = await start_sims(registry, "antminer", FARM[:1], http_port=HTTP_PORT,
                            models=["Antminer S19"])
    text = site_text(tmp_path / "site", port).replace('user = "agent"\npassword = "agentpw"\n'
                                                      'jetstream_domain = "lnk"\n',
                                                      "jetstream = false\n")
    text = text.replace(f'last = "{FARM[-1]}"', f'last = "{FARM[0]}"')
    site = make_agent(registry, text, tmp_path / "site.toml")
    hub = make_agent(registry, hub_text(tmp_path / "hub", port).replace(
        'user = "hub"\npassword = "hubpw"\n', ""), tmp_path / "hub.toml")
    await site.start(signals=False)
    await hub.start(signals=False)
    try:
        view_of = hub.services["hub"].fleet.sites
        await until(lambda: "lnk" in view_of and view_of["lnk"].state_messages > 0
                    and any(d.state == "ok" for d in view_of["lnk"].devices.values()), 60,
                    "the site's miner at the hub")
        assert view_of["lnk"].heartbeat.stream == ""
        site.services["cluster"].publish_alert({"rule": "plain"})
        alerts = hub.services["hub"].alerts
        await until(lambda: len(alerts) == 1, 10, "the alert")
        assert alerts[0]["alert"] == {"rule": "plain"}
    finally:
        await hub.stop(flush_timeout=1)
        await site.stop(flush_timeout=1)
        await sims.close()
        server.stop()
