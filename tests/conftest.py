"""Fixtures shared by every test: an isolated ATTUNE_HOME and a clean environment."""

from __future__ import annotations

from pathlib import Path

import pytest

PROVIDER_ENV = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_BASE_URL",
    "ATTUNE_DEBUG",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
)


@pytest.fixture(autouse=True)
def attune_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs against its own empty attune home and no provider keys."""
    home = tmp_path / "attune-home"
    monkeypatch.setenv("ATTUNE_HOME", str(home))
    monkeypatch.setenv("ATTUNE_LEGACY_HOME", str(tmp_path / "legacy-attune"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "160")
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    return home
