"""The controller's pieces: set-pools merged per device (the manual's worked example and the
suffix rules), selectors resolved against the inventory, and actions called on the driver that
owns a device, by what the driver declares it supports."""

from __future__ import annotations

import uuid

import pytest
from api_helpers import MANUAL_POOLS

from webbo.agent.core.config import IPRange, IPRangeGroup, NetworkSection
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.pools import PoolSpec, merge_pools, worker_with_suffix
from webbo.agent.fleet.selectors import Selector, select


def test_manual_worked_example_of_set_pools():
    """§3.5.7: only the second slot changes; james with suffix ip on 10.30.0.16."""
    requested = [None, PoolSpec("stratum+tcp://super-duper.pool:443", "james", "654321", "ip"),
                 None]
    merged = merge_pools(MANUAL_POOLS, requested, "10.30.0.16")
    assert merged == [
        MANUAL_POOLS[0],
        {"address": "stratum+tcp://super-duper.pool:443", "worker": "james.0x16",
         "passwd": "654321"},
        MANUAL_POOLS[2],
    ]


@pytest.mark.parametrize(("suffix_type", "ip", "current", "expected"), [
    ("ip", "10.30.0.16", "john-doe.001", "james.0x16"),
    ("ip", "10.30.123.234", "", "james.123x234"),
    ("no_change", "10.30.0.16", "john-doe.001", "james.001"),
    ("no_change", "10.30.0.16", "john-doe.rack.7", "james.rack.7"),
    ("no_change", "10.30.0.16", "john-doe", "james"),
    ("no_change", "10.30.0.16", "", "james"),
    ("empty", "10.30.0.16", "john-doe.001", "james"),
])
def test_worker_suffix_rules(suffix_type, ip, current, expected):
    assert worker_with_suffix("james", suffix_type, ip, current) == expected


def test_all_null_keeps_everything():
    assert merge_pools(MANUAL_POOLS, [None, None, None], "10.30.0.16") == MANUAL_POOLS


def test_selectors_resolve_by_mac_range_and_ids():
    assert [d.mac for d in select(DEVICES, NETWORK, Selector(macs="*")).devices] == [
        "00:00:00:00:00:01", "00:00:00:00:00:03", "00:00:00:00:00:02"]
    chosen = select(DEVICES, NETWORK, Selector(macs=("00:00:00:00:00:02", "00:00:00:00:00:09")))
    assert [d.mac for d in chosen.devices] == ["00:00:00:00:00:02"]
    assert chosen.missing == ["00:00:00:00:00:09"]
    by_span = select(DEVICES, NETWORK, Selector(ip_range=("10.30.0.10", "10.30.0.128")))
    assert [d.ip for d in by_span.devices] == ["10.30.0.16"]
    by_range = select(DEVICES, NETWORK,
                      Selector(ip_range_id="8c1cfbf8-76b5-41e1-a61e-6dcb5fb40dbd"))
    assert [d.ip for d in by_range.devices] == ["10.30.1.5"]
    by_group = select(DEVICES, NETWORK,
                      Selector(ip_range_group_id="2a67feee-08f0-4ce1-89cd-7f8282bd1369"))
    assert [d.ip for d in by_group.devices] == ["10.30.0.16", "10.30.1.5"]


@pytest.mark.parametrize("selector", [
    Selector(ip_range_id=str(uuid.uuid4())),
    Selector(ip_range_group_id=str(uuid.uuid4())),
    Selector(ip_range=("10.30.0.9", "10.30.0.1")),
])
def test_unresolvable_selectors_are_errors(selector):
    from webbo.agent.fleet.selectors import SelectionError

    with pytest.raises(SelectionError):
        select(DEVICES, NETWORK, selector)


def _device(mac: str, ip: str) -> Device:
    return Device(mac=mac, ip=ip, driver="x", make="M", model="m")


NETWORK = NetworkSection(ip_range_groups=[IPRangeGroup(
    name="g", uuid="2a67feee-08f0-4ce1-89cd-7f8282bd1369", ip_ranges=[
        IPRange(name="a", uuid="7c1cfbf8-76b5-41e1-a61e-6dcb5fb40dbd",
                first="10.30.0.0", last="10.30.0.127"),
        IPRange(name="b", uuid="8c1cfbf8-76b5-41e1-a61e-6dcb5fb40dbd",
                first="10.30.1.0", last="10.30.1.255")])])


DEVICES = [_device("00:00:00:00:00:02", "10.30.1.5"), _device("00:00:00:00:00:01", "10.30.0.16"),
           _device("00:00:00:00:00:03", "10.30.0.200")]
