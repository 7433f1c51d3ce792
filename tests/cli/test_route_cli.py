"""`attune route explain|best|stats|check` as a person or a script runs them."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attune_cli.cli.app import app
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

runner = CliRunner()
DAY = 86_400.0


def seed(home: Path, model: str, n: int, *, failures: int = 0, **fields: object) -> None:
    """``n`` calls of ``model`` over the last day; every ``n // failures``-th one failed."""
    now = time.time()
    workflow = str(fields.pop("workflow", "code-review"))
    stage = str(fields.pop("stage", "analysis"))
    days_ago = float(fields.pop("days_ago", 1.0))  # type: ignore[arg-type]
    records = [
        CallRecord(
            workflow=workflow,
            stage=stage,
            model=model,
            success=not (failures and i % (n // failures) == 0),
            ts=now - days_ago * DAY + i * (0.5 * DAY / n),
            **fields,  # type: ignore[arg-type]
        )
        for i in range(n)
    ]
    with TelemetryStore(home / "telemetry.db") as store:
        store.record_many(records)


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both providers callable, as on a machine set up to call them (tests of the other case
    remove a key)."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")


@pytest.fixture
def history(attune_home: Path) -> Path:
    seed(attune_home, "gpt-5", 300, failures=3, latency_ms=1200.0, cost_usd=0.004)
    seed(attune_home, "claude-sonnet-4-5", 300, failures=6, latency_ms=1500.0, cost_usd=0.005)
    seed(attune_home, "claude-opus-4-5", 200, latency_ms=6000.0, cost_usd=0.03)
    return attune_home


def test_explain_shows_every_candidate_the_choice_and_why(history: Path) -> None:
    result = runner.invoke(app, ["route", "explain", "analysis", "-w", "code-review"])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for model in ("gpt-5", "claude-sonnet-4-5", "claude-opus-4-5"):
        assert model in out
    chosen_line = next(line for line in out.splitlines() if "→" in line)
    assert "gpt-5" in chosen_line and "chosen" in chosen_line
    assert "Why: gpt-5 has the best quality score" in out
    assert "What would change it:" in out
    assert "trails gpt-5 by" in out


def test_explain_shows_what_a_cap_ruled_out(history: Path) -> None:
    result = runner.invoke(
        app, ["route", "explain", "analysis", "-w", "code-review", "--max-latency", "5000"]
    )
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    opus_row = next(line for line in lines if "claude-opus-4-5" in line)
    assert "ruled out" in opus_row
    # The reason is listed under the table, next to the model it ruled out.
    reason = next(line for line in lines if "claude-opus-4-5:" in line)
    assert "p95 latency 6,000 ms over the 5,000 ms cap" in reason
    assert "max p95 5,000 ms" in result.stdout


def test_best_prints_only_the_model_id(history: Path) -> None:
    result = runner.invoke(app, ["route", "best", "analysis", "--workflow", "code-review"])
    assert result.exit_code == 0
    assert result.stdout == "gpt-5\n"


def test_best_json_is_the_decision(history: Path) -> None:
    result = runner.invoke(
        app, ["route", "best", "analysis", "-w", "code-review", "--max-cost", "0.0045", "--json"]
    )
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["chosen"] == "gpt-5" and doc["fallback"] is False
    assert doc["constraints"]["max_cost_usd"] == 0.0045
    sonnet = next(c for c in doc["candidates"] if c["model"] == "claude-sonnet-4-5")
    assert sonnet["eligible"] is False
    assert sonnet["rejected_because"] == ["average cost $0.005 over the $0.0045 cap"]


def test_a_cap_no_model_meets_chooses_nobody(history: Path) -> None:
    args = ["analysis", "-w", "code-review", "--max-cost", "0.001"]
    result = runner.invoke(app, ["route", "explain", *args, "--json"])
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["chosen"] is None and doc["within_caps"] is False and doc["fallback"] is True
    assert doc["reason"].startswith("No model within the caps")
    # Every model of every tier is listed with the cap that ruled it out, and its figures.
    for candidate in doc["candidates"]:
        [cap] = [r for r in candidate["rejections"] if r["reason"] == "over_cost_cap"]
        assert cap["limit"] == 0.001 and cap["value"] > 0.001
    models = {c["model"] for c in doc["candidates"]}
    assert {"gpt-5", "gpt-5-mini", "claude-haiku-4-5", "gpt-5-pro"} <= models

    best = runner.invoke(app, ["route", "best", *args])
    assert best.exit_code == 1
    assert best.stdout == ""
    assert "no model within the caps" in best.stderr
    assert "no model within the caps for analysis: 6 models over the $0.001 cost cap" in (
        best.stderr
    )
    assert "(the cheapest, gpt-5-mini, costs $0.00125)" in best.stderr

    as_json = runner.invoke(app, ["route", "best", *args, "--json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["chosen"] is None


def test_unknown_stage_and_workflow_explain_there_is_no_history(attune_home: Path) -> None:
    result = runner.invoke(app, ["route", "explain", "frobnicate", "-w", "never-seen"])
    assert result.exit_code == 0
    assert not attune_home.exists(), "asking must not create the store"
    assert "No history for stage 'frobnicate' of workflow 'never-seen'" in result.stdout
    assert "claude-sonnet-4-5" in result.stdout
    best = runner.invoke(app, ["route", "best", "triage"])
    assert best.exit_code == 0 and best.stdout == "claude-haiku-4-5\n"


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--max-cost", "-1"], "--max-cost"),
        (["--max-latency", "-5"], "--max-latency"),
        (["--min-success", "1.5"], "--min-success"),
        (["--min-success", "-0.2"], "--min-success"),
        (["--days", "0"], "--days"),
        (["--max-cost", "nan"], "--max-cost"),
        (["--max-cost", "inf"], "--max-cost"),
        (["--max-latency", "nan"], "--max-latency"),
        (["--max-latency", "inf"], "--max-latency"),
    ],
)
@pytest.mark.parametrize("command", ["explain", "best"])
def test_bad_flag_values_exit_2_naming_the_flag(command: str, args: list[str], flag: str) -> None:
    result = runner.invoke(app, ["route", command, "analysis", *args])
    assert result.exit_code == 2
    assert flag in result.stderr
    assert result.stdout == ""


def test_empty_stage_is_a_usage_error() -> None:
    result = runner.invoke(app, ["route", "best", " "])
    assert result.exit_code == 2
    assert "STAGE" in result.stderr


def test_invalid_routing_config_exits_2_naming_the_key(attune_home: Path) -> None:
    attune_home.mkdir(parents=True, exist_ok=True)
    (attune_home / "config.toml").write_text("[routing]\nmin_calls = 'ten'\n")
    result = runner.invoke(app, ["route", "best", "analysis"])
    assert result.exit_code == 2
    assert "routing.min_calls" in result.stderr and "config.toml" in result.stderr


def test_routing_config_sets_the_stage_tier(attune_home: Path) -> None:
    attune_home.mkdir(parents=True, exist_ok=True)
    (attune_home / "config.toml").write_text('[routing.stages]\nanalysis = "premium"\n')
    result = runner.invoke(app, ["route", "best", "analysis"])
    assert result.stdout == "claude-opus-4-5\n"


def test_stats_json_and_table(history: Path) -> None:
    seed(history, "claude-haiku-4-5", 40, stage="triage", cost_usd=0.001)
    result = runner.invoke(app, ["route", "stats", "-w", "code-review", "--json"])
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert [s["stage"] for s in doc["stages"]] == ["analysis", "triage"]
    assert doc["calls"] == 840
    assert doc["stages"][0]["best"] == "gpt-5"
    table = runner.invoke(app, ["route", "stats", "-w", "code-review", "--stage", "analysis"])
    assert table.exit_code == 0
    assert "Models" in table.stdout and "claude-opus-4-5" in table.stdout


def test_stats_with_no_calls_says_so_on_stderr() -> None:
    result = runner.invoke(app, ["route", "stats"])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "No calls recorded in the last 30 days" in result.stderr


def test_check_json_advises_per_stage(attune_home: Path) -> None:
    seed(attune_home, "gpt-5", 400, cost_usd=0.01, days_ago=3)
    seed(attune_home, "gpt-5", 50, failures=25, cost_usd=0.01)
    seed(attune_home, "claude-haiku-4-5", 200, stage="triage", cost_usd=0.001)
    result = runner.invoke(app, ["route", "check", "--json"])
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    by_stage = {a["stage"]: a for a in doc}
    assert by_stage["analysis"]["recommendation"] == "upgrade"
    assert by_stage["analysis"]["suggested_tier"] == "premium"
    assert by_stage["analysis"]["recent_failure_rate"] == 0.5
    assert by_stage["triage"]["recommendation"] == "keep"
    table = runner.invoke(app, ["route", "check", "--stage", "analysis", "-w", "code-review"])
    assert "upgrade → premium" in table.stdout


def test_route_help_lists_the_commands_and_breakers() -> None:
    result = runner.invoke(app, ["route", "--help"])
    assert result.exit_code == 0
    for command in ("explain", "best", "stats", "check", "breakers"):
        assert command in result.stdout


def test_explore_flag_is_accepted_and_marks_the_json(history: Path) -> None:
    result = runner.invoke(
        app, ["route", "best", "analysis", "-w", "code-review", "--explore", "--json"]
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout)["constraints"]["explore"] is True


def test_an_unconfigured_provider_is_listed_but_never_chosen(
    history: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The history favours gpt-5, but only Anthropic has a key on this machine.
    monkeypatch.delenv("OPENAI_API_KEY")
    best = runner.invoke(app, ["route", "best", "analysis", "-w", "code-review"])
    assert (best.exit_code, best.stdout) == (0, "claude-sonnet-4-5\n")
    explained = runner.invoke(app, ["route", "explain", "analysis", "-w", "code-review"])
    assert "gpt-5: not configured (openai has no key or base URL)" in explained.stdout
    anyway = runner.invoke(
        app, ["route", "best", "analysis", "-w", "code-review", "--any-provider"]
    )
    assert (anyway.exit_code, anyway.stdout) == (0, "gpt-5\n")


def test_explain_says_which_failures_do_not_count(attune_home: Path) -> None:
    seed(attune_home, "gpt-5", 100, latency_ms=900.0, cost_usd=0.004)
    seed(attune_home, "gpt-5", 12, failures=12, status=429, error_kind="rate_limit")
    seed(attune_home, "gpt-5", 6, failures=6, status=503, days_ago=2.0)
    result = runner.invoke(app, ["route", "explain", "analysis", "-w", "code-review"])
    assert result.exit_code == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "Failures that do not count against a model:" in out
    assert (
        "gpt-5: 6 outage failures older than the outage memory and 12 rate limits not counted"
        in out
    )
    doc = json.loads(
        runner.invoke(app, ["route", "explain", "analysis", "-w", "code-review", "--json"]).stdout
    )
    gpt = next(c for c in doc["candidates"] if c["model"] == "gpt-5")
    assert gpt["calls"] == 118 and gpt["counted_calls"] == 100 and gpt["success_rate"] == 1.0


def test_check_warns_about_a_cost_cap_no_model_meets(attune_home: Path) -> None:
    attune_home.mkdir(parents=True, exist_ok=True)
    (attune_home / "config.toml").write_text("[routing]\nmax_cost_usd = 0.00001\n")
    result = runner.invoke(app, ["route", "check"])
    assert result.exit_code == 0
    assert "routing.max_cost_usd ($0.00001) is below the price of every model" in result.stderr


def test_check_warns_when_escalate_cannot_escalate(attune_home: Path) -> None:
    attune_home.mkdir(parents=True, exist_ok=True)
    (attune_home / "config.toml").write_text(
        "[routing]\nmax_cost_usd = 0.0013\n[executor]\nescalate = true\n"
    )
    result = runner.invoke(app, ["route", "check", "--json"])
    assert result.exit_code == 0
    assert "executor.escalate is true, but no model above the cheap tier fits" in result.stderr
    assert json.loads(result.stdout) == []
