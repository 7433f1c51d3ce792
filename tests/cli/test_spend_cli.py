"""`attune spend` as a person or a script runs it: rows, JSON, CSV, the chart, bad flags."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attune_cli.cli.app import app
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

runner = CliRunner()
HOUR = 3600.0
DAY = 86_400.0
MIDNIGHT = 1_799_971_200.0  # 2027-01-15 00:00 UTC
NOW = MIDNIGHT + 10 * HOUR


@pytest.fixture
def history(attune_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ATTUNE_NOW", str(NOW))
    attune_home.mkdir(parents=True, exist_ok=True)
    (attune_home / "config.toml").write_text('[budgets]\ntimezone = "UTC"\n')
    with TelemetryStore(attune_home / "telemetry.db") as store:
        store.record_many(
            [
                CallRecord(
                    "code-review",
                    "analysis",
                    "claude-haiku-4-5",
                    True,
                    ts=MIDNIGHT - 2 * DAY + HOUR,
                    cost_usd=0.5,
                ),
                CallRecord(
                    "=evil", "analysis", "claude-haiku-4-5", True, ts=MIDNIGHT + HOUR, cost_usd=1.5
                ),
            ]
        )
    return attune_home


def test_json_has_every_day_of_the_window(history: Path) -> None:
    result = runner.invoke(app, ["spend", "--days", "4", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["by"] == "day" and document["timezone"] == "UTC"
    assert document["since"] == "2027-01-12T00:00:00+00:00"
    assert [(r["key"], r["calls"], r["cost_usd"]) for r in document["rows"]] == [
        ("2027-01-12", 0, 0.0),
        ("2027-01-13", 1, 0.5),
        ("2027-01-14", 0, 0.0),
        ("2027-01-15", 1, 1.5),
    ]
    assert document["total_usd"] == 2.0 and document["calls"] == 2
    assert document["rows"][3]["share"] == 0.75
    assert set(document["rows"][0]) >= {
        "key",
        "calls",
        "cost_usd",
        "share",
        "cost_per_call_usd",
        "previous_cost_usd",
        "estimated",
    }


def test_table_and_chart(history: Path) -> None:
    result = runner.invoke(app, ["spend", "--days", "4"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "2027-01-13" in result.stdout and "$1.50" in result.stdout
    assert "Cost per day" in result.stdout
    assert "claude-haiku-4-5" in result.stdout  # the sparkline's model
    assert "█" in result.stdout


def test_csv_defuses_formulas(history: Path) -> None:
    result = runner.invoke(app, ["spend", "--by", "workflow", "--days", "4", "--csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["key"], r["cost_usd"]) for r in rows] == [
        ("'=evil", "1.500000"),
        ("code-review", "0.500000"),
    ]


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--by", "hour"], "--by"),
        (["--since", "2027-02-01", "--until", "2027-01-01"], "--since"),
        (["--since", "yesterday"], "--since"),
        (["--since", "2027-01-01", "--until", "31/01/2027"], "--until"),
        (["--days", "0"], "--days"),
        (["--days", "3", "--since", "2027-01-01"], "--days"),
        (["--json", "--csv"], "--json"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(history: Path, args: list[str], names: str) -> None:
    result = runner.invoke(app, ["spend", *args])
    assert result.exit_code == 2
    assert names in result.stderr
    assert result.stdout == ""


def test_an_unknown_timezone_names_the_key(history: Path) -> None:
    (history / "config.toml").write_text('[budgets]\ntimezone = "Mars/Olympus"\n')
    result = runner.invoke(app, ["spend"])
    assert result.exit_code == 2
    assert "budgets.timezone" in result.stderr
