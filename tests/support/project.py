"""Where things are: the repository root and the test fixtures."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository (pyproject.toml, webbo.toml, agent/, plugins/, web/, contrib/, docs/)."""
TESTS = ROOT / "tests"
FIXTURES = TESTS / "fixtures"
ARTIFACTS = ROOT / "test-artifacts"
