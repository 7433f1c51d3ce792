"""`attune route simulate` as a person or a script runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attune_cli.cli.app import app
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

runner = CliRunner()
END = 1_799_971_200


@pytest.fixture
def history(attune_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ATTUNE_NOW", str(END + 1800))
    attune_home.mkdir(parents=True, exist_ok=True)
    with TelemetryStore(attune_home / "telemetry.db") as store:
        store.record_many(
            CallRecord("w", "s", model, True, ts=hour + i, cost_usd=cost, latency_ms=500.0)
            for hour in range(END - 72 * 3600, END, 3600)
            for model, cost in (("claude-sonnet-4-5", 0.02), ("claude-haiku-4-5", 0.002))
            for i in range(6)
        )
    return attune_home


def test_json_has_both_sides_and_the_hours(history: Path) -> None:
    result = runner.invoke(
        app, ["route", "simulate", "s", "-w", "w", "--max-cost", "0.01", "--days", "1", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) >= {
        "workflow",
        "stage",
        "days",
        "proposed",
        "actual",
        "difference",
        "disagreements",
    }
    assert document["actual"]["calls"] == document["proposed"]["calls"] == 24 * 12
    assert document["actual"]["cost_usd"] == pytest.approx(24 * 6 * 0.022)
    assert document["proposed"]["cost_usd"] == pytest.approx(24 * 12 * 0.002)
    assert document["chosen"] == {"claude-haiku-4-5": 24 * 12}


def test_table_says_it_is_an_estimate(history: Path) -> None:
    result = runner.invoke(app, ["route", "simulate", "s", "-w", "w", "--days", "2"])
    assert result.exit_code == 0, result.stderr
    assert "not a counterfactual truth" in result.stdout
    assert "not a counterfactual truth" in runner.invoke(
        app, ["route", "simulate", "--help"]
    ).stdout.replace("\n", " ").replace("│", "").replace("  ", " ")


def test_bad_weights_exit_2(history: Path) -> None:
    result = runner.invoke(app, ["route", "simulate", "s", "-w", "w", "--score-weights", "speed=2"])
    assert result.exit_code == 2
    assert "--score-weights" in result.stderr
