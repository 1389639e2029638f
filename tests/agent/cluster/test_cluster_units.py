"""The cluster's pieces without a server: config checks, the wire format of a miner's state,
and the hub's bookkeeping of sites (snapshots and changes, staleness, two agents under one
name)."""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from webbo.agent.cluster.view import HubFleet
from webbo.agent.cluster.wire import (
    DeviceInfo,
    Heartbeat,
    InventoryMsg,
    MinerState,
    StateMsg,
    reading_of,
    state_of,
)
from webbo.agent.core.config import ConfigError, parse_config
from webbo.agent.core.plugins import default_registry
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.model import ErrorCode, LedStatus, PoolReading, Reading, WorkMode

# -- config ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry():
    return default_registry()


@pytest.mark.parametrize(("text", "error"), [
    ('[cluster]\nsite = "msk 1"', "cluster.site: 'msk 1': letters, digits"),
    ('[cluster]\nsite = "a.b"', "cluster.site"),
    ('[cluster]\nsite = "s"\nurls = ["http://x:4222"]', 'cluster.urls[0]: expected "nats://'),
    ('[cluster]\nsite = "s"\nuser = "u"\ntoken = "t"', "cluster.token: choose one way"),
    ('[cluster]\nsite = "s"\npassword = "p"', "cluster.password: a password needs a user"),
    ('[cluster]\nsite = "s"\ntls_cert = "/nonexistent.pem"', "cluster.tls_key: tls_cert and"),
    ('[cluster]\nsite = "s"\ncreds = "/nonexistent.creds"', "cluster.creds: no such file"),
    ('[cluster]\nsite = "s"\nheartbeat = "10ms"', "cluster.heartbeat: must be at least"),
    ('[cluster]\nsite = "s"\nkeep_mb = 0', "cluster.keep_mb: must be at least 1"),
    ('[hub]\nenabled = true\nname = "my hub"', "hub.name"),
    ('[hub]\nenabled = true\n[[network.ip_range_groups]]\n[[network.ip_range_groups.ip_ranges]]\n'
     'first = "127.0.0.1"\nlast = "127.0.0.2"', "hub.enabled: this hub has ranges"),
    ('[cluster]\nsite = "s"\nbogus = 1', "cluster.bogus: unknown key"),
])
def test_bad_cluster_and_hub_sections_name_the_key(registry, text, error):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, registry)
    assert error in str(caught.value)


def test_good_sections(registry):
    config = parse_config('[cluster]\nsite = "msk-1"\nurls = ["nats://127.0.0.1:4222", '
                          '"tls://127.0.0.2:4222"]\nuser = "msk-1"\npassword = "x"\n'
                          '[hub]\nenabled = true\n', registry)
    from webbo.agent.cluster.config import ClusterSection, HubSection

    assert config.section(ClusterSection).site == "msk-1"
    assert config.section(ClusterSection).secure
    assert config.section(HubSection).enabled
    # a section left out: the agent is no site and no hub
    assert not parse_config("", registry).section(ClusterSection).enabled


# -- the wire format of a miner's state ------------------------------------------------------

floats = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=32))
ints = st.one_of(st.none(), st.integers(0, 2**40))


@given(hashrate=floats, power=floats, temp=floats, uptime=ints, fans=st.lists(
    st.integers(0, 20000), max_size=4), mode=st.sampled_from([None, *WorkMode]),
    led=st.sampled_from([None, LedStatus.NORMAL, LedStatus.BLINK]),
    pool=st.one_of(st.none(), st.text(max_size=40)), codes=st.lists(
        st.tuples(st.text(max_size=8), st.text(max_size=20)), max_size=3))
def test_state_round_trips_what_the_hub_shows(hashrate, power, temp, uptime, fans, mode, led,
                                              pool, codes):
    reading = Reading(time_ns=123, hashrate_ths=hashrate, power_w=power, temp_chip_max_c=temp,
                      uptime_s=uptime, fans_rpm=fans, work_mode=mode, led=led,
                      pools=[PoolReading(index=0, url=pool, active=True)] if pool else [],
                      errors=[ErrorCode(code=c, message=m) for c, m in codes])
    device = Device(mac="02:00:00:00:00:01", ip="127.0.0.1", driver="d", make="m", model="x",
                    state="ok", reading=reading, last_seen=5.0)
    data = msgspec.json.encode(state_of(device))
    assert data.startswith(b'["02:00:00:00:00:01","ok"')  # an array: no field names
    back = reading_of(msgspec.json.decode(data, type=MinerState))
    assert back is not None
    for name in ("hashrate_ths", "power_w", "temp_chip_max_c", "uptime_s", "fans_rpm",
                 "work_mode", "led", "active_pool", "errors"):
        assert getattr(back, name) == getattr(reading, name), name


def test_a_miner_without_reading_has_none_at_the_hub():
    device = Device(mac="02:00:00:00:00:01", ip="127.0.0.1", driver="d", make="m", model="x",
                    state="unreachable", error="no answer")
    state = msgspec.json.decode(msgspec.json.encode(state_of(device)), type=MinerState)
    assert (state.state, state.error, reading_of(state)) == ("unreachable", "no answer", None)


# -- the hub's bookkeeping -------------------------------------------------------------------


def beat(instance: str, rev: int = 1, **extra) -> Heartbeat:
    return Heartbeat(site="s", instance=instance, host="h-" + instance, version="1",
                     started_at=0.0, time=0.0, interval=1.0, inventory_rev=rev,
                     network_rev="n", miners=1, by_state={}, **extra)


def info(mac: str, ip: str = "127.0.0.1") -> DeviceInfo:
    return DeviceInfo(mac=mac, ip=ip, driver="d", make="m", model="x")


def test_snapshot_then_changes_and_a_gap_asks_for_a_snapshot():
    fleet, now = HubFleet(), time.time()
    view = fleet.site("s")
    assert fleet.wants_snapshot(view, beat("a"), now)
    fleet.heartbeat(view, beat("a"), now)
    view.wanted = "a"
    assert fleet.apply_inventory(view, InventoryMsg(instance="a", rev=1, snapshot="x",
                                                    devices=[info("02:00:00:00:00:01")]))
    assert view.rev == 1 and fleet.inventory.get("02:00:00:00:00:01").site == "s"
    assert fleet.apply_inventory(view, InventoryMsg(instance="a", rev=2, base=1,
                                                    devices=[info("02:00:00:00:00:02")]))
    assert len(fleet.inventory) == 2
    # a change message that does not follow what the hub holds: a snapshot is needed
    assert not fleet.apply_inventory(view, InventoryMsg(instance="a", rev=9, base=7))
    assert fleet.apply_inventory(view, InventoryMsg(instance="a", rev=3, base=2,
                                                    removed=["02:00:00:00:00:01"]))
    assert [d.mac for d in fleet.inventory.devices()] == ["02:00:00:00:00:02"]
    fleet.apply_state(view, StateMsg(instance="a", seq=1, sweep=1, time=now, part=0, parts=1,
                                     miners=[MinerState("02:00:00:00:00:02", "ok", "", 0, now,
                                                        7, 90.0)]))
    assert fleet.inventory.get("02:00:00:00:00:02").reading.hashrate_ths == 90.0


def test_stale_and_back():
    fleet, now = HubFleet(), time.time()
    view = fleet.site("s")
    fleet.heartbeat(view, beat("a"), now)
    view.wanted = "a"
    fleet.apply_inventory(view, InventoryMsg(instance="a", rev=1, snapshot="x",
                                             devices=[info("02:00:00:00:00:01")]))
    fleet.apply_state(view, StateMsg(instance="a", seq=1, sweep=1, time=now, part=0, parts=1,
                                     miners=[MinerState("02:00:00:00:00:01", "ok", "", 0, now)]))
    fleet.check_stale(30.0, now + 10)
    assert view.state == "online"
    fleet.check_stale(30.0, now + 31)
    device = fleet.inventory.get("02:00:00:00:00:01")
    assert (view.state, device.state) == ("stale", "stale")
    assert device.error.startswith("site s: no heartbeat since")
    fleet.heartbeat(view, beat("a"), now + 32)
    assert (view.state, device.state, device.error) == ("online", "ok", "")
    fleet.heartbeat(view, beat("a", leaving=True), now + 33)
    assert device.state == "stale" and "its agent stopped" in device.error


def test_a_restart_is_not_a_twin_but_two_live_agents_are():
    fleet, now = HubFleet(), time.time()
    view = fleet.site("s")
    fleet.heartbeat(view, beat("a"), now)
    view.instance = "a"
    # a twin appears while "a" still beats: the hub keeps a's inventory
    assert not fleet.wants_snapshot(view, beat("b"), now + 0.5)
    fleet.heartbeat(view, beat("b"), now + 0.5)
    fleet.heartbeat(view, beat("a"), now + 1.0)
    fleet.heartbeat(view, beat("b"), now + 1.5)
    assert view.state == "conflict" and "two agents use the site name 's'" in view.conflict
    # a snapshot from the twin is not taken
    assert fleet.apply_inventory(view, InventoryMsg(instance="b", rev=1, snapshot="y",
                                                    devices=[info("02:00:00:00:00:09")]))
    assert len(fleet.inventory) == 0
    # a restart: "c" appears after "a" and "b" went silent
    later = now + 60
    assert fleet.wants_snapshot(view, beat("c"), later)
    fleet.heartbeat(view, beat("c"), later)
    assert view.state == "online" and not view.conflict


# -- nkeys: `webbo cluster nkey` and a site that logs in with the seed ------------------------


async def test_a_site_logs_in_with_an_nkey_made_by_webbo(tmp_path):
    import subprocess
    import sys

    import nats
    from nats_servers import NatsServer, ports, site_permissions

    seed_file = tmp_path / "site.nk"
    def webbo_nkey() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "webbo.agent.cli", "cluster", "nkey",
                               "--out", str(seed_file)], capture_output=True, text=True,
                              check=False)

    made = await asyncio.to_thread(webbo_nkey)
    assert made.returncode == 0, made.stderr
    public = made.stdout.strip().splitlines()[-1]
    assert public.startswith("U") and len(public) == 56
    assert seed_file.stat().st_mode & 0o777 == 0o600
    again = await asyncio.to_thread(webbo_nkey)
    assert again.returncode == 1 and "cannot write" in again.stderr  # never overwritten
    port, http = ports(2)
    server = NatsServer(tmp_path / "nats", f"""
listen: 127.0.0.1:{port}
http: 127.0.0.1:{http}
authorization {{ users: [ {{ nkey: {public}, permissions: {site_permissions("nk")} }} ] }}
""", http).start()
    try:
        from webbo.agent.cluster.config import ClusterSection
        from webbo.agent.cluster.connect import options

        settings = ClusterSection(site="nk", urls=[f"nats://127.0.0.1:{port}"],
                                  nkey_seed=str(seed_file))
        nc = await nats.connect(**options(settings), inbox_prefix="_INBOX_nk")
        await nc.publish("webbo.nk.heartbeat", b"{}")
        await nc.flush()
        await nc.close()
        with pytest.raises(Exception, match=r"(?i)authorization"):
            await nats.connect(f"nats://127.0.0.1:{port}", max_reconnect_attempts=0,
                               allow_reconnect=False)
    finally:
        server.stop()


# -- TLS: an agent that checks the server's certificate ---------------------------------------


def make_certs(folder):
    """A CA and a server certificate for 127.0.0.1 (made here: nothing is downloaded)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(text):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("webbo test CA")).issuer_name(
        name("webbo test CA")).public_key(ca_key.public_key()).serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("hub")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "hub.pem").write_bytes(cert.public_bytes(pem))
    (folder / "hub.key").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


async def test_an_agent_checks_the_servers_certificate(tmp_path):
    import nats
    from nats_servers import NatsServer, ports

    from webbo.agent.cluster.config import HubSection
    from webbo.agent.cluster.connect import options

    make_certs(tmp_path)
    port, http = ports(2)
    server = NatsServer(tmp_path / "nats", f"""
listen: 127.0.0.1:{port}
http: 127.0.0.1:{http}
tls {{ cert_file: "{tmp_path / 'hub.pem'}", key_file: "{tmp_path / 'hub.key'}" }}
authorization {{ users: [ {{ user: hub, password: hubpw }} ] }}
""", http).start()
    try:
        good = HubSection(enabled=True, urls=[f"tls://127.0.0.1:{port}"], user="hub",
                          password="hubpw", tls_ca=str(tmp_path / "ca.pem"))
        nc = await nats.connect(**options(good))
        assert nc.is_connected
        await nc.close()
        # without the CA, the server's certificate is not trusted: no connection
        untrusted = HubSection(enabled=True, urls=[f"tls://127.0.0.1:{port}"], user="hub",
                               password="hubpw")
        with pytest.raises(Exception):  # noqa: B017 (nats-py wraps the ssl error variously)
            await nats.connect(**options(untrusted), allow_reconnect=False,
                               max_reconnect_attempts=0)
    finally:
        server.stop()
