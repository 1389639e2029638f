"""The distribution: build the wheel, install it in a fresh venv with a third-party plugin (and
a broken one), import every module from it, and run the CLI from there."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import pytest
from project import FIXTURES
from servers import free_port
from wheels import build_webbo_wheel, run, uv


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("wheel")
    wheel = build_webbo_wheel(work / "dist")
    venv = work / "venv"
    made = run(uv(), "venv", "--python", sys.executable, str(venv))
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    inst = run(uv(), "pip", "install", "--python", str(python), str(wheel),
               str(FIXTURES / "webbo-example-plugin"), str(FIXTURES / "webbo-broken-plugin"))
    assert inst.returncode == 0, inst.stderr[-3000:]
    return {"wheel": wheel, "venv": venv, "python": python, "work": work}


def test_wheel_holds_only_the_webbo_namespace(installed):
    with zipfile.ZipFile(installed["wheel"]) as wheel:
        tops = {name.split("/", 1)[0] for name in wheel.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"webbo"}
    with zipfile.ZipFile(installed["wheel"]) as wheel:
        names = wheel.namelist()
    assert "webbo/agent/core/hookspecs.py" in names
    assert "webbo/agent/plugin.py" in names
    assert "webbo/plugins/outputs/influxdb/README.md" in names
    assert "webbo/plugins/outputs/influxdb/sample.toml" in names


def test_every_module_imports_from_the_installed_wheel(installed):
    with zipfile.ZipFile(installed["wheel"]) as wheel:
        modules = sorted(
            name[:-3].replace("/", ".").removesuffix(".__init__")
            for name in wheel.namelist()
            if name.endswith(".py") and not name.endswith("/__main__.py")  # runs the CLI
        )
    assert len(modules) > 10
    script = (
        "import importlib, json, sys\n"
        f"mods = {modules!r}\n"
        "bad = {}\n"
        "for m in mods:\n"
        "    try:\n"
        "        mod = importlib.import_module(m)\n"
        "        assert '/site-packages/' in (mod.__file__ or ''), mod.__file__\n"
        "    except Exception as e:\n"
        "        bad[m] = repr(e)\n"
        "print(json.dumps(bad))\n"
    )
    result = run(str(installed["python"]), "-c", script, cwd=str(installed["work"]))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {}


def test_plugins_lists_third_party_and_survives_a_broken_one(installed):
    webbo = str(installed["venv"] / "bin" / "webbo")
    result = run(webbo, "plugins", cwd=str(installed["work"]))
    assert result.returncode == 0, result.stderr
    assert "webbo-example-plugin 1.2.3" in result.stdout
    assert "example_ticks" in result.stdout and "example_file" in result.stdout
    assert "broken" in result.stdout and "FAILED" in result.stdout
    assert "influxdb" in result.stdout
    assert "plugin skipped" in result.stderr and "broken" in result.stderr


def test_third_party_metrics_flow(installed, tmp_path):
    out = tmp_path / "metrics.lp"
    config = tmp_path / "webbo.toml"
    config.write_text(f"""
[agent]
internal_metrics = false
[[inputs.example_ticks]]
count = 4
[[outputs.example_file]]
path = "{out}"
""")
    webbo = str(installed["venv"] / "bin" / "webbo")
    result = run(webbo, "once", "-c", str(config), state_home=str(tmp_path / "state"))
    assert result.returncode == 0, result.stderr
    lines = out.read_text().split()
    assert sum(1 for line in out.read_text().splitlines() if line.startswith("example,")) == 4, \
        lines
    test = run(webbo, "test", "-c", str(config), state_home=str(tmp_path / "state"))
    assert test.returncode == 0
    assert test.stdout.count("example,source=third-party n=") == 4


def test_once_exits_non_zero_when_the_output_is_unreachable(installed, tmp_path):
    config = tmp_path / "webbo.toml"
    config.write_text(f"""
[agent]
internal_metrics = false
[[inputs.example_ticks]]
[[outputs.influxdb]]
urls = ["http://127.0.0.1:{free_port()}"]
timeout = "500ms"
""")
    webbo = str(installed["venv"] / "bin" / "webbo")
    result = run(webbo, "once", "--flush-timeout", "2", "-c", str(config),
                 state_home=str(tmp_path / "state"))
    assert result.returncode == 1
    assert "3 metrics were not written" in result.stderr


def test_json_logs(installed, tmp_path):
    webbo = str(installed["venv"] / "bin" / "webbo")
    result = run(webbo, "--log-format", "json", "plugins", cwd=str(installed["work"]))
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(r.get("event") == "plugin skipped" and r.get("plugin") == "broken"
               for r in records)
