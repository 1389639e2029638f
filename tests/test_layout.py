"""The distribution finds every package, and every plugin folder documents itself."""

from __future__ import annotations

import sys

from project import ROOT

ROOTS = {"agent": "webbo.agent", "plugins": "webbo.plugins", "web": "webbo.web"}


def test_every_code_folder_is_a_package_the_build_finds():
    """The build backend finds packages by their ``__init__.py``: a folder of modules without
    one would be left out of the wheel while an editable install still imported it."""
    sys.path.insert(0, str(ROOT / "contrib" / "build"))
    try:
        from webbo_build import packages
    finally:
        sys.path.pop(0)
    found = set(packages(ROOT))
    for folder, name in ROOTS.items():
        for module in (ROOT / folder).rglob("*.py"):
            rel = module.parent.relative_to(ROOT / folder)
            if "__pycache__" in rel.parts or any(p.startswith(".") for p in rel.parts):
                continue
            package = ".".join([name, *rel.parts])
            assert package in found, f"{module.parent} holds modules but no __init__.py"


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
