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
    # Nothing went through a subscription plan: no plan-covered column.
    assert "Plan-covered" not in result.stdout and "Per token" not in result.stdout


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


@pytest.fixture
def billed(history: Path) -> Path:
    """The history, plus a call the subscription plan covered and one paid through the API."""
    with TelemetryStore(history / "telemetry.db") as store:
        for cost, billing in ((2.25, "subscription"), (0.75, "api")):
            store.record(
                CallRecord(
                    "code-review",
                    "analysis",
                    "claude-haiku-4-5",
                    True,
                    ts=MIDNIGHT + 2 * HOUR,
                    cost_usd=cost,
                    billing=billing,
                )
            )
    return history


def test_plan_covered_and_per_token_in_table_json_and_csv(billed: Path) -> None:
    args = ["spend", "--by", "workflow", "--days", "4"]
    table = runner.invoke(app, args, env={"COLUMNS": "160"})
    assert table.exit_code == 0, table.output
    assert "Plan-covered" in table.stdout and "Per token" in table.stdout
    review = next(line for line in table.stdout.splitlines() if "code-review" in line)
    assert review.split()[1:5] == ["3", "$3.50", "$2.25", "$1.25"]
    words = " ".join(table.stdout.split())  # the caption wraps at the table's width
    assert "$2.25 covered by the subscription plan, $2.75 paid per token" in words

    document = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    assert (document["plan_covered_usd"], document["pay_per_token_usd"]) == (2.25, 2.75)
    assert [
        (r["key"], r["plan_covered_usd"], r["pay_per_token_usd"]) for r in document["rows"]
    ] == [
        ("code-review", 2.25, 1.25),
        ("=evil", 0.0, 1.5),
    ]

    rows = list(csv.DictReader(io.StringIO(runner.invoke(app, [*args, "--csv"]).stdout)))
    assert [(r["key"], r["plan_covered_usd"], r["pay_per_token_usd"]) for r in rows] == [
        ("code-review", "2.250000", "1.250000"),
        ("'=evil", "0.000000", "1.500000"),
    ]
