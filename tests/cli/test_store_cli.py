"""`attune store status|verify` as a person or a script runs them."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from typer.testing import CliRunner

from attune_cli.cli.app import app
from attune_cli.core.telemetry import db
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

runner = CliRunner()


def seed(home: Path, n: int) -> None:
    now = time.time()
    with TelemetryStore(home / "telemetry.db") as store:
        store.record_many(
            CallRecord(
                workflow="ci",
                stage="triage",
                model="gpt-5-mini",
                success=True,
                ts=now - 7200 + i * 60,
                latency_ms=300.0,
            )
            for i in range(n)
        )


def test_status_names_the_backend_rows_and_rollup_hours(attune_home: Path) -> None:
    empty = runner.invoke(app, ["store", "status", "--json"])
    assert empty.exit_code == 0, empty.output
    assert json.loads(empty.stdout)["exists"] is False
    assert not (attune_home / "telemetry.db").exists()  # status never creates the store
    seed(attune_home, 100)
    result = runner.invoke(app, ["store", "status", "--json"])
    status = json.loads(result.stdout)
    assert status["backend"] == "sqlite"
    assert status["location"] == str(attune_home / "telemetry.db")
    assert status["schema_version"] == db.SCHEMA_VERSION
    assert status["rows"] == 100
    assert status["rollup_hours"] in (2, 3)
    assert status["spooled_rows"] == 0
    shown = runner.invoke(app, ["store", "status"])
    assert "Rollup hours" in shown.stdout and "sqlite" in shown.stdout


def test_status_masks_a_team_store_password(attune_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("ATTUNE_STORE_URL", "postgresql://team:hunter2@db.example/attune")
    result = runner.invoke(app, ["store", "status", "--json"])
    assert "hunter2" not in result.output


def test_verify_passes_then_exits_1_naming_a_corrupted_rollup(attune_home: Path) -> None:
    seed(attune_home, 100)
    ok = runner.invoke(app, ["store", "verify"])
    assert ok.exit_code == 0, ok.output
    assert "No differences: " in ok.output and "hourly rollups checked" in ok.output
    conn = sqlite3.connect(attune_home / "telemetry.db")
    conn.execute("UPDATE rollups SET successes = successes - 1")
    conn.commit()
    conn.close()
    bad = runner.invoke(app, ["store", "verify", "--json"])
    assert bad.exit_code == 1
    report = json.loads(bad.stdout)
    assert report["ok"] is False
    assert report["differences"][0]["table"] == "rollups"
    assert report["differences"][0]["key"][:3] == ["ci", "triage", "gpt-5-mini"]


def test_verify_names_a_spend_table_that_left_its_rollups(attune_home: Path) -> None:
    seed(attune_home, 100)
    ok = runner.invoke(app, ["store", "verify", "--json"])
    assert ok.exit_code == 0, ok.output
    clean = json.loads(ok.stdout)
    assert clean["ok"] is True and clean["spend_rows"] > 0
    conn = sqlite3.connect(attune_home / "telemetry.db")
    hours = conn.execute("SELECT COUNT(*) FROM spend_hours").fetchone()[0]
    conn.execute("UPDATE spend_hours SET calls = calls + 3")
    conn.commit()
    conn.close()
    bad = runner.invoke(app, ["store", "verify"])
    assert bad.exit_code == 1
    assert f"{hours:,} differences (" in bad.stderr
    assert "spend_hours" in bad.stdout and "the rollups give" in bad.stdout
    report = json.loads(runner.invoke(app, ["store", "verify", "--json"]).stdout)
    assert {d["table"] for d in report["differences"]} == {"spend_hours"}
    assert report["total_differences"] == hours > 0  # every row of that table, nothing else
    first = report["differences"][0]
    assert first["stored"][0] == first["expected"][0] + 3
