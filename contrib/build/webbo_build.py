"""The PEP 517 build backend of the ``webbo`` distribution: setuptools, with the packages found.

The three code folders of the repository root (``agent/``, ``plugins/``, ``web/``) are installed
as ``webbo.agent``, ``webbo.plugins`` and ``webbo.web``. setuptools can map a folder to a
prefixed package name (``package-dir``), but its package finder cannot add the prefix, so the
package list would have to be kept by hand, and a forgotten subpackage would be missing from
the wheel (an editable install hides that). This backend finds every folder with an
``__init__.py`` under the three roots and hands setuptools the prefixed names; everything else
(metadata, entry points, package data) comes from pyproject.toml as usual.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import build_meta as _meta

ROOTS = ("agent", "plugins", "web")
"""The repository's code folders; each is installed as ``webbo.<folder>``."""


def packages(top: Path = Path()) -> list[str]:
    """``webbo.agent``, ``webbo.agent.core``, ...: every package folder under the roots."""
    found = []
    for root in ROOTS:
        for init in sorted((top / root).rglob("__init__.py")):
            found.append(".".join(["webbo", *init.parent.relative_to(top).parts]))
    return found


class _Backend(_meta._BuildMetaBackend):
    def run_setup(self, setup_script: str = "setup.py") -> None:
        from setuptools import setup

        setup(packages=packages(), package_dir={f"webbo.{root}": root for root in ROOTS})


_BACKEND = _Backend()
get_requires_for_build_wheel = _BACKEND.get_requires_for_build_wheel
get_requires_for_build_sdist = _BACKEND.get_requires_for_build_sdist
get_requires_for_build_editable = _BACKEND.get_requires_for_build_editable
prepare_metadata_for_build_wheel = _BACKEND.prepare_metadata_for_build_wheel
prepare_metadata_for_build_editable = _BACKEND.prepare_metadata_for_build_editable
build_wheel = _BACKEND.build_wheel
build_sdist = _BACKEND.build_sdist
build_editable = _BACKEND.build_editable
