"""The distribution lists every package, and every plugin folder documents itself."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROOTS = {"agent": "webbo.agent", "plugins": "webbo.plugins", "web": "webbo.web"}


def test_every_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"])
    found = set()
    for folder, name in ROOTS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]) if rel.parts else name)
    assert found == listed, {"missing": found - listed, "extra": listed - found}


def test_every_plugin_folder_has_readme_and_sample():
    for kind in ("inputs", "outputs"):
        for folder in (ROOT / "plugins" / kind).iterdir():
            if folder.is_dir() and (folder / "__init__.py").exists():
                assert (folder / "README.md").exists(), folder
                assert (folder / "sample.toml").exists(), folder


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash contrib/dev/test.sh" in readme
    assert "contrib/dev/test.sh" in ci
