"""The composition root: the ``webbo`` command and what it puts together (run, test, once, scan,
simulate, demo, status, keys and users). The only code that imports :mod:`webbo.web`."""

from __future__ import annotations

from webbo.agent.cli.main import main

__all__ = ["main"]
