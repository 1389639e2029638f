"""The example Avalon driver's poll, parsing only: CPU per miner per poll of the code that
docs/plugins.md ships (``webbo_avalon.reading_of``), beside the generic cgminer driver on the
same device. Prints figures; asserts nothing.

    .venv/bin/python bench/avalon.py [--polls 20000]

The replies are a simulated AvalonMiner 1246's (``summary+pools+devs+estats`` joined, as the
driver asks them; about 4 KB with the ``MM ID0`` string), decoded and parsed in this process.
No sockets: the exchange itself costs what any 4028 poll costs (bench/poll.py).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))

from doc_files import write_files

from webbo.plugins.common.rpc4028 import client as rpc
from webbo.plugins.common.rpc4028.parse import reading_from
from webbo.plugins.inputs.cgminer.sim.device import GenericCgminer

PAGE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def per_poll_us(work, polls: int) -> float:
    started = time.process_time()
    for _ in range(polls):
        work()
    return (time.process_time() - started) / polls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        write_files(PAGE.read_text(encoding="utf-8"), Path(folder))
        sys.path.insert(0, folder)
        avalon = importlib.import_module("webbo_avalon")
    device = GenericCgminer("127.0.0.2", "avalon", seed=1)
    device.started -= 3600
    raw = device.answer(b'{"command":"summary+pools+devs+estats"}')
    generic_raw = device.answer(b'{"command":"summary+pools+devs"}')
    commands = ["summary", "pools", "devs", "estats"]

    def split(data: bytes, wanted: list[str]) -> dict:
        reply = rpc.decode(data)
        return {c: reply[c][0] for c in wanted}

    parts = split(raw, commands)
    print(f"reply: {len(raw)} bytes joined ({len(generic_raw)} without estats)")
    rows = [
        ("decode (4 commands, with the nonfinite repair)", lambda: rpc.decode(raw)),
        ("webbo_avalon.reading_of", lambda: avalon.reading_of(parts)),
        ("decode + reading_of (one Avalon poll)",
         lambda: avalon.reading_of(split(raw, commands))),
        ("generic cgminer: decode + reading_from (3 commands)",
         lambda: reading_from(split(generic_raw, commands[:3]))),
    ]
    for label, work in rows:
        print(f"{label:<52} {per_poll_us(work, args.polls):8.1f} µs CPU per poll")


if __name__ == "__main__":
    main()
