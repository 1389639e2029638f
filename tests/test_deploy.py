"""Deployment: the installer in a throwaway root, its idempotence and upgrades, the systemd unit."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from project import ROOT

INSTALL = ROOT / "contrib" / "install.sh"


def fake_root(tmp_path: Path) -> Path:
    """An empty filesystem root with this machine's user database (useradd --prefix needs it)."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for name in ("passwd", "group", "shadow", "gshadow", "login.defs"):
        source = Path("/etc") / name
        if source.exists():
            shutil.copy2(source, root / "etc" / name)
    if "dialout:" not in (root / "etc" / "group").read_text():
        with (root / "etc" / "group").open("a") as handle:
            handle.write("dialout:x:20:\n")
    return root


def install(root: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # uv, if installed
    return subprocess.run(["bash", str(INSTALL), "--root", str(root), "--no-start"],
                          capture_output=True, text=True, env=env, timeout=900)


def entry(root: Path, database: str, name: str) -> list[str]:
    for line in (root / "etc" / database).read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":")
    raise AssertionError(f"{name} not in {database}")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    if os.geteuid() != 0:
        pytest.fail("the installer test needs root (CI runs as root)")
    root = fake_root(tmp_path_factory.mktemp("install"))
    result = install(root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def test_user_group_and_dialout(installed):
    user = entry(installed, "passwd", "webbo")
    assert int(user[2]) < 1000  # a system user
    assert user[5] == "/var/lib/webbo" and user[6] == "/usr/sbin/nologin"
    dialout = entry(installed, "group", "dialout")
    assert "webbo" in dialout[3].split(",")


def test_files_owners_and_modes(installed):
    uid = int(entry(installed, "passwd", "webbo")[2])
    gid = int(entry(installed, "passwd", "webbo")[3])
    state = (installed / "var/lib/webbo").stat()
    assert stat.S_IMODE(state.st_mode) == 0o700 and state.st_uid == uid
    etc = (installed / "etc/webbo").stat()
    assert stat.S_IMODE(etc.st_mode) == 0o770 and (etc.st_uid, etc.st_gid) == (0, gid)
    config = installed / "etc/webbo/webbo.toml"
    cst = config.stat()
    assert stat.S_IMODE(cst.st_mode) == 0o660 and (cst.st_uid, cst.st_gid) == (0, gid)
    unit = installed / "etc/systemd/system/webbo.service"
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert os.readlink(installed / "usr/local/bin/webbo") == "/opt/webbo/venv/bin/webbo"


def test_installed_config_is_the_sample_listening_on_port_80(installed):
    config = installed / "etc/webbo/webbo.toml"
    text = config.read_text()
    data = tomllib.loads(text)
    assert data["web"]["listen"] == "0.0.0.0:80"
    assert data["web"]["state_dir"] == "/var/lib/webbo"
    assert data["network"] == {}  # scans nothing
    assert [t["buffer"] for t in data["outputs"]["influxdb"]] == ["disk"]  # loses nothing
    assert "# Every option is shown here" in text  # the sample's comments are kept
    webbo = installed / "opt/webbo/venv/bin/webbo"
    check = subprocess.run([str(webbo), "config", "check", "-c", str(config)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_second_run_is_harmless_and_upgrade_keeps_config_and_state(installed):
    config = installed / "etc/webbo/webbo.toml"
    config.write_text(config.read_text() + "\n# operator's note\n")
    (installed / "var/lib/webbo/inventory.json").write_text('{"version": 1, "devices": []}')
    passwd_before = (installed / "etc/passwd").read_text()
    result = install(installed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "keeping" in result.stdout
    assert config.read_text().endswith("# operator's note\n")
    assert (installed / "var/lib/webbo/inventory.json").exists()
    assert (installed / "etc/passwd").read_text() == passwd_before  # no second user


def test_systemd_unit_verifies(installed, tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing (Debian package systemd)")
    unit = (ROOT / "contrib/webbo.service").read_text()
    # verify checks that ExecStart exists: point it at the binary installed in the dry-run root.
    binary = installed / "opt/webbo/venv/bin/webbo"
    assert "ExecStart=/opt/webbo/venv/bin/webbo run -c /etc/webbo/webbo.toml" in unit
    local = tmp_path / "webbo.service"
    local.write_text(unit.replace("/opt/webbo/venv/bin/webbo", str(binary)))
    result = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for hardening in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                      "AmbientCapabilities=CAP_NET_BIND_SERVICE", "Restart=on-failure",
                      "SupplementaryGroups=dialout"):
        assert hardening in unit


# -- the manual's first start, on the installed system ------------------------------------------

MANUAL_NETWORK = {"ip_range_groups": [{"name": "подсобка", "ip_ranges": [
    {"name": "пятая стойка", "first": "10.30.0.0", "last": "10.30.0.128"}]}]}


async def test_first_start_on_the_installed_config_finds_the_miners(installed, influx_db,
                                                                     registry, tmp_path):
    """The installer's own config (only the listen address, the state folder and the
    InfluxDB URL changed, as an operator would), the agent of the installed venv started on it,
    the manual's set-network example (10.30.0.x moved to a private 127.x block): the simulated
    miners of that range are in InfluxDB within two poll intervals."""
    import asyncio
    import ipaddress
    import json
    import time
    import urllib.request

    import tomlkit
    from minerfarm import family
    from servers import free_port

    server, db = influx_db
    config = tomlkit.parse((installed / "etc" / "webbo" / "webbo.toml").read_text())
    assert {"bitmain_http", "whatsminer", "cgminer"} <= set(config["inputs"])  # drivers on
    port = free_port()
    config["web"]["listen"] = f"127.0.0.1:{port}"
    config["web"]["state_dir"] = str(tmp_path / "state")
    config["outputs"]["influxdb"][0]["urls"] = [server.url]
    config["outputs"]["influxdb"][0]["database"] = db
    path = tmp_path / "webbo.toml"
    path.write_text(tomlkit.dumps(config))
    prefix = "127.30.0."  # the manual's 10.30.0.x, on loopback
    ants = [f"{prefix}{i}" for i in range(10, 14)]
    whats = [f"{prefix}{i}" for i in range(20, 23)]
    webbo = installed / "opt" / "webbo" / "venv" / "bin" / "webbo"
    env = {**os.environ, "WEBBO_LOG_LEVEL": "warning"}
    async with family(registry, "antminer", ants, http_port=80), \
            family(registry, "whatsminer", whats, seed=4):
        key = await asyncio.to_thread(
            subprocess.run, [str(webbo), "apikey", "create", "-c", str(path)], env=env,
            capture_output=True, text=True, timeout=60)
        assert key.returncode == 0, key.stderr
        proc = await asyncio.to_thread(
            subprocess.Popen, [str(webbo), "run", "-c", str(path)], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            def call(method: str, body: dict) -> dict:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/{method}", json.dumps(body).encode(),
                    {"Content-Type": "application/json",
                     "X-Api-Key": key.stdout.strip().splitlines()[-1]})
                with urllib.request.urlopen(request, timeout=10) as answer:
                    return json.loads(answer.read())

            deadline = time.monotonic() + 60
            while True:
                try:
                    await asyncio.to_thread(call, "agent/get-status", {})
                    break
                except OSError:
                    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                    assert time.monotonic() < deadline, "the agent did not start"
                    await asyncio.sleep(0.5)
            body = json.loads(json.dumps(MANUAL_NETWORK).replace('"10.30.0.', f'"{prefix}'))
            answer = await asyncio.to_thread(call, "mining/set-network", body)
            assert answer["success"] and "task_id" in answer["payload"]
            assert "warnings" not in answer["payload"]  # the drivers are on: it will sweep
            saved = time.monotonic()
            interval = 10.0  # the sample's [agent] interval
            want = {m for m in ants + whats}
            first, last = (int(ipaddress.IPv4Address(a)) for a in (f"{prefix}0", f"{prefix}128"))
            assert all(first <= int(ipaddress.IPv4Address(ip)) <= last for ip in want)
            while True:
                rows = server.rows('SELECT last("ip") AS ip FROM "miner" WHERE "online" = true '
                                   'GROUP BY "mac"', db) if server.running else []
                seen = {r["ip"] for r in rows}
                if want <= seen:
                    break
                assert time.monotonic() - saved < 2 * interval + 10, (want - seen, rows)
                await asyncio.sleep(1)
        finally:
            proc.terminate()
            await asyncio.to_thread(proc.wait, 30)


def test_the_readme_commands_need_no_registry_once_installed():
    """contrib/dev/setup.sh (sourced by both README commands) and the test command's Debian
    packages, run again in a network namespace with no route anywhere: everything is installed,
    so nothing is fetched and it succeeds."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("this test needs root and unshare (CI runs as root)")
    test_sh = (ROOT / "contrib" / "dev" / "test.sh").read_text()
    packages = next(line.split()[1:] for line in test_sh.splitlines()
                    if line.startswith("apt_install "))
    for extras in ("test", "demo"):
        script = (f"cd {ROOT} && WEBBO_EXTRAS={extras} source contrib/dev/setup.sh && "
                  f"apt_install {' '.join(packages)} && echo READY")
        result = subprocess.run(["unshare", "--net", "bash", "-c", script], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0 and "READY" in result.stdout, result.stderr[-2000:]


def test_the_api_documentation_is_where_the_manual_says(installed):
    """The manual's last line: the API documentation is at /opt/m0n/docs/API.md after
    installation (a link to the installed docs)."""
    link = installed / "opt" / "m0n" / "docs"
    assert link.is_symlink() and os.readlink(link) == "/opt/webbo/docs"
    assert (installed / "opt" / "webbo" / "docs" / "API.md").exists()
