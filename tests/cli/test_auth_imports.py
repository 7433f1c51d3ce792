"""`attune auth status` is on the startup budget: it must not pull in the heavy modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FORBIDDEN = ("httpx", "questionary", "prompt_toolkit", "tomlkit", "sqlite3", "_sqlite3", "pydantic")

PROBE = """
import json, sys
sys.argv = ["attune", *sys.argv[1:]]
from attune_cli.cli.app import main
try:
    main()
except SystemExit:
    pass
sys.stdout.flush()
print("\\n@@" + json.dumps(sorted(sys.modules)))
"""


def modules_after(*args: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=False
    )
    marker = result.stdout.rindex("@@")
    return set(json.loads(result.stdout[marker + 2 :]))


def heavy(loaded: set[str]) -> list[str]:
    return sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN)


def test_auth_status_imports_no_heavy_module(attune_home: Path) -> None:
    loaded = modules_after("auth", "status")
    assert heavy(loaded) == []
    assert "attune_cli.cli.auth_views" in loaded  # the table was really rendered


def test_auth_status_with_a_stored_key_imports_no_heavy_module(attune_home: Path) -> None:
    attune_home.mkdir(mode=0o700)
    credentials = attune_home / "credentials.toml"
    credentials.write_text('[anthropic]\napi_key = "sk-ant-test-0123456789"\n')
    credentials.chmod(0o600)
    (attune_home / "config.toml").write_text("[auth]\nsubscription_tier = 'max'\n")
    loaded = modules_after("auth", "status", "--json")
    assert heavy(loaded) == []


def test_auth_help_imports_no_heavy_module() -> None:
    assert heavy(modules_after("auth", "--help")) == []


ENTRY_PROBE = PROBE.replace(
    "from attune_cli.cli.app import main", "from attune_cli.cli.entry import main"
)


def test_the_console_script_answers_auth_status_without_typer(attune_home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", ENTRY_PROBE, "auth", "status"],
        capture_output=True,
        text=True,
        check=False,
    )
    loaded = set(json.loads(result.stdout[result.stdout.rindex("@@") + 2 :]))
    assert "attune_cli.cli.auth_views" in loaded
    assert "typer" not in loaded
    assert heavy(loaded) == []
