"""``webbo status``: what the running agent reports about itself, without network or keys."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from servers import free_port


def webbo(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "webbo.agent.cli", *args], capture_output=True,
                          text=True, timeout=60, **kw)


def test_status_of_a_running_and_a_stopped_agent(tmp_path: Path, influx_db):
    server, db = influx_db
    config = tmp_path / "webbo.toml"
    config.write_text(f"""
[agent]
interval = "1s"
flush_interval = "1s"
[web]
listen = "127.0.0.1:{free_port()}"
state_dir = "state"
[[outputs.influxdb]]
urls = ["{server.url}"]
database = "{db}"
[[outputs.influxdb]]
alias = "down"
urls = ["http://127.0.0.1:{free_port()}"]
timeout = "500ms"
""")
    assert webbo("status", "-c", str(config)).returncode == 1  # never started
    proc = subprocess.Popen([sys.executable, "-m", "webbo.agent.cli", "run", "-c", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        result = webbo("status", "-c", str(config))
        while time.monotonic() < deadline and (
                result.returncode != 0 or "write errors  (failing" not in result.stdout):
            time.sleep(0.5)
            result = webbo("status", "-c", str(config))
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"agent: running (pid {proc.pid}" in result.stdout
        assert "outputs:" in result.stdout and "down" in result.stdout
        assert "(failing:" in result.stdout  # the dead output says why it is failing
        state = tmp_path / "state" / "status.json"
        assert oct(state.stat().st_mode & 0o777) == "0o600"
        raw = webbo("status", "--json", "-c", str(config))
        assert '"outputs"' in raw.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    stopped = webbo("status", "-c", str(config))
    assert stopped.returncode == 1 and "NOT running" in stopped.stdout
    assert os.path.exists(tmp_path / "state" / "status.json")


def test_status_shows_a_disk_buffer_and_an_overflow():
    import time

    from webbo.agent.cli.status import render

    now = time.time()
    status = {"written_at": now, "pid": os.getpid(), "interval_s": 10, "outputs": [
        {"label": "influxdb:central", "buffer": "disk", "buffer_size": 250_000,
         "buffer_bytes": 80_000_000, "buffer_max_bytes": 1_000_000_000, "metrics_written": 10,
         "metrics_dropped": 1234, "write_errors": 7, "buffer_oldest_s": 5400,
         "last_error": "connection refused", "dropping": True, "dropping_since": now - 300,
         "dropped_in_overflow": 1234, "buffer_error": ""}]}
    text, code = render(status, Path("/nowhere"), now)
    assert code == 0
    assert ("influxdb:central: 10 written, disk buffer 250000 metrics, 80.0 MB of 1000.0 MB, "
            "1234 dropped, 7 write errors, oldest waiting 90 min  (failing: connection refused)"
            ) in text
    assert "DROPPING: buffer full for 5 min, 1234 metrics dropped so far" in text


def test_status_shows_each_feed_of_power_control(tmp_path: Path):
    from webbo.agent.cli.status import render

    status = {"written_at": time.time(), "pid": os.getpid(), "interval_s": 10,
              "power": {"mode": "on", "steps_sent": 7, "steps_running": 1, "feeds": {
                  "Ввод 1": {"state": "shedding", "budget_kw": 250.0, "measured_kw": 281.44,
                             "problem": ""},
                  "Ввод 2": {"state": "hold", "budget_kw": 300.0, "measured_kw": None,
                             "problem": "meter 43099131-20: no reading for 95 s"}}}}
    text, code = render(status, tmp_path)
    assert code == 0
    assert "power (on): 7 steps sent, 1 running" in text
    assert "  Ввод 1: shedding, 281.4 kW of 250.0 kW" in text
    assert "  Ввод 2: hold, — kW of 300.0 kW  (meter 43099131-20: no reading for 95 s)" in text
