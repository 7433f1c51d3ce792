"""`--help` at 80 columns: every example stays on one line so it copies, no stray spaces."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from attune_cli.cli import console as console_module
from attune_cli.cli.app import app

runner = CliRunner()


def commands() -> list[tuple[list[str], Any]]:
    root = typer.main.get_command(app)
    found: list[tuple[list[str], Any]] = []

    def walk(path: list[str], command: Any) -> None:
        found.append((path, command))
        # typer 0.28 vendors click: a group is anything with sub-commands.
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                if not sub.hidden:
                    walk([*path, name], sub)

    walk([], root)
    return found


def example_lines(help_text: str) -> list[str]:
    """The command lines a person copies: each line of an example, continuations included."""
    lines: list[str] = []
    continued = False
    for raw in help_text.splitlines():
        line = raw.strip()
        line = re.sub(r"^Examples?:\s*", "", line)
        if continued or line.startswith("attune ") or "| attune " in line:
            lines.append(line)
            continued = line.endswith("\\")
    return lines


COMMANDS = commands()


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "attune" for p, _ in COMMANDS]
)
def test_every_example_is_on_one_line_at_80_columns(
    path: list[str], command: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    console_module.out.cache_clear()
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    shown = [re.sub(r"^Examples?:\s*", "", line.strip()) for line in result.stdout.splitlines()]
    for example in example_lines(command.help or ""):
        assert example in shown, f"{example!r} is wrapped in `{' '.join(path)} --help`"


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "attune" for p, _ in COMMANDS]
)
def test_no_stray_space_before_punctuation(
    path: list[str], command: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = runner.invoke(app, [*path, "--help"])
    text = re.sub(r"[│╭╮╰╯─]", " ", result.stdout)
    assert not re.search(r"\S \)", text), f"a space before ')' in `{' '.join(path)} --help`"
    assert not re.search(r"\( \S", text), f"a space after '(' in `{' '.join(path)} --help`"


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "attune" for p, _ in COMMANDS]
)
def test_config_sections_named_in_help_are_shown(
    path: list[str], command: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    result = runner.invoke(app, [*path, "--help"])
    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    for text in texts:
        for section in re.findall(r"\[[a-z_.]+\]", text):
            assert section in result.stdout, f"{section} vanished from `{' '.join(path)} --help`"


def test_prose_is_reflowed_not_orphaned_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = runner.invoke(app, ["demo", "--help"])
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert "APIs (one" not in lines and "through the" not in lines
    assert any(line.startswith("APIs (one model healthy") for line in lines)
