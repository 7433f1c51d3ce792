"""`attune --help` and `attune auth status` must stay cheap: they import no heavy module."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FORBIDDEN = (
    "httpx",
    "questionary",
    "tomlkit",
    "sqlite3",
    "_sqlite3",
    "prompt_toolkit",
    "pydantic",
    # typer's help renderer would pull these in through rich.markdown and rich.traceback.
    "markdown_it",
    "pygments",
)

PROBE = """
import json, sys
sys.argv = ["attune", *sys.argv[1:]]
from attune_cli.cli.{entry} import main
try:
    main()
except SystemExit:
    pass
sys.stdout.flush()
print("\\n@@" + json.dumps(sorted(k for k, v in sys.modules.items() if v is not None)))
"""


def _modules_after(*args: str, entry: str = "app") -> set[str]:
    """The modules loaded once ``attune ARGS`` ran through ``attune_cli.cli.<entry>.main``."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(entry=entry), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    marker = result.stdout.rindex("@@")
    return set(json.loads(result.stdout[marker + 2 :]))


def _heavy(loaded: set[str]) -> list[str]:
    return sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN)


@pytest.mark.e2e
def test_root_help_imports_no_heavy_module() -> None:
    assert _heavy(_modules_after("--help")) == []


@pytest.mark.e2e
def test_version_imports_no_heavy_module() -> None:
    loaded = _modules_after("--version")
    assert _heavy(loaded) == []
    assert "attune_cli.cli.app" in loaded


@pytest.mark.e2e
def test_auth_status_imports_no_heavy_module(attune_home: Path) -> None:
    loaded = _modules_after("auth", "status")
    assert _heavy(loaded) == []
    assert "attune_cli.cli.auth_views" in loaded  # the table was really rendered


@pytest.mark.e2e
def test_auth_status_with_a_stored_key_imports_no_heavy_module(attune_home: Path) -> None:
    attune_home.mkdir(mode=0o700)
    credentials = attune_home / "credentials.toml"
    credentials.write_text('[anthropic]\napi_key = "sk-ant-test-0123456789"\n')
    credentials.chmod(0o600)
    (attune_home / "config.toml").write_text("[auth]\nsubscription_tier = 'max'\n")
    loaded = _modules_after("auth", "status", "--json")
    assert _heavy(loaded) == []


@pytest.mark.e2e
def test_auth_help_imports_no_heavy_module() -> None:
    assert _heavy(_modules_after("auth", "--help")) == []


@pytest.mark.e2e
def test_the_console_script_answers_auth_status_without_typer(attune_home: Path) -> None:
    loaded = _modules_after("auth", "status", entry="entry")
    assert "attune_cli.cli.auth_views" in loaded
    assert "typer" not in loaded
    assert _heavy(loaded) == []


@pytest.mark.e2e
def test_a_run_that_names_its_command_builds_only_that_commands_tree(attune_home: Path) -> None:
    loaded = _modules_after("route", "explain", "triage", "-w", "ci")
    assert "attune_cli.cli.route" in loaded
    others = {f"attune_cli.cli.{name}" for name in ("ask", "auth", "serve", "spend", "telemetry")}
    assert loaded & others == set()
    # It opened the store (through the team-store seam), but not the gateway's writer thread.
    assert "attune_cli.core.telemetry.team" in loaded
    assert "attune_cli.core.telemetry.writer" not in loaded


@pytest.mark.parametrize(
    "args",
    [
        ["route", "explain", "--help"],
        ["budget", "--help"],
        ["spend", "--help"],
        ["telemetry", "record", "--help"],
        ["ask", "--no-such-flag"],
    ],
)
def test_the_tree_of_one_command_answers_as_the_whole_tree_does(args: list[str]) -> None:
    from typer.testing import CliRunner

    from attune_cli.cli.app import build_app

    runner = CliRunner()
    whole = runner.invoke(build_app(), args, prog_name="attune")
    alone = runner.invoke(build_app(args[0]), args, prog_name="attune")
    assert (alone.exit_code, alone.output) == (whole.exit_code, whole.output)
    assert whole.output.strip()


@pytest.mark.e2e
def test_ask_loads_httpx_without_its_command_line_client(
    attune_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens on port 9: the call fails at once, after httpx was imported and used.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    loaded = _modules_after("ask", "hi", "-m", "gpt-5-mini", "--json", entry="entry")
    assert "httpx" in loaded
    assert sorted(m for m in loaded if m.split(".")[0] == "pygments" or m == "rich.syntax") == []


@pytest.mark.parametrize(
    "args", [["route", "explain", "analysis", "-w", "review"], ["telemetry", "models"]]
)
def test_reading_a_postgresql_store_loads_no_breaker(
    args: list[str], attune_home: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commands that only read calls from the team store leave the breakers unloaded."""
    monkeypatch.setenv("ATTUNE_STORE_URL", pg_url)
    loaded = _modules_after(*args, entry="entry")
    assert "attune_cli.core.telemetry.postgres" in loaded  # the team store was really read
    assert "psycopg" in loaded
    assert sorted(m for m in loaded if m.startswith("attune_cli.core.breaker")) == []
