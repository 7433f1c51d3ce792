"""llm's logs.db as the real llm writes it: the current schema (``turns``, llm 0.36 and later),
the older one (``responses``), and an upgraded file that holds both.

The databases are made by the real ``llm`` CLI (a test dependency, its click command run in
this process) offline with its ``llm-echo`` plugin, with ``LLM_USER_PATH`` in a temporary
folder, as a user's file is made.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from attune_cli.core.errors import InputFileError
from attune_cli.core.registry import load_registry
from attune_cli.core.telemetry.importers import ImportOptions, import_calls
from attune_cli.core.telemetry.sqlite import TelemetryStore

pytest.importorskip("llm", reason="llm is a test dependency: pip install -e '.[test]'")
pytest.importorskip("llm_echo", reason="llm-echo is a test dependency")

REGISTRY = load_registry({}, Path("config.toml"))


def llm(user_path: Path, *args: str) -> str:
    """Run ``llm ARGS`` (its own click command) with its files in ``user_path``; its output."""
    from click.testing import CliRunner
    from llm.cli import cli

    env: dict[str, str | None] = {k: None for k in os.environ if k.endswith("_API_KEY")}
    env["LLM_USER_PATH"] = str(user_path)
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def logs_db(tmp_path: Path, prompts: int) -> Path:
    user_path = tmp_path / "llm"
    user_path.mkdir()
    for i in range(prompts):
        llm(user_path, "-m", "echo", f"prompt number {i}")
    path = Path(llm(user_path, "logs", "path").strip())
    if prompts == 0:
        # What llm does before logging its first call: create the file and migrate it.
        import sqlite_utils
        from llm.migrations import migrate

        migrate(sqlite_utils.Database(path))
    assert path.exists()
    return path


def imported(tmp_path: Path, path: Path) -> tuple[int, list[tuple[object, ...]]]:
    with TelemetryStore(tmp_path / "attune.db") as store:
        result = import_calls(
            store,
            ImportOptions(path=path, workflow="notes", stage="draft"),
            registry=REGISTRY,
        )
        rows = store.conn.execute(
            "SELECT model, workflow, stage, source, latency_ms FROM calls ORDER BY ts"
        ).fetchall()
    return result.imported, rows


def test_the_current_llm_schema_is_read(tmp_path: Path) -> None:
    path = logs_db(tmp_path, prompts=3)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 3

    count, rows = imported(tmp_path, path)

    assert count == 3
    assert {row[:4] for row in rows} == {("echo", "notes", "draft", "llm-db")}


def test_an_upgraded_file_imports_its_older_responses_and_its_turns_once(
    tmp_path: Path,
) -> None:
    path = logs_db(tmp_path, prompts=2)
    with sqlite3.connect(path) as conn:
        # A call logged by an llm before 0.36 stays in `responses` after the upgrade.
        conn.execute(
            "INSERT INTO responses (id, model, prompt, response, duration_ms, datetime_utc, "
            "input_tokens, output_tokens) VALUES ('01legacy', 'gpt-4o-mini', 'PROMPT', "
            "'ANSWER', 1234, '2026-01-02T03:04:05.600000', 100, 20)"
        )

    count, rows = imported(tmp_path, path)
    again, _ = imported(tmp_path, path)

    assert count == 3 and again == 0
    assert ("gpt-4o-mini", "notes", "draft", "llm-db", 1234.0) in rows


def test_a_file_with_no_logged_calls_says_which_tables_were_empty(tmp_path: Path) -> None:
    path = logs_db(tmp_path, prompts=0)

    with pytest.raises(InputFileError, match=r"`turns` and `responses` are empty"):
        imported(tmp_path, path)


def test_a_file_without_either_table_names_both(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE notes (x)").connection.close()

    with pytest.raises(InputFileError) as caught:
        imported(tmp_path, path)

    assert "`turns` (llm 0.36 and later)" in caught.value.message
    assert "`responses` (llm before 0.36)" in caught.value.message


@pytest.mark.e2e
def test_the_cli_imports_a_real_logs_db(tmp_path: Path, attune_home: Path) -> None:
    path = logs_db(tmp_path, prompts=2)

    result = subprocess.run(
        [sys.executable, "-m", "attune_cli", "telemetry", "import", str(path), "--json"],
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["format"], document["imported"]) == ("llm-db", 2)
