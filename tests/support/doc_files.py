"""Files written out in a Markdown page: a line ``File: PATH``, then a fenced code block with
the file's whole text (how docs/plugins.md carries its complete example plugin)."""

from __future__ import annotations

import re
from pathlib import Path

_FILE = re.compile(r"^File: (?P<path>\S+)[ \t]*\n(?:[ \t]*\n)*```[\w+-]*\n(?P<text>.*?)^```[ \t]*$",
                   re.MULTILINE | re.DOTALL)


def files_in(markdown: str) -> dict[str, str]:
    """{relative path: text} of every marked block, in the page's order."""
    found: dict[str, str] = {}
    for match in _FILE.finditer(markdown):
        path = match["path"]
        if path in found:
            raise ValueError(f"{path} is written out twice")
        found[path] = match["text"]
    return found


def write_files(markdown: str, folder: Path) -> dict[str, Path]:
    """Write the marked files under ``folder``; returns {relative path: written path}."""
    written = {}
    for rel, text in files_in(markdown).items():
        target = (folder / rel).resolve()
        if folder.resolve() not in target.parents:
            raise ValueError(f"{rel} leaves the project folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written[rel] = target
    return written
