"""Building and installing wheels as a user would: ``uv build`` and a fresh venv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from project import ROOT

_built: dict[str, Path] = {}


def uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if not os.access(found, os.X_OK):
        pytest.fail("uv is not installed; the README's test command installs it")
    return found


def run(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    """A command with the tests' own XDG_STATE_HOME (or ``state_home``), output captured."""
    env = {**os.environ, "XDG_STATE_HOME": kw.pop("state_home", os.environ["XDG_STATE_HOME"])}
    return subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=600, **kw)


def build_webbo_wheel(out_dir: Path) -> Path:
    """The webbo wheel of this checkout, built once per test session (the first caller's
    ``out_dir`` keeps it)."""
    wheel = _built.get("webbo")
    if wheel is None or not wheel.exists():
        built = run(uv(), "build", "--wheel", "--out-dir", str(out_dir), str(ROOT))
        assert built.returncode == 0, built.stderr[-3000:]
        wheel = _built["webbo"] = next(out_dir.glob("webbo-*.whl"))
    return wheel
