"""Tier advice (upgrade / downgrade / keep) and routing stats."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.routing import NOW, calls, router

from attune_cli.core.telemetry.sqlite import TelemetryStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TelemetryStore]:
    with TelemetryStore(tmp_path / "telemetry.db", clock=lambda: NOW) as opened:
        yield opened


def test_newest_calls_failing_advise_an_upgrade(store: TelemetryStore) -> None:
    store.record_many(calls("gpt-5", 500, days_ago=10, spread_days=8))
    store.record_many(calls("gpt-5", 50, failures=20, days_ago=1, spread_days=0.5))
    advice = router(store).recommend_tier_upgrade("code-review", "analysis")
    assert advice.recommendation == "upgrade"
    assert (advice.current_tier, advice.suggested_tier) == ("capable", "premium")
    assert advice.recent_calls == 50
    assert advice.recent_failure_rate == pytest.approx(0.4)
    assert "20 of the newest 50 calls failed" in advice.reason


def test_old_failures_do_not_advise_an_upgrade(store: TelemetryStore) -> None:
    # The older tool looked at the oldest calls of the list: failures long past, fine now.
    store.record_many(calls("gpt-5", 50, failures=50, days_ago=10, spread_days=1))
    store.record_many(calls("gpt-5", 500, days_ago=8, spread_days=7))
    advice = router(store).recommend_tier_upgrade("code-review", "analysis")
    assert advice.recommendation == "keep"
    assert advice.recent_failure_rate == 0.0


def test_the_top_tier_cannot_be_upgraded(store: TelemetryStore) -> None:
    store.record_many(calls("claude-opus-4-5", 60, failures=30, stage="synthesis"))
    advice = router(store).recommend_tier_upgrade("code-review", "synthesis")
    assert advice.recommendation == "keep" and advice.suggested_tier == "premium"
    assert "premium is the top tier" in advice.reason


def test_a_cheaper_tier_that_does_as_well_advises_a_downgrade(store: TelemetryStore) -> None:
    store.record_many(calls("claude-sonnet-4-5", 400, failures=8, cost_usd=0.01, days_ago=5))
    store.record_many(calls("claude-haiku-4-5", 200, failures=5, cost_usd=0.001, days_ago=4))
    advice = router(store).recommend_tier_upgrade("code-review", "analysis")
    assert advice.recommendation == "downgrade"
    assert advice.suggested_tier == "cheap"
    assert advice.savings_per_1k_calls_usd == pytest.approx(9.0)
    assert "saving $9.00 per 1,000 calls" in advice.reason
    assert advice.as_dict()["savings_per_1k_calls_usd"] == pytest.approx(9.0)


def test_a_cheaper_tier_needs_enough_history_and_a_close_success_rate(
    store: TelemetryStore,
) -> None:
    store.record_many(calls("claude-sonnet-4-5", 400, failures=4, cost_usd=0.01, days_ago=5))
    store.record_many(calls("claude-haiku-4-5", 30, cost_usd=0.001, days_ago=4))
    assert router(store).recommend_tier_upgrade("code-review", "analysis").recommendation == "keep"
    store.record_many(calls("claude-haiku-4-5", 200, failures=20, cost_usd=0.001, days_ago=3))
    # Now enough history, but ~91 % against 99 %: outside the 2-point margin.
    assert router(store).recommend_tier_upgrade("code-review", "analysis").recommendation == "keep"


def test_no_calls_is_keep_not_an_error(store: TelemetryStore) -> None:
    advice = router(store).recommend_tier_upgrade("unknown", "mystery")
    assert advice.recommendation == "keep" and advice.recent_calls == 0
    assert advice.recent_failure_rate is None
    assert set(advice.as_dict()) >= {
        "workflow",
        "stage",
        "current_tier",
        "recommendation",
        "suggested_tier",
        "reason",
        "recent_calls",
        "recent_failure_rate",
        "savings_per_1k_calls_usd",
    }


def test_check_covers_every_stage_with_calls_in_the_window(store: TelemetryStore) -> None:
    store.record_many(calls("gpt-5", 20, workflow="a", stage="analysis"))
    store.record_many(calls("gpt-5", 20, workflow="a", stage="triage"))
    store.record_many(calls("gpt-5", 20, workflow="b", stage="review"))
    store.record_many(calls("gpt-5", 20, workflow="c", stage="old", days_ago=45))
    advice = router(store).check()
    assert [(a.workflow, a.stage) for a in advice] == [
        ("a", "analysis"),
        ("a", "triage"),
        ("b", "review"),
    ]
    assert [(a.stage, a.current_tier) for a in router(store).check("a")] == [
        ("analysis", "capable"),
        ("triage", "cheap"),
    ]


def test_stats_per_stage_with_totals_and_the_choice_now(store: TelemetryStore) -> None:
    store.record_many(calls("gpt-5", 100, failures=10, cost_usd=0.002, workflow="a"))
    store.record_many(calls("claude-sonnet-4-5", 50, cost_usd=0.004, workflow="a"))
    store.record_many(calls("gpt-5", 10, workflow="a", stage="triage", days_ago=20))
    stats = router(store).get_routing_stats("a", days=7)
    assert [s.stage for s in stats.stages] == ["analysis"]  # triage is older than 7 days
    analysis = stats.stages[0]
    assert (analysis.calls, analysis.successes) == (150, 140)
    assert analysis.total_cost_usd == pytest.approx(0.4)
    assert analysis.best == "claude-sonnet-4-5"
    doc = stats.as_dict()
    assert doc["calls"] == 150 and doc["days"] == 7
    assert doc["stages"][0]["models"][0]["model"] == "claude-sonnet-4-5"


def test_stats_for_an_unknown_workflow_is_empty_not_a_crash(store: TelemetryStore) -> None:
    # The older tool's routing-stats crashed with a KeyError.
    store.record_many(calls("gpt-5", 10))
    stats = router(store).get_routing_stats("nope")
    assert stats.stages == [] and stats.as_dict()["calls"] == 0
    one = router(store).get_routing_stats("nope", stage="analysis")
    assert one.stages[0].calls == 0 and one.stages[0].best == "claude-sonnet-4-5"
