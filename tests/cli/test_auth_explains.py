"""The auth strategy says what it does, refuses what contradicts itself and keeps a stored key."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attune_cli.cli.app import app

runner = CliRunner()


def test_contradictory_flags_are_refused_with_the_reason(attune_home: Path) -> None:
    result = runner.invoke(
        app, ["auth", "setup", "--tier", "api_only", "--mode", "subscription", "--yes"]
    )

    assert result.exit_code == 2
    assert "--tier api_only has no subscription to spend" in result.stderr
    assert "--mode api" in result.stderr
    assert not (attune_home / "config.toml").exists()


@pytest.mark.parametrize("mode", ["api", "auto"])
def test_api_only_with_api_or_auto_is_fine(mode: str, attune_home: Path) -> None:
    result = runner.invoke(app, ["auth", "setup", "--tier", "api_only", "--mode", mode, "--yes"])

    assert result.exit_code == 0, result.stderr


def test_cost_optimization_is_no_longer_written(attune_home: Path) -> None:
    runner.invoke(app, ["auth", "setup", "--tier", "max", "--mode", "auto", "--yes"])

    auth = tomllib.loads((attune_home / "config.toml").read_text())["auth"]

    assert "cost_optimization" not in auth


def test_a_second_login_without_a_terminal_needs_force(attune_home: Path) -> None:
    first = runner.invoke(
        app, ["auth", "login", "openai", "--with-key-stdin"], input="sk-proj-first-1111"
    )
    second = runner.invoke(
        app, ["auth", "login", "openai", "--with-key-stdin"], input="sk-proj-second-2222"
    )
    forced = runner.invoke(
        app, ["auth", "login", "openai", "--with-key-stdin", "--force"], input="sk-proj-third-3333"
    )

    assert first.exit_code == 0
    assert second.exit_code == 2 and "--force" in second.stderr
    assert forced.exit_code == 0
    assert "sk-proj-third-3333" in (attune_home / "credentials.toml").read_text()


def test_auth_status_says_which_commands_the_mode_changes() -> None:
    shown = runner.invoke(app, ["auth", "status"])
    document = json.loads(runner.invoke(app, ["auth", "status", "--json"]).stdout)

    text = " ".join(shown.stdout.replace("│", " ").split())
    assert "every `attune ask` (and `attune serve`) call" in text
    assert "through Claude Code (`claude -p`, on your plan)" in text
    assert document["mode_applies_to"] == ["ask", "serve", "auth recommend"]
