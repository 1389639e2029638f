"""Table-array edits keep hand-written comments above the headers they describe."""

from __future__ import annotations

import tomlkit
from project import ROOT

from webbo.agent.core.config_edit import append_table, remove_tables, set_table_array

SAMPLE = """# top
[network]
## about outputs: keep me above [[outputs.x]]

[[outputs.x]]
  a = 1
## about inputs: keep me above [[inputs.m]]

[[inputs.m]]
  serial = "1"
## about the end

"""


def above(text: str, comment: str, header: str) -> bool:
    return 0 <= text.index(comment) < text.index(header)


def test_repeated_replacements_keep_the_banner_above_the_next_header():
    doc = tomlkit.parse(SAMPLE)
    for n in range(4):
        groups = [{"name": f"g{i}", "uuid": f"u{i}",
                   "ip_ranges": [{"name": "r", "first": "127.0.0.1", "last": "127.0.0.2"}]}
                  for i in range(n)]
        set_table_array(doc, "network.ip_range_groups", groups)
        text = tomlkit.dumps(doc)
        parsed = tomlkit.parse(text)
        assert len(parsed["network"].get("ip_range_groups", [])) == n
        assert above(text, "## about outputs", "[[outputs.x]]")
        if n:
            assert text.index("[[network.ip_range_groups]]") < text.index("## about outputs")


def test_append_and_remove_keep_comments():
    doc = tomlkit.parse(SAMPLE)
    append_table(doc, "inputs.m", {"serial": "2"})
    append_table(doc, "inputs.m", {"serial": "3", "port_settings": {"baudrate": 9600}})
    text = tomlkit.dumps(doc)
    assert [t["serial"] for t in tomlkit.parse(text)["inputs"]["m"]] == ["1", "2", "3"]
    assert text.rstrip().endswith("## about the end")
    assert remove_tables(doc, "inputs.m", lambda t: t["serial"] == "3") == 1
    assert remove_tables(doc, "inputs.m", lambda t: t["serial"] in ("1", "2")) == 2
    text = tomlkit.dumps(doc)
    assert "## about the end" in text and "## about inputs" in text
    assert "inputs" not in tomlkit.parse(text) or not tomlkit.parse(text)["inputs"].get("m")
    append_table(doc, "inputs.m", {"serial": "9"})
    text = tomlkit.dumps(doc)
    assert above(text, "## about inputs", "[[inputs.m]]")


def test_on_the_real_sample():
    doc = tomlkit.parse((ROOT / "webbo.toml").read_text())
    for _ in range(3):
        set_table_array(doc, "network.ip_range_groups", [
            {"name": "room", "uuid": "u", "ip_ranges": [
                {"name": "rack", "uuid": "v", "first": "127.3.0.1", "last": "127.3.0.9"}]}])
    text = tomlkit.dumps(doc)
    assert text.count("#  OUTPUTS") == 1
    assert text.index("[[network.ip_range_groups]]") < text.index("#  OUTPUTS") < text.index(
        "[[outputs.influxdb]]")


def test_set_network_keeps_the_comments_inside_network(registry, tmp_path):
    """set-network rewrites [network]; the comments a person wrote inside it — above the
    groups, inside a group, inside a range, at the end of a line — stay where they were."""
    from webbo.agent.core.config_edit import edit_config
    from webbo.agent.core.network import network_edit, network_items

    path = tmp_path / "webbo.toml"
    path.write_text("""[network]
# the rooms of the farm
[[network.ip_range_groups]]
# room 1 is the old barn
name = "room 1"
uuid = "2a67feee-08f0-4ce1-89cd-7f8282bd1369"
  # rack 5 has the S19s
  [[network.ip_range_groups.ip_ranges]]
  name = "rack 5"   # by the door
  uuid = "7c1cfbf8-76b5-41e1-a61e-6dcb5fb40dbd"
  first = "127.30.0.1"
  last = "127.30.0.200"

## OUTPUTS below
""")
    items = network_items([{"name": "room 1", "uuid": "2a67feee-08f0-4ce1-89cd-7f8282bd1369",
                            "ip_ranges": [{"name": "rack 5",
                                           "uuid": "7c1cfbf8-76b5-41e1-a61e-6dcb5fb40dbd",
                                           "first": "127.30.0.1", "last": "127.30.0.250"},
                                          {"name": "rack 6", "first": "127.30.1.1",
                                           "last": "127.30.1.9"}]}])
    config = edit_config(path, network_edit(items), registry)
    text = path.read_text()
    for comment in ("# the rooms of the farm", "# room 1 is the old barn",
                    "# rack 5 has the S19s", "# by the door", "## OUTPUTS below"):
        assert comment in text, comment
    assert 'last = "127.30.0.250"' in text and 'name = "rack 6"' in text
    assert [r.name for r in config.network.ip_range_groups[0].ip_ranges] == ["rack 5", "rack 6"]
    assert text.index("## OUTPUTS below") > text.index('name = "rack 6"')
