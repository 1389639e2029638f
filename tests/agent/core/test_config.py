"""Typed config: key-path errors, unknown keys, ${VAR}, atomic comment-keeping edits."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import tomlkit
from project import ROOT

from webbo.agent.core.config import ConfigError, Duration, load_config, parse_config
from webbo.agent.core.config_edit import edit_config, set_table_array


def errors_of(text, registry, env=None):
    with pytest.raises(ConfigError) as info:
        parse_config(text, registry, env=env or {})
    return str(info.value)


def test_sample_config_is_valid_and_scans_nothing(registry):
    config = load_config(ROOT / "webbo.toml", registry)
    assert config.network.ip_range_groups == []
    assert [i.name for i in config.outputs] == ["influxdb"]


def test_every_option_of_the_sample_is_known(registry):
    """Uncommenting every '# key = value' line of the sample still gives a valid config."""
    lines = []
    for line in (ROOT / "webbo.toml").read_text().splitlines():
        stripped = line.strip()
        # The sample's convention: "# " starts a commented-out option or table, "## " prose.
        if stripped.startswith("# [") and stripped.endswith("]"):
            lines.append(stripped[2:])
            continue
        if stripped.startswith("# ") and "=" in stripped:
            candidate = stripped[2:]
            key = candidate.split("=", 1)[0].strip()
            if key.replace("_", "").isalnum():
                lines.append(candidate)
                continue
        lines.append(line)
    parse_config("\n".join(lines), registry, env={"INFLUX_PASSWORD": "x", "INFLUX_TOKEN": "t"})


def test_error_names_key_path_and_reason(registry):
    text = '[[outputs.influxdb]]\nurls = ["http://a:8086", "ftp://b"]\n'
    assert errors_of(text, registry) == "outputs.influxdb[0].urls[1]: not an http(s) URL: 'ftp://b'"


@pytest.mark.parametrize(("text", "expected"), [
    ("[agent]\nbogus = 1\n", "agent.bogus: unknown key"),
    ("bogus = 1\n", "bogus: unknown key"),
    ("[agent]\ninterval = 5x\n", "not valid TOML"),
    ('[agent]\ninterval = "5x"\n', "agent.interval: expected a duration"),
    ("[agent]\nmetric_batch_size = \"a\"\n", "agent.metric_batch_size: expected int, got str"),
    ("[agent]\nmetric_batch_size = 0\n", "agent.metric_batch_size: must be at least 1"),
    ("[[outputs.nosuch]]\n", "outputs.nosuch: unknown plugin"),
    ("[[outputs.influxdb]]\nfoo = 1\n", "outputs.influxdb[0].foo: unknown key"),
    ("[web]\nlisten = \"nope\"\n", 'web.listen: expected "HOST:PORT"'),
    ("[[network.ip_range_groups]]\n[[network.ip_range_groups.ip_ranges]]\nfirst = \"::1\"\n"
     "last = \"::2\"\n", "network.ip_range_groups[0].ip_ranges[0].first: not an IPv4 address"),
    ("[[network.ip_range_groups]]\n[[network.ip_range_groups.ip_ranges]]\nfirst = \"127.0.0.9\"\n"
     "last = \"127.0.0.1\"\n", "ip_ranges[0].last: 127.0.0.1 is before first 127.0.0.9"),
    ("[[network.ip_range_groups]]\n[[network.ip_range_groups.ip_ranges]]\nlast = \"127.0.0.1\"\n",
     "network.ip_range_groups[0].ip_ranges[0].first: required key is missing"),
    ("[[network.ip_range_groups]]\nuuid = \"1\"\n", "network.ip_range_groups[0].uuid: not a UUID"),
])
def test_errors(registry, text, expected):
    assert expected in errors_of(text, registry)


def test_overlapping_ranges_name_both(registry):
    text = """
[[network.ip_range_groups]]
name = "room"
[[network.ip_range_groups.ip_ranges]]
name = "rack A"
first = "127.1.0.1"
last = "127.1.0.100"
[[network.ip_range_groups]]
name = "other"
[[network.ip_range_groups.ip_ranges]]
name = "rack B"
first = "127.1.0.50"
last = "127.1.0.60"
"""
    message = errors_of(text, registry)
    assert "rack A" in message and "rack B" in message and "overlaps" in message


def test_address_cap(registry):
    text = """
[agent]
max_addresses = 100
[[network.ip_range_groups]]
[[network.ip_range_groups.ip_ranges]]
first = "127.1.0.0"
last = "127.1.1.0"
"""
    assert "257 addresses, more than agent.max_addresses = 100" in errors_of(text, registry)


def test_env_substitution(registry):
    text = '[[outputs.influxdb]]\ndatabase = "${DB}"\npassword = "${PW:-fallback}"\n'
    config = parse_config(text, registry, env={"DB": "farm"})
    out = config.outputs[0].config
    assert (out.database, out.password) == ("farm", "fallback")
    assert "outputs.influxdb[0].database: environment variable DB is not set" in errors_of(
        text, registry)


def test_durations():
    assert Duration.parse("500ms") == 0.5
    assert Duration.parse("2m") == 120
    assert Duration.parse(3) == 3
    with pytest.raises(ValueError):
        Duration.parse("-1s")


def test_uuids_are_generated_stable_and_written_back(tmp_path, registry):
    path = tmp_path / "webbo.toml"
    path.write_text("# my farm\n[[network.ip_range_groups]]\nname = \"room\"  # the big one\n"
                    "[[network.ip_range_groups.ip_ranges]]\nfirst = \"127.2.0.1\"\n"
                    "last = \"127.2.0.9\"\n")
    first = load_config(path, registry)
    again = load_config(path, registry)
    assert first.generated_uuids
    gid = first.network.ip_range_groups[0].uuid
    assert gid == again.network.ip_range_groups[0].uuid
    from webbo.agent.core.config_edit import persist_generated_uuids
    persist_generated_uuids(first, registry)
    text = path.read_text()
    assert gid in text and "# the big one" in text and "# my farm" in text
    assert not load_config(path, registry).generated_uuids


def test_edit_keeps_comments_and_order_and_is_atomic(tmp_path, registry):
    path = tmp_path / "webbo.toml"
    original = (ROOT / "webbo.toml").read_text()
    path.write_text(original)
    os.chmod(path, 0o640)

    def mutate(doc):
        doc["agent"]["interval"] = "30s"
        set_table_array(doc, "network.ip_range_groups", [{"name": "room", "ip_ranges": []}])

    config = edit_config(path, mutate, registry)
    assert config.agent.interval == 30
    text = path.read_text()
    assert text.startswith(original.splitlines()[0])
    assert "# Every option is shown here" in text
    assert text.index("\n[agent]") < text.index("\n[web]") < text.index("\n[network]")
    assert oct(path.stat().st_mode & 0o777) == "0o640"
    assert not list(tmp_path.glob(".webbo.toml.*"))  # no temp file left behind


def test_invalid_edit_is_refused_and_file_unchanged(tmp_path, registry):
    path = tmp_path / "webbo.toml"
    path.write_text((ROOT / "webbo.toml").read_text())
    before = path.read_bytes()
    stat = path.stat()

    def mutate(doc):
        doc["agent"]["metric_batch_size"] = -5

    with pytest.raises(ConfigError, match=r"agent\.metric_batch_size: must be at least 1"):
        edit_config(path, mutate, registry)
    assert path.read_bytes() == before
    assert path.stat().st_ino == stat.st_ino


def test_cli_config_check(tmp_path):
    good = subprocess.run([sys.executable, "-m", "webbo.agent.cli", "config", "check", "-c",
                           str(ROOT / "webbo.toml")], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[[outputs.influxdb]]\nurls = ["http://a", "gopher://b"]\n')
    result = subprocess.run([sys.executable, "-m", "webbo.agent.cli", "config", "check", "-c",
                             str(bad)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "outputs.influxdb[0].urls[1]: not an http(s) URL" in result.stderr


def test_tomlkit_available_for_edits():
    assert tomlkit.parse("a = 1 # c\n").as_string() == "a = 1 # c\n"
