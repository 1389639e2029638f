"""Real storage servers for tests and benchmarks: Debian's ``influxd`` (1.x) and
``victoria-metrics``, each started on a free loopback port with a temporary data folder.

Nothing here is a mock: tests write through the agent and query what actually landed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import msgspec

INFLUXD = shutil.which("influxd") or "/usr/bin/influxd"
VICTORIA = shutil.which("victoria-metrics") or "/usr/bin/victoria-metrics"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None,
               log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"server exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up in {timeout}s")


class _Process:
    proc: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class InfluxDB1(_Process):
    """``influxd`` 1.x on 127.0.0.1:<free port>, data in ``root``."""

    def __init__(self, root: Path, max_body_size: int | None = None) -> None:
        self.root = root
        self.port = free_port()
        self.rpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.max_body_size = max_body_size
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "influxd.log"

    def _write_config(self) -> Path:
        extra = f"  max-body-size = {self.max_body_size}\n" if self.max_body_size else ""
        conf = self.root / "influxdb.conf"
        conf.write_text(
            f'reporting-disabled = true\n'
            f'bind-address = "127.0.0.1:{self.rpc_port}"\n'
            f'[meta]\n  dir = "{self.root}/meta"\n'
            f'[data]\n  dir = "{self.root}/data"\n  wal-dir = "{self.root}/wal"\n'
            f'  query-log-enabled = false\n'
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n{extra}'
            f'[monitor]\n  store-enabled = false\n'
            f'[continuous_queries]\n  enabled = false\n'
            f'[subscriber]\n  enabled = false\n'
        )
        return conf

    def start(self) -> InfluxDB1:
        conf = self._write_config()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([INFLUXD, "-config", str(conf)], stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        _wait_http(f"{self.url}/ping", proc=self.proc, log=self.log)
        return self


    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def query(self, q: str, db: str | None = None) -> list[dict[str, Any]]:
        """Run InfluxQL; return the list of series (msgpack answer, so types are exact)."""
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        data = urllib.parse.urlencode(params).encode()
        req = urllib.request.Request(f"{self.url}/query", data=data,
                                     headers={"Accept": "application/x-msgpack"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        answer = msgspec.msgpack.decode(raw)
        series: list[dict[str, Any]] = []
        for result in answer.get("results", []):
            if "error" in result:
                raise RuntimeError(result["error"])
            series.extend(result.get("series", []))
        return series

    def rows(self, q: str, db: str) -> list[dict[str, Any]]:
        """Query rows as dicts (column → value), tags of GROUP BY merged in."""
        out = []
        for s in self.query(q, db):
            for values in s.get("values", []):
                row = dict(zip(s["columns"], values, strict=True))
                row.update(s.get("tags") or {})
                row["_measurement"] = s.get("name")
                out.append(row)
        return out

    def count(self, measurement: str, field: str, db: str) -> int:
        try:
            series = self.query(f'SELECT count("{field}") FROM "{measurement}"', db)
        except RuntimeError as exc:
            if "database not found" in str(exc):
                return 0
            raise
        if not series:
            return 0
        return int(series[0]["values"][0][1])

    def create_database(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"')

    def drop_database(self, name: str) -> None:
        self.query(f'DROP DATABASE "{name}"')


class VictoriaMetrics(_Process):
    """``victoria-metrics`` on 127.0.0.1:<free port>: accepts the InfluxDB v2 write API."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "victoria.log"

    def start(self) -> VictoriaMetrics:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [VICTORIA, f"-storageDataPath={self.root}/data",
                 f"-httpListenAddr=127.0.0.1:{self.port}", "-retentionPeriod=100y",
                 "-search.latencyOffset=0s", "-search.disableCache",
                 "-search.maxUniqueTimeseries=1000000", "-loggerLevel=ERROR"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_http(f"{self.url}/health", proc=self.proc, log=self.log)
        return self


    def flush(self) -> None:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10).read()

    def export(self, match: str) -> list[dict[str, Any]]:
        """Every stored sample of the series matching ``match`` (JSON lines export)."""
        self.flush()
        query = urllib.parse.urlencode({"match[]": match, "start": "0"})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{query}", timeout=60) as resp:
            text = resp.read().decode()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def count_samples(self, match: str) -> int:
        return sum(len(series["values"]) for series in self.export(match))


class Prometheus(_Process):
    """Debian's ``prometheus`` on 127.0.0.1:<free port>, its TSDB in ``root`` (2.42 takes no
    lock on it by default: a fresh folder per instance), scraping what ``config`` says."""

    def __init__(self, root: Path, config: str) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "prometheus.log"

    def start(self) -> Prometheus:
        conf = self.root / "prometheus.yml"
        conf.write_text(self.config)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={conf}", f"--storage.tsdb.path={self.root}/data",
                 f"--web.listen-address=127.0.0.1:{self.port}",
                 "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_http(f"{self.url}/-/ready", proc=self.proc, log=self.log)
        return self

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query through the HTTP API: the result vector."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=30) as resp:
            answer = json.loads(resp.read())
        assert answer["status"] == "success", answer
        return answer["data"]["result"]  # type: ignore[no-any-return]

    def targets(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=30) as resp:
            return json.loads(resp.read())["data"]["activeTargets"]  # type: ignore[no-any-return]


def servers_available() -> dict[str, bool]:
    return {"influxd": os.access(INFLUXD, os.X_OK),
            "victoria-metrics": os.access(VICTORIA, os.X_OK),
            "prometheus": os.access(PROMETHEUS, os.X_OK)}
