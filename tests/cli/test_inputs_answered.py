"""Every input answered: impossible figures, contradictory flags, impossible times, empty files."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attune_cli.cli.app import app
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

runner = CliRunner()
RECORD = ["telemetry", "record", "-w", "ci", "-s", "triage", "-m", "gpt-5-mini"]


def stored(home: Path) -> int:
    db = home / "telemetry.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--success", "--latency-ms", "inf"], "--latency-ms"),
        (["--success", "--latency-ms", "nan"], "--latency-ms"),
        (["--success", "--cost", "inf"], "--cost"),
        (["--success", "--input-tokens", str(2**63)], "--input-tokens"),
        (["--success", "--output-tokens", str(2**70)], "--output-tokens"),
    ],
)
def test_impossible_figures_are_refused(flags: list[str], named: str, attune_home: Path) -> None:
    result = runner.invoke(app, [*RECORD, *flags])

    assert result.exit_code == 2, result.output
    assert named in result.stderr
    assert stored(attune_home) == 0


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--success", "--failure"], "--success and --failure"),
        (["--failure", "--success"], "--success and --failure"),
        (["--success", "--status", "500"], "--status 500"),
        (["--success", "--error-kind", "timeout"], "--error-kind timeout"),
    ],
)
def test_contradictory_outcomes_are_refused_naming_the_conflict(
    flags: list[str], named: str, attune_home: Path
) -> None:
    result = runner.invoke(app, [*RECORD, *flags])

    assert result.exit_code == 2, result.output
    assert named in result.stderr
    assert stored(attune_home) == 0


def test_a_success_with_status_200_and_a_failure_with_500_are_fine(attune_home: Path) -> None:
    assert runner.invoke(app, [*RECORD, "--success", "--status", "200"]).exit_code == 0
    assert runner.invoke(app, [*RECORD, "--failure", "--status", "500"]).exit_code == 0
    assert stored(attune_home) == 2


def test_a_store_holding_infinity_still_exports_standard_json(attune_home: Path) -> None:
    with TelemetryStore(attune_home / "telemetry.db") as store:
        store.record(
            CallRecord(workflow="w", stage="s", model="m", success=True, latency_ms=float("inf"))
        )

    shown = runner.invoke(app, ["telemetry", "show", "--json"])
    exported = runner.invoke(app, ["telemetry", "export"])

    for text in (shown.stdout, exported.stdout):
        assert "Infinity" not in text and "NaN" not in text
    assert json.loads(exported.stdout.splitlines()[0])["latency_ms"] is None
    again = attune_home.parent / "again.jsonl"
    again.write_text(exported.stdout)
    assert runner.invoke(app, ["telemetry", "import", str(again), "--dry-run"]).exit_code == 0


def line(ts: str) -> str:
    return json.dumps({"ts": ts, "workflow": "w", "stage": "s", "model": "m", "success": True})


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        ("9999-12-31T00:00:00Z", "in the future"),
        ("2999-01-01T00:00:00Z", "in the future"),
        ("1999-12-31T23:59:59Z", "before 2000"),
        ("1970-01-01T00:00:00Z", "before 2000"),
    ],
)
def test_impossible_times_in_an_import_are_bad_lines(
    ts: str, reason: str, attune_home: Path
) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    source = attune_home.parent / "calls.jsonl"
    source.write_text(line(now) + "\n" + line(ts) + "\n")

    result = runner.invoke(app, ["telemetry", "import", str(source), "--json"])

    assert result.exit_code == 2
    errors = json.loads(result.stdout)["errors"]
    assert errors[0]["line"] == 2 and reason in errors[0]["reason"]
    assert stored(attune_home) == 0


@pytest.mark.parametrize("content", ["", "\n\n   \n"])
def test_an_empty_import_file_exits_2_and_prints_nothing_on_stdout(
    content: str, attune_home: Path
) -> None:
    source = attune_home.parent / "empty.jsonl"
    source.write_text(content)

    result = runner.invoke(app, ["telemetry", "import", str(source)])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "nothing to import" in result.stderr
