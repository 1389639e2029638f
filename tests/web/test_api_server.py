"""``webbo run`` serves the API from its own process; the CLI manages keys and passwords;
schemathesis, driven by the served OpenAPI document, finds no server error.

No miner driver is configured here, so whatever network schemathesis writes through
set-network is never swept: this test talks to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from webbo.web.passwords import verify_password
from webbo.web.state import StateStore

BIN = Path(sys.executable).parent
WEBBO = str(BIN / "webbo")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, body: object, key: str | None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-Api-Key"] = key
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


class Agent:
    """``webbo run -c FILE`` as a child process. Its output is read all the time by a thread
    (a pipe nobody reads fills up, and the agent would block on its next log line)."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.lines: list[str] = []
        self._seen = threading.Condition()
        self.proc = subprocess.Popen([WEBBO, "--log-format", "json", "run", "-c", str(config)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()
        with self._seen:
            self.lines.append("")  # the end
            self._seen.notify_all()

    def wait_for_line(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        checked = 0
        with self._seen:
            while True:
                for line in self.lines[checked:]:
                    if line == "":
                        raise AssertionError(f"webbo run ended: {''.join(self.lines)[-3000:]}")
                    if match := regex.search(line):
                        return match
                checked = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line matching {pattern!r}: "
                                         f"{''.join(self.lines)[-3000:]}")
                self._seen.wait(left)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(10)
        return self.proc.returncode


def doc_paths(base: str, key: str) -> list[str]:
    """The operations the served OpenAPI document describes (one POST per path)."""
    request = urllib.request.Request(base + "/api/openapi.json", headers={"X-Api-Key": key})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return list(json.loads(answer.read())["paths"])


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WEBBO, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.slow
def test_webbo_run_serves_the_api_keys_passwords_and_schemathesis(tmp_path):
    port = free_port()
    config = tmp_path / "webbo.toml"
    config.write_text(f"""[agent]
max_addresses = 1024

[web]
listen = "127.0.0.1:{port}"
state_dir = "state"
task_ttl = "1s"

[network]
""")
    base = f"http://127.0.0.1:{port}"
    agent = Agent(config)
    try:
        # the first start makes the miner user and shows its password once
        agent.wait_for_line(r"web server listening")
        password = agent.wait_for_line(r"web user 'miner' created with password: (\S+)")[1]
        agent.wait_for_line(rf"open http://127\.0\.0\.1:{port}/ and log in as 'miner'")
        store = StateStore(tmp_path / "state")
        assert verify_password(password, store.data.users["miner"].password_hash)

        created = cli("apikey", "create", "-c", str(config), "--name", "ci")
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip().splitlines()[-1]
        assert key.startswith("wbk.") and key not in (tmp_path / "state" / "web.json").read_text()
        code, answer = post(base + "/api/mining/get-network", {}, key)
        assert (code, answer) == (200, {"success": True, "payload": {"ip_range_groups": []}})
        code, answer = post(base + "/api/mining/get-network", {}, None)
        assert code == 401 and answer["success"] is False

        listing = cli("apikey", "list", "-c", str(config))
        key_id = key.split(".")[1]
        assert key_id in listing.stdout and "ci" in listing.stdout

        # a finished task nobody reads is forgotten after task_ttl
        task_id = post(base + "/api/mining/miners/get-led-status", {"macs": []}, key)[1][
            "payload"]["task_id"]
        read_at_once = post(base + "/api/mining/miners/get-led-status", {"macs": []}, key)[1][
            "payload"]["task_id"]
        deadline = time.monotonic() + 10
        while True:
            info = post(base + "/api/task-info", {"task_id": read_at_once}, key)[1]["payload"]
            if info["status"] != "pending" or time.monotonic() > deadline:
                break
        assert info == {"status": "success", "result": {}}
        time.sleep(1.5)  # longer than task_ttl: time itself is what this waits for
        assert post(base + "/api/task-info", {"task_id": task_id}, key)[1]["payload"] == {
            "status": "unknown", "result": None}

        # schemathesis over the served OpenAPI document: no 5xx, answers match the schema
        run = subprocess.run(
            [str(BIN / "schemathesis"), "run", base + "/api/openapi.json", "-H",
             f"X-Api-Key: {key}", "--checks",
             "not_a_server_error,response_schema_conformance,status_code_conformance,"
             "content_type_conformance", "--max-examples", "25", "--seed", "1",
             "--generation-database", "none", "--no-color", "--workers", "1"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
        assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
        operations = len(doc_paths(base, key))
        assert f"{operations} selected / {operations} total" in run.stdout

        # a new password from stdin (not a terminal)
        changed = cli("user", "set-password", "-c", str(config), stdin="a-new-pass-123\n")
        assert changed.returncode == 0, changed.stderr
        assert verify_password("a-new-pass-123",
                               StateStore(tmp_path / "state").data.users["miner"].password_hash)
        short = cli("user", "set-password", "-c", str(config), stdin="short\n")
        assert short.returncode == 1 and "at least" in short.stderr

        # revoking a key takes effect at once in the running agent
        assert cli("apikey", "revoke", "-c", str(config), key_id).returncode == 0
        code, answer = post(base + "/api/mining/get-network", {}, key)
        assert (code, answer) == (401, {"success": False, "payload": "invalid API key"})
    finally:
        assert agent.stop() == 0, "".join(agent.lines)[-3000:]

    # a second start shows no password
    again = Agent(config)
    try:
        again.wait_for_line(r"web server listening")
    finally:
        again.stop()
    assert "created with password" not in "".join(again.lines)
    assert oct((tmp_path / "state" / "web.json").stat().st_mode & 0o777) == "0o600"


def test_a_taken_port_is_a_clear_error(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        config = tmp_path / "webbo.toml"
        config.write_text(f'[web]\nlisten = "127.0.0.1:{port}"\nstate_dir = "state"\n')
        result = subprocess.run([WEBBO, "run", "-c", str(config)], capture_output=True,
                                text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert f"cannot start the web server on 127.0.0.1:{port}" in result.stderr


async def test_a_reload_that_changes_listen_moves_the_server(tmp_path, registry):
    import aiohttp

    from webbo.agent.core.agent import Agent as RunningAgent
    from webbo.agent.core.config import load_config
    from webbo.web.server import WebServer

    first, second = free_port(), free_port()
    config = tmp_path / "webbo.toml"
    config.write_text(f'[web]\nlisten = "127.0.0.1:{first}"\nstate_dir = "state"\n')
    agent = RunningAgent(registry, load_config(config, registry))
    web = WebServer(agent)
    await web.start()
    await agent.start(signals=False, watch=False)
    try:
        assert web.address == ("127.0.0.1", first)
        await agent.edits.apply(
            lambda doc: doc["web"].__setitem__("listen", f"127.0.0.1:{second}"))
        assert web.address == ("127.0.0.1", second)
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{second}/api/task-info", json={}) as r:
                assert r.status == 401
            with pytest.raises(aiohttp.ClientConnectionError):
                async with session.post(f"http://127.0.0.1:{first}/api/task-info", json={}):
                    pass
    finally:
        await web.stop()
        await agent.stop(flush_timeout=1)


async def test_a_bug_is_a_500_in_the_envelope(tmp_path, registry):
    """Whatever raises under /api is answered in the envelope (and logged), never a bare 500."""
    import aiohttp
    from litestar import post

    from webbo.agent.core.agent import Agent as RunningAgent
    from webbo.agent.core.config import load_config
    from webbo.web.app import create_app
    from webbo.web.server import WebServer

    @post("/api/test-boom", status_code=200)
    async def boom() -> None:
        raise RuntimeError("a bug")

    config = tmp_path / "webbo.toml"
    config.write_text('[web]\nstate_dir = "state"\n')
    agent = RunningAgent(registry, load_config(config, registry))
    web = WebServer(agent, listen="127.0.0.1:0",
                    app_factory=lambda a, store: create_app(a, store=store,
                                                            route_handlers=[boom]))
    await web.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(web.url + "/api/test-boom", json={}) as answer:
                assert answer.status == 500
                assert await answer.json() == {
                    "success": False,
                    "payload": "internal server error (the agent's log has the details)"}
            async with session.get(web.url + "/nothing-here") as answer:
                assert answer.status == 404 and answer.content_type == "text/plain"
    finally:
        await web.stop()
