"""One format everywhere: the same figure reads the same in every command, text and JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path

from typer.testing import CliRunner

from attune_cli.cli.app import app
from attune_cli.cli.ask import _footer
from attune_cli.core.breaker.sqlite import CircuitBreaker
from attune_cli.core.response import LLMResponse
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

runner = CliRunner()
DAY = 86_400.0


def record(home: Path, **fields: object) -> None:
    values: dict[str, object] = {
        "workflow": "code-review",
        "stage": "analysis",
        "model": "claude-haiku-4-5",
        "success": True,
        "ts": time.time() - 3600,
    }
    values.update(fields)
    with TelemetryStore(home / "telemetry.db") as store:
        store.record_many([CallRecord(**values)])  # type: ignore[arg-type]


def test_route_stats_uses_the_same_window_as_every_other_report(attune_home: Path) -> None:
    record(attune_home, ts=time.time() - 10 * DAY)

    stats = runner.invoke(app, ["route", "stats", "--json"])
    models = runner.invoke(app, ["telemetry", "models", "--json"])

    assert json.loads(stats.stdout)["days"] == 30
    assert json.loads(stats.stdout)["stages"], "a call 10 days old is in the 30-day window"
    assert json.loads(models.stdout), "telemetry models sees the same call"


def test_json_floats_carry_no_float_noise(attune_home: Path) -> None:
    record(attune_home, cost_usd=0.1 + 0.2, latency_ms=0.1 + 0.7)

    shown = runner.invoke(app, ["telemetry", "show", "--json"]).stdout

    assert "0.30000000000000004" not in shown and "0.7999999999999999" not in shown
    assert json.loads(shown)[0]["cost_usd"] == 0.3


def test_money_in_text_has_cents_beside_dollars(attune_home: Path) -> None:
    record(attune_home, cost_usd=0.2)
    record(attune_home, cost_usd=20.0, model="gpt-4o-mini")

    table = runner.invoke(app, ["route", "stats"]).stdout

    assert "$20.20" in table
    shown = runner.invoke(app, ["telemetry", "show"]).stdout
    assert "$0.20" in shown and "$0.2 " not in shown


def test_breakers_json_has_iso_times_beside_the_stable_epoch_keys(attune_home: Path) -> None:
    with CircuitBreaker(attune_home / "telemetry.db", clock=lambda: 1_800_000_000.0) as breaker:
        for _ in range(5):
            breaker.after_call(breaker.before_call("openai/gpt-4o-mini"), failure=True)

    (item,) = json.loads(runner.invoke(app, ["route", "breakers", "--json"]).stdout)

    assert item["opened_at"] == 1_800_000_000.0
    assert item["opened_at_iso"] == "2027-01-15T08:00:00Z"
    assert item["open_until_iso"].startswith("2027-01-15T08:00:")


def test_the_answer_footer_writes_milliseconds_as_the_tables_do() -> None:
    response = LLMResponse(
        content="hi",
        model="claude-haiku-4-5",
        provider="anthropic",
        tier="cheap",
        input_tokens=12_345,
        output_tokens=678,
        cost_usd=0.2,
        latency_ms=1453.2,
        success=True,
    )

    footer = _footer(response)

    assert "1,453 ms" in footer and "12,345 → 678 tokens" in footer and "$0.20" in footer


def test_a_one_day_window_is_one_day(attune_home: Path) -> None:
    record(attune_home)

    models = runner.invoke(app, ["telemetry", "models", "--days", "1"]).stdout

    assert "last 1 day" in models and "1 days" not in models
