"""Three sites and a hub over Debian's nats-server, end to end (issue 16).

Debian's ``nats-server`` runs on loopback with JetStream in a temp store, one account, and one
user per site whose permissions are exactly those docs/deploy.md documents. Three site agents
(``webbo run`` processes, the same program a farm runs) each poll their own simulated
Antminers on their own 127.61.N.x range; one hub (an agent with ``[hub]``, its web server on a
real socket) serves the manual's API over all three. Everything below goes through the hub's
API and is checked on the simulators' side where it acts on devices.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytest_asyncio
from api_helpers import Stack, stack, start_sims
from nats_servers import NatsServer, hub_config, ports

from webbo.agent.core.plugins import default_registry

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

HTTP_PORT = 18161
SITES = {"msk-1": "127.61.1.", "spb-2": "127.61.2.", "nsk-3": "127.61.3."}
PER_SITE = 4
FIRST_COVERED = 2
"""msk-1 starts covering only its first two miners (set-network adds the rest)."""


def farm_of(site: str) -> list[str]:
    return [f"{SITES[site]}{i}" for i in range(1, PER_SITE + 1)]


def site_config(state: Path, site: str, nats_port: int, last: str) -> str:
    prefix = SITES[site]
    return f"""# site {site}: comments survive the hub's set-network
[agent]
interval = "1s"
connect_timeout = "1s"
timeout = "3s"
internal_metrics = false

[web]
enabled = false
state_dir = "{state}"

[cluster]
site = "{site}"
urls = ["nats://127.0.0.1:{nats_port}"]
user = "{site}"
password = "pw-{site}"
heartbeat = "500ms"

[network]
[[network.ip_range_groups]]
name = "зал {site}"
[[network.ip_range_groups.ip_ranges]]
name = "стойка 1"
first = "{prefix}1"
last = "{last}"

[[inputs.bitmain_http]]
web_port = {HTTP_PORT}

[[alerts.rules]]
name = "offline"
condition = "miner_offline"
threshold = 2
"""


class SiteAgent:
    """``webbo run`` of one site, as its own process (stopped or killed by PID)."""

    def __init__(self, workdir: Path, site: str, nats_port: int, name: str = "") -> None:
        self.site = site
        self.dir = workdir / (name or site)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "webbo.toml"
        if not self.config.exists():
            last = farm_of(site)[FIRST_COVERED - 1 if site == "msk-1" else PER_SITE - 1]
            self.config.write_text(site_config(self.dir / "state", site, nats_port, last))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SiteAgent:
        log = (self.dir / "agent.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "webbo.agent.cli", "--log-level", "warning", "run", "-c",
             str(self.config)], stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


HUB_AGENT = """[agent]
interval = "1s"
internal_metrics = false
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    nats_port, http = ports(2)
    nats = NatsServer(tmp / "nats", hub_config(
        tmp / "nats" / "store", port=nats_port, http=http,
        sites={name: f"pw-{name}" for name in [*SITES, "spy"]}), http).start()
    registry = default_registry()
    sims = {site: await start_sims(registry, "antminer", farm_of(site), http_port=HTTP_PORT,
                                   models=["Antminer S19"], conf_delay=0.05)
            for site in SITES}
    agents = {site: SiteAgent(tmp, site, nats_port).start() for site in SITES}
    hub_text = (f"{HUB_AGENT}\n[web]\nstate_dir = \"{tmp / 'hub-state'}\"\n\n[hub]\n"
                f"enabled = true\nurls = [\"nats://127.0.0.1:{nats_port}\"]\nuser = \"hub\"\n"
                f"password = \"hubpw\"\nstale_after = \"3s\"\nrequest_timeout = \"3s\"\n")
    (tmp / "hub").mkdir()
    try:
        async with stack(tmp / "hub", registry, hub_text) as hub:
            hub.sims = sims
            hub.agents = agents
            hub.nats = nats
            hub.nats_port = nats_port
            hub.tmp = tmp
            await until(hub, lambda: ok_miners(hub) >= 2 * PER_SITE + FIRST_COVERED, 120,
                        "the three sites' miners at the hub")
            yield hub
    finally:
        for agent in agents.values():
            agent.stop()
        for sim in sims.values():
            await sim.close()
        nats.stop()


def hub_of(s: Stack):
    return s.agent.services["hub"]


def ok_miners(s: Stack, site: str | None = None) -> int:
    return sum(1 for d in hub_of(s).fleet.inventory.devices()
               if d.state == "ok" and (site is None or d.site == site))


async def until(s: Stack, predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            sites = await s.ok("/api/cluster/get-sites", {})
            raise AssertionError(f"timed out waiting for {what}: {sites}")
        await asyncio.sleep(0.1)


# -- the Network across sites ----------------------------------------------------------------


async def test_get_network_shows_three_sites(cluster: Stack):
    groups = (await cluster.ok("/api/mining/get-network", {}))["ip_range_groups"]
    assert sorted(g["site"] for g in groups) == sorted(SITES)
    assert all(list(g) == ["name", "uuid", "site", "ip_ranges"] for g in groups)
    ids = [g["uuid"] for g in groups] + [r["uuid"] for g in groups for r in g["ip_ranges"]]
    assert len(ids) == len(set(ids)) == 6
    sites = await cluster.ok("/api/cluster/get-sites", {})
    assert [s["site"] for s in sites] == sorted(SITES)
    assert all(s["state"] == "online" and s["jetstream"]["stream"] == f"WEBBO_{s['site']}"
               for s in sites)
    miners = await cluster.ok("/api/mining/miners/get", {"site": "spb-2"})
    assert miners["total"] == PER_SITE
    assert {m["site"] for m in miners["miners"]} == {"spb-2"}
    assert {m["ip"] for m in miners["miners"]} == set(farm_of("spb-2"))


async def test_set_network_adds_a_range_at_one_site(cluster: Stack):
    network = await cluster.ok("/api/mining/get-network", {})
    msk = next(g for g in network["ip_range_groups"] if g["site"] == "msk-1")
    msk["ip_ranges"].append({"name": "стойка 2", "first": "127.61.1.3", "last": "127.61.1.4"})
    info = await cluster.task("/api/mining/set-network", {"ip_range_groups": [msk]})
    assert info == {"status": "success", "result": True}
    # the site wrote its own webbo.toml (comments kept) and reloaded
    text = cluster.agents["msk-1"].config.read_text()
    assert "comments survive" in text and "стойка 2" in text and "127.61.1.4" in text
    # get-network at once shows it; the other sites were not touched
    after = (await cluster.ok("/api/mining/get-network", {}))["ip_range_groups"]
    assert len(next(g for g in after if g["site"] == "msk-1")["ip_ranges"]) == 2
    assert len(after) == 3
    # the site sweeps the new range; its miners appear at the hub
    await until(cluster, lambda: ok_miners(cluster, "msk-1") == PER_SITE, 60,
                "msk-1's new miners at the hub")
    miners = await cluster.ok("/api/mining/miners/get", {"site": "msk-1", "range": "стойка 2"})
    assert {m["ip"] for m in miners["miners"]} == {"127.61.1.3", "127.61.1.4"}


async def test_set_network_a_site_refuses_changes_nothing(cluster: Stack):
    before = await cluster.ok("/api/mining/get-network", {})
    texts = {site: a.config.read_text() for site, a in cluster.agents.items()}
    groups = [dict(g) for g in before["ip_range_groups"]]
    spb = next(i for i, g in enumerate(groups) if g["site"] == "spb-2")
    nsk = next(i for i, g in enumerate(groups) if g["site"] == "nsk-3")
    # a harmless change at spb-2 and an overlap at nsk-3: the dry run refuses, nothing applied
    groups[spb] = {**groups[spb], "name": "renamed"}
    groups[nsk] = {**groups[nsk], "ip_ranges": [
        *groups[nsk]["ip_ranges"],
        {"name": "overlap", "first": "127.61.3.2", "last": "127.61.3.9"}]}
    status, answer = await cluster.call("/api/mining/set-network", {"ip_range_groups": groups})
    assert status == 422 and answer["success"] is False
    assert f"ip_range_groups[{nsk}].ip_ranges[1]: site nsk-3: range" in answer["payload"]
    assert "overlaps" in answer["payload"]
    await asyncio.sleep(1.0)
    assert {s: a.config.read_text() for s, a in cluster.agents.items()} == texts
    assert await cluster.ok("/api/mining/get-network", {}) == before


async def test_set_network_bad_sites_and_ids(cluster: Stack):
    groups = (await cluster.ok("/api/mining/get-network", {}))["ip_range_groups"]
    msk = next(g for g in groups if g["site"] == "msk-1")
    spb = next(g for g in groups if g["site"] == "spb-2")
    cases = [
        ({**msk, "site": "nowhere"}, "ip_range_groups[0].site: no site 'nowhere'"),
        ({k: v for k, v in msk.items() if k != "site"}, "ip_range_groups[0].site: which site?"),
        ({**msk, "uuid": spb["uuid"]}, "is already used at site spb-2"),
    ]
    for group, expected in cases:
        status, answer = await cluster.call("/api/mining/set-network",
                                            {"ip_range_groups": [group]})
        assert status == 422 and expected in answer["payload"], answer


# -- control across sites --------------------------------------------------------------------


def blinking(s: Stack) -> dict[str, bool]:
    return {ip: s.sims[site].by_ip[ip].blink for site in SITES for ip in farm_of(site)}


async def test_led_on_every_miner_of_every_site(cluster: Stack):
    await until(cluster, lambda: ok_miners(cluster) == 3 * PER_SITE, 60, "all miners ok")
    info = await cluster.task("/api/mining/miners/set-led-status", {"macs": "*", "status": 1})
    assert info["status"] == "success"
    result = info["result"]
    devices = {d.mac: d for d in hub_of(cluster).fleet.inventory.devices()}
    assert set(result) == set(devices) and len(result) == 3 * PER_SITE
    assert all(o == {"success": True, "payload": None} for o in result.values()), result
    assert all(blinking(cluster).values()), blinking(cluster)
    # one result object, in the order of the selection (by IP)
    assert [devices[m].ip for m in result] == sorted(
        (d.ip for d in devices.values()), key=lambda ip: tuple(map(int, ip.split("."))))
    # each site ran it through its own controller and audit log, naming the hub's user
    audit = (cluster.agents["spb-2"].dir / "state" / "audit.log").read_text()
    assert "set-led-status" in audit and "via hub" in audit
    info = await cluster.task("/api/mining/miners/set-led-status", {"macs": "*", "status": 0})
    assert info["status"] == "success" and not any(blinking(cluster).values())


async def test_selectors_reach_one_site(cluster: Stack):
    groups = (await cluster.ok("/api/mining/get-network", {}))["ip_range_groups"]
    nsk = next(g for g in groups if g["site"] == "nsk-3")
    info = await cluster.task("/api/mining/miners/set-led-status",
                              {"ip_range_group_id": nsk["uuid"], "status": 1})
    assert len(info["result"]) == PER_SITE
    assert {ip for ip, on in blinking(cluster).items() if on} == set(farm_of("nsk-3"))
    await cluster.task("/api/mining/miners/set-led-status", {"macs": "*", "status": 0})
    status, answer = await cluster.call("/api/mining/miners/reboot", {
        "ip_range_id": "2a67feee-08f0-4ce1-89cd-7f8282bd1369"})
    assert status == 422 and "at any site" in answer["payload"]


async def test_macs_no_site_knows(cluster: Stack):
    known = next(d.mac for d in hub_of(cluster).fleet.inventory.devices() if d.site == "msk-1")
    unknown = "02:00:00:00:00:99"
    info = await cluster.task("/api/mining/miners/get-led-status", {"macs": [known, unknown]})
    assert info["status"] == "success"
    assert info["result"][known]["success"] is True
    assert info["result"][unknown]["success"] is False
    assert "no such device at any site" in info["result"][unknown]["payload"]


async def test_a_killed_site_answers_unreachable_and_comes_back(cluster: Stack):
    hub = hub_of(cluster)
    cluster.agents["spb-2"].kill()
    started = time.monotonic()
    info = await cluster.task("/api/mining/miners/set-led-status", {"macs": "*", "status": 1})
    took = time.monotonic() - started
    assert info["status"] == "success"
    site_of = {d.mac: d.site for d in hub.fleet.inventory.devices()}
    for mac, outcome in info["result"].items():
        if site_of[mac] == "spb-2":
            assert outcome["success"] is False
            assert outcome["payload"].startswith("site spb-2 unreachable"), outcome
        else:
            assert outcome == {"success": True, "payload": None}, (mac, outcome)
    assert took < 3.0 + 5.0  # within [hub] request_timeout (plus the task's own work)
    assert not any(cluster.sims["spb-2"].by_ip[ip].blink for ip in farm_of("spb-2"))
    # no heartbeat: the hub marks the site and its miners stale
    await until(cluster, lambda: hub.fleet.sites["spb-2"].state == "stale", 15, "stale")
    miners = await cluster.ok("/api/mining/miners/get", {"site": "spb-2"})
    assert {m["state"] for m in miners["miners"]} == {"stale"}
    assert "no heartbeat since" in miners["miners"][0]["error"]
    # restarted: back without restarting the hub
    cluster.agents["spb-2"].start()
    await until(cluster, lambda: ok_miners(cluster, "spb-2") == PER_SITE, 60, "spb-2 back")
    info = await cluster.task("/api/mining/miners/set-led-status", {"macs": "*", "status": 0})
    assert all(o["success"] for o in info["result"].values()), info
    assert not any(blinking(cluster).values())


async def test_two_agents_with_one_site_name(cluster: Stack):
    hub = hub_of(cluster)
    twin = SiteAgent(cluster.tmp, "nsk-3", cluster.nats_port, name="nsk-3-twin")
    twin.config.write_text(cluster.agents["nsk-3"].config.read_text().replace(
        str(cluster.agents["nsk-3"].dir / "state"), str(twin.dir / "state")))
    twin.start()
    try:
        await until(cluster, lambda: hub.fleet.sites["nsk-3"].state == "conflict", 30,
                    "the conflict")
        sites = await cluster.ok("/api/cluster/get-sites", {"site": "nsk-3"})
        assert "two agents use the site name 'nsk-3'" in sites[0]["conflict"]
        info = await cluster.task("/api/mining/miners/get-led-status", {"macs": "*"})
        nsk = {m: o for m, o in info["result"].items()
               if hub.fleet.inventory.get(m).site == "nsk-3"}
        assert nsk and all(not o["success"] and "two agents" in o["payload"]
                           for o in nsk.values())
        others = [o for m, o in info["result"].items() if m not in nsk]
        assert others and all(o["success"] for o in others)
        groups = (await cluster.ok("/api/mining/get-network", {}))["ip_range_groups"]
        status, answer = await cluster.call("/api/mining/set-network", {"ip_range_groups": [
            g for g in groups if g["site"] == "nsk-3"]})
        assert status == 422 and "two agents" in answer["payload"]
    finally:
        twin.stop()
    await until(cluster, lambda: hub.fleet.sites["nsk-3"].state == "online", 30,
                "nsk-3 alone again")


# -- security ------------------------------------------------------------------------------


async def test_a_site_cannot_publish_as_another(cluster: Stack):
    import nats

    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    heard: list[bytes] = []

    async def listen(msg) -> None:
        heard.append(msg.data)

    hub = await nats.connect(f"nats://hub:hubpw@127.0.0.1:{cluster.nats_port}")
    spy = await nats.connect(f"nats://spy:pw-spy@127.0.0.1:{cluster.nats_port}",
                             error_cb=on_error, inbox_prefix="_INBOX_spy")
    try:
        await hub.subscribe("webbo.msk-1.>", cb=listen)
        await asyncio.sleep(0)
        await hub.flush()
        await spy.publish("webbo.msk-1.heartbeat", b'{"forged": true}')
        await spy.publish("webbo.msk-1.reply.x.y", b"forged answer")
        await spy.subscribe("webbo.msk-1.control")
        await asyncio.sleep(0)
        await spy.flush()
        await asyncio.sleep(0.5)
        assert not any(b"forged" in h for h in heard)
        assert any('permissions violation for publish to "webbo.msk-1.heartbeat"' in e
                   for e in errors), errors
        assert any("permissions violation for subscription" in e for e in errors), errors
        # its own subjects are fine
        await spy.publish("webbo.spy.heartbeat", b"{}")
        await spy.flush()
    finally:
        await spy.close()
        await hub.close()
    # the forged heartbeat changed nothing at the hub
    assert hub_of(cluster).fleet.sites["msk-1"].state == "online"



# -- the hub's pages in a real browser -------------------------------------------------------


async def test_a_sites_alert_reaches_the_hub_and_its_sites_page(cluster: Stack):
    """A site's own alert engine (the rule in its webbo.toml) raises an alert when one of its
    miners goes silent; the site link relays every event to the hub, whose Sites page shows it
    as an alert (event, severity, rule, miner), then its resolution."""
    import aiohttp
    from ui_helpers import PASSWORD, login

    ip = farm_of("spb-2")[0]
    miner = cluster.sims["spb-2"].by_ip[ip]
    alerts = hub_of(cluster).alerts

    def events(kind: str) -> list[dict]:
        return [a for a in list(alerts) if a["site"] == "spb-2"
                and a["alert"].get("rule") == "offline" and a["alert"].get("event") == kind]

    miner.fault = "silent"
    try:
        await until(cluster, lambda: events("firing"), 60, "spb-2's alert at the hub")
    finally:
        miner.fault = ""
    fired = events("firing")[0]["alert"]
    assert fired["severity"] == "warning" and fired["labels"]["ip"] == ip
    await until(cluster, lambda: events("resolved"), 60, "its resolution at the hub")
    await until(cluster, lambda: ok_miners(cluster, "spb-2") == PER_SITE, 60, "spb-2 back")
    cluster.web.store.set_password("miner", PASSWORD)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        assert (await login(session, cluster.url)).status == 303
        async with session.get(cluster.url + "/ui/sites/table") as answer:
            assert answer.status == 200
            page = await answer.text()
    assert "al-ev-firing" in page and "al-ev-resolved" in page and "sev-warning" in page
    assert f"offline · {fired['key']}" in page


async def test_the_hubs_pages_show_every_site(cluster: Stack):
    from playwright import async_api as playwright_api
    from ui_helpers import CHROMIUM, CHROMIUM_ARGS, PASSWORD, SCREENSHOTS

    assert Path(CHROMIUM).exists(), "Debian's chromium is missing (contrib/dev/test.sh)"  # noqa: ASYNC240
    await until(cluster, lambda: ok_miners(cluster) == 3 * PER_SITE, 60, "all miners ok")
    cluster.web.store.set_password("miner", PASSWORD)
    expect = playwright_api.expect
    expect.set_options(timeout=60_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    url = cluster.url
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 1440, "height": 900},
                                                    locale="ru-RU")).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(url + "/login")
            await page.get_by_label("Имя пользователя").fill("miner")
            await page.get_by_label("Пароль").fill(PASSWORD)
            await page.get_by_role("button", name="Войти").click()
            await page.wait_for_url(url + "/miners")
            # the Miners table: every site's miners, with the site column
            rows = page.locator("#rows tr[data-mac]")
            await expect(rows).to_have_count(3 * PER_SITE)
            await expect(page.locator("#rows .badge.s-ok")).to_have_count(3 * PER_SITE)
            await expect(page.locator("#head")).to_contain_text("Площадка")
            cells = await page.locator("#rows td.site").all_inner_texts()
            assert sorted(set(cells)) == sorted(SITES)
            await page.screenshot(path=str(SCREENSHOTS / "hub-01-miners.png"), full_page=True)
            # filtered to one site
            await page.get_by_label("Площадка").select_option("spb-2")
            await expect(rows).to_have_count(PER_SITE)
            assert set(await page.locator("#rows td.site").all_inner_texts()) == {"spb-2"}
            # the rack map: a room per site's group
            await page.goto(url + "/map")
            for site in SITES:
                await expect(page.locator("#map")).to_contain_text(f"{site} · зал {site}")
            await page.screenshot(path=str(SCREENSHOTS / "hub-02-map.png"), full_page=True)
            # the Sites page: each site online, with its last heartbeat
            await page.get_by_role("link", name="Площадки").click()
            await page.wait_for_url(url + "/sites")
            for site in SITES:
                row = page.locator(f'tr[data-site="{site}"]')
                await expect(row).to_contain_text("на связи")
                await expect(row).to_contain_text(f"{PER_SITE} / {PER_SITE}")
            await page.screenshot(path=str(SCREENSHOTS / "hub-03-sites.png"), full_page=True)
            # the ranges editor names each group's site
            await page.goto(url + "/settings/miners")
            selects = page.locator("select[name$='.site']")
            await expect(selects).to_have_count(3)
            chosen = [await selects.nth(i).input_value() for i in range(3)]
            assert sorted(chosen) == sorted(SITES)
            await page.screenshot(path=str(SCREENSHOTS / "hub-04-ranges.png"), full_page=True)
            assert errors == [], errors
        finally:
            await browser.close()


# -- a late answer ---------------------------------------------------------------------------


async def test_a_late_answer_is_recorded_not_applied(cluster: Stack):
    """A site (played here with a plain NATS client and the "spy" site's credentials) that
    accepts nothing in time and answers afterwards: the hub has already answered its MAC
    "unreachable"; the late answer is logged and written to the hub's audit log, the task's
    result is not changed, and the request is never sent again."""
    import msgspec
    import nats

    from webbo.agent.cluster.wire import DeviceInfo, Heartbeat, InventoryMsg, encoder

    mac = "02:00:00:00:5a:01"
    nc = await nats.connect(f"nats://spy:pw-spy@127.0.0.1:{cluster.nats_port}",
                            inbox_prefix="_INBOX_spy")
    requests: list[bytes] = []

    async def snapshot(msg) -> None:
        await nc.publish("webbo.spy.inventory", encoder.encode(InventoryMsg(
            instance="late1", rev=1, snapshot="s1", devices=[DeviceInfo(
                mac=mac, ip="127.61.9.1", driver="bitmain_http", make="Antminer",
                model="Antminer S19")])))

    async def control(msg) -> None:
        requests.append(msg.data)
        await asyncio.sleep(4.5)  # longer than the hub's request_timeout (3 s)
        body = msgspec.json.decode(msg.data)
        await nc.publish(msg.reply, encoder.encode({
            "id": body["id"], "status": "success",
            "result": {mac: {"success": True, "payload": 1}}}))

    async def beats() -> None:
        while True:
            await nc.publish("webbo.hello", b'{"site": "spy"}')
            await nc.publish("webbo.spy.heartbeat", encoder.encode(Heartbeat(
                site="spy", instance="late1", host="test", version="0", started_at=0.0,
                time=time.time(), interval=0.5, inventory_rev=1, network_rev="", miners=1,
                by_state={"ok": 1})))
            await asyncio.sleep(0.5)

    await nc.subscribe("webbo.spy.snapshot", cb=snapshot)
    await nc.subscribe("webbo.spy.control", cb=control)
    beating = asyncio.create_task(beats())
    hub = hub_of(cluster)
    try:
        await until(cluster, lambda: hub.fleet.inventory.get(mac) is not None, 20, "spy's miner")
        info = await cluster.task("/api/mining/miners/get-led-status", {"macs": [mac]})
        outcome = info["result"][mac]
        assert outcome["success"] is False
        assert outcome["payload"].startswith("site spy unreachable: no answer within 3 s; "
                                             "not sent again")
        await until(cluster, lambda: any(e["site"] == "spy" for e in hub.late), 10,
                    "the late answer")
        late = next(e for e in hub.late if e["site"] == "spy")
        assert late["status"] == "success" and late["summary"] == {"ok": 1, "failed": 0}
        audit = (cluster.tmp / "hub-state" / "audit.log").read_text()
        assert '"event":"late-answer"' in audit and late["task_id"] in audit
        assert len(requests) == 1  # sent once, never again
        # the task was reported once; asked again it is unknown (nothing was applied to it)
        again = await cluster.ok("/api/task-info", {"task_id": late["task_id"]})
        assert again["status"] == "unknown"
    finally:
        beating.cancel()
        await nc.publish("webbo.spy.heartbeat", encoder.encode(Heartbeat(
            site="spy", instance="late1", host="test", version="0", started_at=0.0,
            time=time.time(), interval=0.5, inventory_rev=1, network_rev="", miners=1,
            by_state={}, leaving=True)))
        await nc.flush()
        await nc.close()
