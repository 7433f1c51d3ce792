"""The setup wizard as a person uses it: a real pseudo-terminal, arrow keys, a hidden key."""

from __future__ import annotations

import stat
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
from helpers.terminal import attune_argv, finish, spawn_attune

pytestmark = pytest.mark.e2e

DOWN, UP, ENTER, CTRL_C = "\x1b[B", "\x1b[A", "\r", "\x03"
KEY = "sk-ant-test-0123456789"


def test_walking_the_wizard_saves_the_answers(attune_home: Path) -> None:
    child = spawn_attune("auth", "setup")
    screen = []
    child.expect("Which Claude subscription")
    child.send(DOWN)  # the default pro (as auth status shows it) → max
    child.send(ENTER)
    child.expect("How should attune send work")
    screen.append(child.before)
    child.send(UP)  # from the recommended auto up to api
    child.send(ENTER)
    child.expect("Store an API key")
    child.send(ENTER)  # the suggested provider: anthropic
    child.expect("API key for anthropic")
    child.send(KEY + ENTER)
    child.expect("Save to")
    screen.append(child.before)
    child.send("y")
    status, rest = finish(child)
    screen.append(rest)
    assert status == 0, "".join(screen)

    auth = tomllib.loads((attune_home / "config.toml").read_text())["auth"]
    assert auth["subscription_tier"] == "max"
    assert auth["default_mode"] == "api"
    assert auth["setup_completed"] is True
    credentials = attune_home / "credentials.toml"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert tomllib.loads(credentials.read_text()) == {"anthropic": {"api_key": KEY}}
    shown = "".join(screen)
    assert "Subscription, API or Auto" in shown  # the comparison came before the mode
    assert "sk-…6789" in shown
    assert KEY not in shown  # the hidden prompt never echoed it


def test_ctrl_c_midway_saves_nothing_and_exits_130(attune_home: Path) -> None:
    child = spawn_attune("auth", "setup")
    child.expect("Which Claude subscription")
    child.send(DOWN + ENTER)
    child.expect("How should attune send work")
    child.send(CTRL_C)
    status, rest = finish(child)
    assert status == 130
    assert "nothing was saved" in rest
    assert not (attune_home / "config.toml").exists()
    assert not (attune_home / "credentials.toml").exists()


def test_ctrl_c_at_the_hidden_key_prompt_saves_nothing(attune_home: Path) -> None:
    child = spawn_attune("auth", "setup", "--tier", "pro", "--mode", "api")
    child.expect("Store an API key")
    child.send(ENTER)
    child.expect("API key for anthropic")
    child.send("sk-half-typed")
    child.send(CTRL_C)
    status, _ = finish(child)
    assert status == 130
    assert not (attune_home / "config.toml").exists()
    assert not (attune_home / "credentials.toml").exists()


def test_setup_with_stdin_closed_exits_2_at_once_naming_the_flags(attune_home: Path) -> None:
    def timed(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
        started = time.monotonic()
        result = subprocess.run(
            [*attune_argv(), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return result, time.monotonic() - started

    # "At once" is measured against a usage error of the same command timed in the same test
    # (start-up, imports and exit at this moment's load), not a fixed wall time that a busy
    # machine exceeds; a setup that waited for input would take the whole 10 s.
    reference, reference_s = timed("auth", "setup", "--tier")
    assert reference.returncode == 2, reference.stderr
    result, elapsed_s = timed("auth", "setup")
    assert result.returncode == 2
    assert elapsed_s < 2 * reference_s + 1.0, (elapsed_s, reference_s)
    for flag in ("--tier", "--mode", "--yes"):
        assert flag in result.stderr
    assert not (attune_home / "config.toml").exists()


def test_login_asks_for_the_key_without_echoing_it(attune_home: Path) -> None:
    child = spawn_attune("auth", "login", "openai")
    child.expect("API key for openai")
    child.sendline("sk-proj-typed-in-4242")
    status, rest = finish(child)
    assert status == 0
    assert "sk-…4242" in rest
    assert "sk-proj-typed-in-4242" not in rest
    stored = tomllib.loads((attune_home / "credentials.toml").read_text())
    assert stored == {"openai": {"api_key": "sk-proj-typed-in-4242"}}


def test_ctrl_c_at_the_login_prompt_stores_nothing(attune_home: Path) -> None:
    child = spawn_attune("auth", "login", "anthropic")
    child.expect("API key for anthropic")
    child.send("sk-half")
    child.send(CTRL_C)
    status, rest = finish(child)
    assert status == 130
    assert "nothing was saved" in rest
    assert not (attune_home / "credentials.toml").exists()


def test_reset_asks_before_changing_anything(attune_home: Path) -> None:
    subprocess.run(
        [*attune_argv(), "auth", "setup", "--tier", "max", "--mode", "auto", "--yes"], check=True
    )
    child = spawn_attune("auth", "reset")
    child.expect(r"Remove the auth strategy")
    child.sendline("n")
    status, _ = finish(child)
    assert status == 1
    assert tomllib.loads((attune_home / "config.toml").read_text())["auth"]

    child = spawn_attune("auth", "reset")
    child.expect(r"Remove the auth strategy")
    child.sendline("y")
    status, _ = finish(child)
    assert status == 0
    assert tomllib.loads((attune_home / "config.toml").read_text())["auth"] == {}
