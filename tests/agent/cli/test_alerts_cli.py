"""``webbo alerts``: a silence made from the shell reaches the running engine through the
silences file; ``list`` reads the saved state; ``webbo status`` shows the alerts line."""

from __future__ import annotations

import json
import time
from pathlib import Path

from webbo.agent.alerts.engine import AlertEngine
from webbo.agent.cli.main import build_parser
from webbo.agent.cli.status import render
from webbo.agent.core.agent import Agent
from webbo.agent.core.config import load_config
from webbo.agent.fleet.inventory import Device
from webbo.agent.fleet.model import Reading


def main(argv: list[str]) -> int:
    """The command as `webbo` runs it, minus the logging setup (which would keep pointing at
    this test's captured output after it ends)."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


def test_cli_silence_reaches_the_engine_and_list_reads_the_state(tmp_path: Path, registry,
                                                                  capsys):
    path = tmp_path / "webbo.toml"
    path.write_text(f'[web]\nstate_dir = "{tmp_path}/state"\n[alerts]\n[[alerts.rules]]\n'
                    'name = "hot"\ncondition = "temp_chip_high"\n', encoding="utf-8")
    agent = Agent(registry, load_config(path, registry))
    engine = agent.service(AlertEngine)
    engine.configure(agent.config)
    device = Device(mac="02:00:00:00:00:01", ip="127.9.0.1", driver="cgminer", make="Antminer",
                    model="S19", state="ok", last_seen=time.time(),
                    reading=Reading(time_ns=time.time_ns(), temp_chip_max_c=99.0))
    agent.services["miners"].inventory.by_mac[device.mac] = device

    assert main(["alerts", "silence", "-c", str(path), "--mac", device.mac.upper(),
                 "--for", "1h", "--comment", "fan swap"]) == 0
    silence_id = capsys.readouterr().out.split()[1]
    engine.evaluate()
    [alert] = engine.alerts("firing")
    assert alert.silenced_by == silence_id and not alert.notified

    assert main(["alerts", "list", "-c", str(path), "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["rule"], listed["key"], listed["silenced_by"]) == ("hot", device.mac,
                                                                      silence_id)
    assert main(["alerts", "unsilence", "-c", str(path), silence_id]) == 0
    engine.evaluate()
    assert alert.silenced_by == "" and alert.notified
    assert main(["alerts", "unsilence", "-c", str(path), "nope"]) == 1
    assert main(["alerts", "silence", "-c", str(path), "--for", "1h"]) == 2

    text, _ = render({"written_at": time.time(), "pid": 1, **agent.status()}, tmp_path)
    assert "alerts: 1 firing (0 silenced), 0 pending; 1 rules" in text
