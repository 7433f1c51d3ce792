"""`attune budget status|check` and `attune ask` under a budget, against the emulator."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attune_cli.cli.app import app
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore
from attune_cli.emulator import ProviderEmulator

runner = CliRunner()


def configure(home: Path, budget: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f'[budgets]\ntimezone = "UTC"\n\n{budget}')


def spend(home: Path, usd: float, workflow: str = "code-review") -> None:
    with TelemetryStore(home / "telemetry.db") as store:
        store.record(CallRecord(workflow, "analysis", "gpt-5-mini", True, cost_usd=usd))


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderEmulator]:
    with ProviderEmulator({}, api_key="sk-emulator-key-000111") as running:
        monkeypatch.setenv("OPENAI_BASE_URL", running.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-emulator-key-000111")
        yield running


def test_status_json_and_table(attune_home: Path) -> None:
    configure(attune_home, "[budgets.code-review]\ndaily_usd = 1\nmonthly_usd = 10\n")
    spend(attune_home, 0.85)
    result = runner.invoke(app, ["budget", "status", "--json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert [(d["period"], d["state"]) for d in document] == [("month", "ok"), ("day", "warning")]
    assert document[1]["spent_usd"] == 0.85 and document[1]["left_usd"] == pytest.approx(0.15)
    assert set(document[0]) >= {
        "budget",
        "period",
        "limit_usd",
        "spent_usd",
        "left_usd",
        "projected_usd",
        "state",
        "resets_at",
    }
    table = runner.invoke(app, ["budget", "status"], env={"COLUMNS": "160"})
    assert "warning" in table.stdout and "$0.85" in table.stdout


def test_no_budget_says_how_to_add_one(attune_home: Path) -> None:
    result = runner.invoke(app, ["budget", "status"])
    assert result.exit_code == 0
    assert "[budgets.code-review]" in result.stderr


def test_check_exit_codes(attune_home: Path) -> None:
    configure(attune_home, '[budgets."*"]\ndaily_usd = 1\n')
    spend(attune_home, 0.5, workflow="anything")
    assert runner.invoke(app, ["budget", "check", "-w", "x", "--cost", "0.5"]).exit_code == 0
    over = runner.invoke(app, ["budget", "check", "-w", "x", "--cost", "0.51"])
    assert over.exit_code == 1
    assert "over: budget '*' day" in over.stderr
    bad = runner.invoke(app, ["budget", "check", "-w", "x", "--cost", "-1"])
    assert bad.exit_code == 2 and "--cost" in bad.stderr


def test_a_bad_budget_exits_2_naming_the_key(attune_home: Path) -> None:
    configure(attune_home, '[budgets.code-review]\nmonthly_usd = 5\non_exceed = "panic"\n')
    result = runner.invoke(app, ["budget", "status"])
    assert result.exit_code == 2
    assert "budgets.code-review.on_exceed" in result.stderr


def test_ask_refuses_over_budget_and_calls_no_one(
    attune_home: Path, emulator: ProviderEmulator
) -> None:
    configure(attune_home, "[budgets.code-review]\ndaily_usd = 1\n")
    spend(attune_home, 0.999)
    result = runner.invoke(app, ["ask", "hello", "-w", "code-review", "-m", "gpt-5"])
    assert result.exit_code == 1
    assert "budget 'code-review' (daily $1.00): $0.999 spent" in result.stderr
    assert "resets at" in result.stderr
    assert emulator.requests_for() == 0
    # Within budget, the call goes through and its reservation is released afterwards.
    ok = runner.invoke(
        app, ["ask", "hi", "-w", "code-review", "-m", "gpt-5-mini", "--max-tokens", "100"]
    )
    assert ok.exit_code == 0, ok.stderr
    with TelemetryStore(attune_home / "telemetry.db") as store:
        assert store.reserved_usd("code-review", time.time()) == 0.0


def test_ask_downgrades_to_the_cheapest_model_that_fits(
    attune_home: Path, emulator: ProviderEmulator
) -> None:
    configure(
        attune_home,
        '[budgets.code-review]\ndaily_usd = 1\non_exceed = "downgrade"\n\n'
        '[routing.stages]\nanalysis = "capable"\n',
    )
    spend(attune_home, 0.995)  # $0.005 left: gpt-5 could cost $0.0102, gpt-5-mini $0.0020
    result = runner.invoke(
        app, ["ask", "hello", "-w", "code-review", "-s", "analysis", "--json", "--verbose"]
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["model"] == "gpt-5-mini"
    assert "gpt-5-mini instead of gpt-5" in result.stderr
    assert emulator.requests_for("gpt-5") == 0
