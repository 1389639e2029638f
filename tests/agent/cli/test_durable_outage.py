"""Issue 15's outage, end to end: 1,000 simulated miners, ``webbo run`` with the disk buffer, a
real influxd stopped, the agent killed -9 in the middle of the outage and started again, the
server back: every metric of every cycle is in InfluxDB, exactly once.

The shape of the issue (five minutes, killed in the middle) with a shorter outage so the suite
stays tolerable: ``WEBBO_OUTAGE_SECONDS`` (default 60) long, at a 3 s interval (20 cycles of
1,000 miners, about 6,000 metrics each, while the server is away). Run it with
``WEBBO_OUTAGE_SECONDS=300`` for the issue's five minutes.

What is counted, per cycle (one cycle = the points of one sweep, found by the gap between
sweeps; each poll writes a device's points with one timestamp):

* ``miner`` points: one per miner; ``miner_board`` and ``miner_pool``: as many as in a cycle
  while the server was up;
* the only cycle allowed to be short is the one in the kill -9 window (its points gathered less
  than a second before the kill, not yet written): the test prints what it lost;
* duplicates: influxd's own count of points received (``SHOW STATS``, ``pointReq``, before it
  is stopped and at the end) minus the points stored — at most one flush's batches.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from servers import InfluxDB1

from webbo.agent.cli.simulate import spawn, stop

OUTAGE = float(os.environ.get("WEBBO_OUTAGE_SECONDS", "60"))
INTERVAL = 3.0
MINERS = 1000
DB = "outage"

pytestmark = pytest.mark.slow


def agent_config(state: Path, first: str, last: str, url: str) -> str:
    return f"""
[agent]
interval = "{INTERVAL}s"
flush_interval = "{INTERVAL}s"
timeout = "3s"
connect_timeout = "1s"
internal_metrics = false
watch_config = false
[web]
enabled = false
state_dir = "{state}"
[[network.ip_range_groups]]
name = "room"
[[network.ip_range_groups.ip_ranges]]
name = "rack"
first = "{first}"
last = "{last}"
[[inputs.bitmain_http]]
web_port = 8080
[[inputs.cgminer]]
[[outputs.influxdb]]
urls = ["{url}"]
database = "{DB}"
timeout = "2s"
buffer = "disk"
buffer_max_bytes = "1GB"
"""


def start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as handle:
        return subprocess.Popen([sys.executable, "-m", "webbo.agent.cli", "--log-format", "json",
                                 "run", "-c", str(config)], stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)


def status(state: Path) -> dict:
    try:
        return json.loads((state / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def wait(predicate, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def received(server: InfluxDB1) -> int:
    """Points influxd was sent since it started (duplicates included)."""
    series = server.query("SHOW STATS FOR 'write'")
    return int(dict(zip(series[0]["columns"], series[0]["values"][0], strict=True))["pointReq"])


def stop_when_quiet(server: InfluxDB1) -> int:
    """Stop influxd between two writes; returns the points it received."""
    last = received(server)
    while True:
        time.sleep(0.3)
        now = received(server)
        if now == last:
            server.stop()
            return now
        last = now


def cycles(server: InfluxDB1) -> list[list[tuple[int, str]]]:
    """The ``miner`` points as (time, mac), split into sweeps: a sweep polls each miner once,
    so a MAC seen again (or a pause of a second) starts the next one."""
    rows = server.rows("SELECT online, mac FROM miner", DB)
    points = sorted((r["time"], r["mac"]) for r in rows)
    out: list[list[tuple[int, str]]] = [[]]
    seen: set[str] = set()
    for point in points:
        if out[-1] and (point[1] in seen or point[0] - out[-1][-1][0] > 1e9):
            out.append([])
            seen = set()
        out[-1].append(point)
        seen.add(point[1])
    return out


def count_between(server: InfluxDB1, measurement: str, field: str, a: int, b: int) -> int:
    series = server.query(f'SELECT count("{field}") FROM "{measurement}" '
                          f"WHERE time >= {a} AND time <= {b}", DB)
    return int(series[0]["values"][0][1]) if series else 0


def test_outage_with_a_kill_9_in_the_middle_loses_nothing(tmp_path):
    base = f"127.{60 + os.getpid() % 60}.0.1"
    farm, inventory = spawn("--miners", str(MINERS), "--base", base, "--http-port", "8080",
                            "--seed", "3", "--families", "antminer")
    (tmp_path / "influx").mkdir()
    server = InfluxDB1(tmp_path / "influx").start()
    state = tmp_path / "state"
    config = tmp_path / "webbo.toml"
    ips = [d["ip"] for d in inventory["devices"]]
    config.write_text(agent_config(state, ips[0], ips[-1], server.url))
    log = tmp_path / "agent.log"
    agent = start_agent(config, log)
    try:
        # Up: a few complete cycles land.
        assert wait(lambda: server.count("miner", "online", DB) >= 4 * MINERS, 120)
        before_outage = stop_when_quiet(server)
        outage_began = time.monotonic()
        time.sleep(OUTAGE / 2)
        killed_at = time.time_ns()
        agent.send_signal(signal.SIGKILL)
        agent.wait()
        agent = start_agent(config, log)  # started again, still in the outage
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - outage_began)))
        buffered = status(state).get("outputs", [{}])[0]
        server.start()
        back = time.monotonic()
        assert wait(lambda: received(server) > 0, 60, 0.05)
        resumed_after = time.monotonic() - back
        assert wait(lambda: status(state)["outputs"][0]["buffer_size"] == 0
                    and status(state)["written_at"] > time.time() - 3, 300)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(60) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        stop(farm)
    try:
        sweeps = cycles(server)
        stored = sum(server.count(m, f, DB) for m, f in
                     (("miner", "online"), ("miner_board", "hashrate_ths"),
                      ("miner_pool", "url")))
        total_received = before_outage + received(server)
        per_cycle = []
        for sweep in sweeps:
            a, b = sweep[0][0], sweep[-1][0]
            macs = Counter(mac for _, mac in sweep)
            per_cycle.append((a, b, len(macs), max(macs.values()),
                              count_between(server, "miner_board", "hashrate_ths", a, b),
                              count_between(server, "miner_pool", "url", a, b)))
    finally:
        server.stop()
    complete = [c for c in per_cycle if c[2] == MINERS]
    boards = Counter(c[4] for c in complete).most_common(1)[0][0]
    pools = Counter(c[5] for c in complete).most_common(1)[0][0]
    short = [c for c in per_cycle if (c[2], c[4], c[5]) != (MINERS, boards, pools)]
    lost = sum(MINERS - c[2] for c in short)
    print(f"\n{len(per_cycle)} cycles, {len(short)} short; {stored} points stored, "
          f"{total_received} received ({total_received - stored} twice); buffered at the "
          f"end of the outage: {buffered.get('buffer_size')} metrics, "
          f"{buffered.get('buffer_bytes')} bytes; writing resumed {resumed_after:.2f} s after "
          f"influxd was back; miner points lost to the kill -9: {lost}")
    assert len(per_cycle) >= OUTAGE / INTERVAL / 2  # cycles kept coming in the outage
    for a, b, miners, _, _, _ in short:
        # Only a sweep gathered in the last moments before the kill may be short.
        assert killed_at - 3e9 <= b <= killed_at, (a, b, miners, killed_at)
    assert len(short) <= 1
    # Twice: at most one flush's batches (a batch in flight when influxd stopped).
    assert 0 <= total_received - stored <= 10_000
    replays = [json.loads(line) for line in log.read_text().splitlines()
               if "replaying what was left unsent" in line]
    assert len(replays) == 1 and replays[0]["metrics"] > 0
