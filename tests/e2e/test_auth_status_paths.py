"""`auth status` answers through the console script without typer; the typer command gives the
same output, the same errors and the same exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("attune")


def both_paths(*args: str) -> tuple[subprocess.CompletedProcess[str], ...]:
    """The console script (fast path) and ``python -m attune_cli`` (typer app)."""
    runs = []
    for argv in ([str(SCRIPT)], [sys.executable, "-m", "attune_cli"]):
        runs.append(
            subprocess.run([*argv, *args], capture_output=True, text=True, timeout=30, check=False)
        )
    return tuple(runs)


pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not SCRIPT.exists(), reason="not installed")]


@pytest.mark.parametrize("args", [("auth", "status"), ("auth", "status", "--json")])
def test_fresh_home_same_output(args: tuple[str, ...]) -> None:
    fast, full = both_paths(*args)
    assert fast.returncode == full.returncode == 0
    assert fast.stdout == full.stdout
    assert fast.stderr == full.stderr


def test_a_set_up_home_with_a_key_same_output(attune_home: Path) -> None:
    subprocess.run(
        [str(SCRIPT), "auth", "setup", "--tier", "max", "--mode", "auto", "--yes"], check=True
    )
    subprocess.run(
        [str(SCRIPT), "auth", "login", "anthropic", "--with-key-stdin"],
        input="sk-ant-test-0123456789",
        text=True,
        check=True,
    )
    fast, full = both_paths("auth", "status")
    assert fast.stdout == full.stdout
    assert "sk-…6789" in fast.stdout


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("[auth\n", "invalid TOML"),
        ("[auth]\nsubscription_tier = 'gold'\n", "auth.subscription_tier"),
    ],
)
def test_errors_are_the_same_on_both_paths(attune_home: Path, config: str, expected: str) -> None:
    attune_home.mkdir()
    (attune_home / "config.toml").write_text(config)
    for args in (("auth", "status"), ("auth", "status", "--json")):
        fast, full = both_paths(*args)
        assert fast.returncode == full.returncode == 2
        assert fast.stderr == full.stderr
        assert expected in fast.stderr
        assert fast.stdout == full.stdout == ""


def test_a_loose_credentials_file_is_refused_on_both_paths(attune_home: Path) -> None:
    attune_home.mkdir(mode=0o700)
    credentials = attune_home / "credentials.toml"
    credentials.write_text('[openai]\napi_key = "sk-proj-0000aaaa1111"\n')
    credentials.chmod(0o644)
    fast, full = both_paths("auth", "status")
    assert fast.returncode == full.returncode == 2
    assert fast.stderr == full.stderr
    assert f"chmod 600 {credentials}" in fast.stderr


def test_anything_else_goes_through_typer() -> None:
    fast, full = both_paths("auth", "status", "--jsn")
    assert fast.returncode == full.returncode == 2
    assert "--jsn" in fast.stderr
    help_fast, _ = both_paths("auth", "status", "--help")
    assert help_fast.returncode == 0
    assert "Usage: attune auth status [OPTIONS]" in help_fast.stdout
