"""AdaptiveModelRouter: what it picks from a known history, the caps, fallbacks and the traps."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.routing import NOW, REGISTRY, calls, router

from attune_cli.core.errors import ConfigError, UsageError
from attune_cli.core.performance import ScoreWeights
from attune_cli.core.routing import AdaptiveModelRouter, RoutingSettings
from attune_cli.core.routing.decision import Reason
from attune_cli.core.telemetry.sqlite import TelemetryStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TelemetryStore]:
    with TelemetryStore(tmp_path / "telemetry.db", clock=lambda: NOW) as opened:
        yield opened


def test_the_documented_score_picks_the_winner(store: TelemetryStore) -> None:
    store.record_many(calls("claude-sonnet-4-5", 300, failures=6, cost_usd=0.01))
    store.record_many(calls("gpt-5", 300, failures=30, cost_usd=0.005))
    decision = router(store).get_best_model("code-review", "analysis")
    assert decision.chosen == "claude-sonnet-4-5"
    assert decision.fallback is False
    weights = ScoreWeights()
    for c in decision.candidates:
        if c.has_history:
            assert c.quality_score == pytest.approx(
                weights.score(c.success_lower_bound, c.avg_cost_usd, c.p95_latency_ms)
            )
    scores = [c.quality_score for c in decision.candidates if c.eligible]
    assert scores == sorted(scores, reverse=True)
    assert "claude-sonnet-4-5 has the best quality score" in decision.reason


def test_ten_lucky_calls_do_not_beat_a_thousand_good_ones(store: TelemetryStore) -> None:
    store.record_many(calls("gpt-5", 10))
    store.record_many(calls("claude-sonnet-4-5", 1000, failures=10))
    decision = router(store, min_calls=5).get_best_model("code-review", "analysis")
    assert decision.chosen == "claude-sonnet-4-5"
    lucky = decision.candidate("gpt-5")
    assert lucky is not None and lucky.eligible and lucky.success_rate == 1.0
    assert lucky.success_lower_bound < 0.75


def test_cost_term_is_big_enough_to_matter(store: TelemetryStore) -> None:
    # Trap 4: the seed's 100·success − 10·cost let a $0.03 call tie with a $0.0003 one.
    store.record_many(calls("claude-opus-4-5", 500, failures=5, cost_usd=0.03))
    store.record_many(calls("claude-haiku-4-5", 500, failures=5, cost_usd=0.0003))
    decision = router(store).get_best_model("code-review", "analysis")
    assert decision.chosen == "claude-haiku-4-5"
    dear, cheap = decision.candidate("claude-opus-4-5"), decision.candidate("claude-haiku-4-5")
    assert dear is not None and cheap is not None
    assert cheap.quality_score - dear.quality_score > 15


def test_a_dearer_model_wins_with_a_real_edge_in_reliability(store: TelemetryStore) -> None:
    store.record_many(calls("claude-opus-4-5", 1000, failures=5, cost_usd=0.003))
    store.record_many(calls("claude-haiku-4-5", 1000, failures=200, cost_usd=0.0003))
    decision = router(store).get_best_model("code-review", "analysis")
    assert decision.chosen == "claude-opus-4-5"


def test_failures_are_counted(store: TelemetryStore) -> None:
    # Trap 5: the older tool never recorded failures, so every success rate was 100 %.
    for record in calls("gpt-5", 40, failures=10):
        store.record(record)
    decision = router(store).get_best_model("code-review", "analysis")
    row = decision.candidate("gpt-5")
    assert row is not None and row.calls == 40
    assert row.success_rate == pytest.approx(0.75)


def test_window_is_every_call_of_the_stage_not_the_newest_rows_of_the_store(
    store: TelemetryStore,
) -> None:
    # Trap 1: the window was the newest 10,000 rows of the whole store, so a quiet workflow
    # lost its history to a busy one.
    store.record_many(calls("gpt-5", 60, workflow="nightly-audit", days_ago=20))
    store.record_many(
        calls("claude-sonnet-4-5", 12_000, failures=600, workflow="busy", days_ago=2, spread_days=2)
    )
    decision = router(store).get_best_model("nightly-audit", "analysis")
    assert decision.fallback is False
    assert decision.chosen == "gpt-5"
    row = decision.candidate("gpt-5")
    assert row is not None and row.calls == 60


def test_days_bounds_the_window(store: TelemetryStore) -> None:
    store.record_many(calls("gpt-5", 60, days_ago=20))
    assert router(store).get_best_model("code-review", "analysis", days=30).chosen == "gpt-5"
    narrow = router(store).get_best_model("code-review", "analysis", days=7)
    assert narrow.fallback is True
    assert narrow.constraints["window_days"] == 7


def test_recent_failures_are_the_newest_calls(store: TelemetryStore) -> None:
    # Trap 2: "recent failures" were counted on the oldest calls of the list.
    store.record_many(calls("gpt-5", 200, days_ago=10, spread_days=5))
    store.record_many(calls("gpt-5", 20, failures=20, days_ago=1, spread_days=0.5))
    store.record_many(calls("claude-sonnet-4-5", 20, failures=20, days_ago=10, spread_days=0.5))
    store.record_many(calls("claude-sonnet-4-5", 200, days_ago=5, spread_days=4))
    decision = router(store).get_best_model("code-review", "analysis")
    degraded, recovered = decision.candidate("gpt-5"), decision.candidate("claude-sonnet-4-5")
    assert degraded is not None and recovered is not None
    assert (degraded.recent_calls, degraded.recent_failures) == (20, 20)
    assert degraded.demoted and not degraded.eligible
    assert recovered.recent_failures == 0 and not recovered.demoted
    assert decision.chosen == "claude-sonnet-4-5"


def test_a_degrading_model_is_demoted_within_a_few_dozen_calls(store: TelemetryStore) -> None:
    store.record_many(calls("gpt-5", 1000, failures=20, days_ago=20, spread_days=19))
    store.record_many(calls("claude-sonnet-4-5", 1000, failures=50, days_ago=20, spread_days=19))
    assert router(store).get_best_model("code-review", "analysis").chosen == "gpt-5"
    # 30 newest calls failing half the time: the window still says 97 %, the newest say 50 %.
    store.record_many(calls("gpt-5", 30, failures=15, days_ago=0.5, spread_days=0.4))
    decision = router(store).get_best_model("code-review", "analysis")
    row = decision.candidate("gpt-5")
    assert row is not None and row.success_rate > 0.95
    assert row.demoted
    assert decision.chosen == "claude-sonnet-4-5"
    assert any("newest" in reason for reason in row.rejected_because)


def test_ordinary_noise_does_not_demote(store: TelemetryStore) -> None:
    store.record_many(calls("gpt-5", 500, failures=50, days_ago=20, spread_days=19))
    store.record_many(calls("gpt-5", 20, failures=3, days_ago=0.5, spread_days=0.4))
    row = router(store).get_best_model("code-review", "analysis").candidate("gpt-5")
    assert row is not None and not row.demoted and row.eligible


def test_recent_calls_weigh_more_than_old_ones(store: TelemetryStore) -> None:
    # gpt-5 was perfect three weeks ago and fails one call in five this week; sonnet is steady.
    store.record_many(calls("gpt-5", 300, days_ago=25, spread_days=2))
    store.record_many(calls("gpt-5", 100, failures=20, days_ago=3, spread_days=2.5))
    store.record_many(calls("claude-sonnet-4-5", 400, failures=28, days_ago=25, spread_days=24.5))
    unweighted = router(store, half_life_days=None).get_best_model("code-review", "analysis")
    weighted = router(store, half_life_days=3.0).get_best_model("code-review", "analysis")
    assert unweighted.chosen == "gpt-5"
    assert weighted.chosen == "claude-sonnet-4-5"


def test_latency_cap_rules_out_by_p95(store: TelemetryStore) -> None:
    store.record_many(calls("claude-sonnet-4-5", 100, latency_ms=4000))
    store.record_many(calls("gpt-5", 100, failures=5, latency_ms=1500))
    decision = router(store).get_best_model("code-review", "analysis", max_latency_ms=3000)
    assert decision.chosen == "gpt-5"
    slow = decision.candidate("claude-sonnet-4-5")
    assert slow is not None and not slow.eligible
    assert slow.rejected_because == ("p95 latency 4,000 ms over the 3,000 ms cap",)
    assert decision.constraints["max_latency_ms"] == 3000


def test_cost_cap_rules_out_by_average_cost(store: TelemetryStore) -> None:
    store.record_many(calls("claude-opus-4-5", 100, cost_usd=0.02))
    store.record_many(calls("claude-haiku-4-5", 100, failures=10, cost_usd=0.002))
    decision = router(store).get_best_model("code-review", "analysis", max_cost=0.01)
    assert decision.chosen == "claude-haiku-4-5"
    dear = decision.candidate("claude-opus-4-5")
    assert dear is not None
    assert dear.rejected_because == ("average cost $0.02 over the $0.01 cap",)


def test_min_success_rules_out_by_the_lower_bound(store: TelemetryStore) -> None:
    store.record_many(calls("gpt-5", 100, failures=8))
    store.record_many(calls("claude-sonnet-4-5", 100, failures=1, cost_usd=0.01))
    decision = router(store).get_best_model("code-review", "analysis", min_success_rate=0.9)
    row = decision.candidate("gpt-5")
    # 92 % observed, but its lower bound (~85 %) is under 90 %.
    assert row is not None and row.success_rate == pytest.approx(0.92)
    assert row.rejected_because[0].startswith("success bound 8")
    assert decision.chosen == "claude-sonnet-4-5"


def test_too_few_calls_is_a_verdict(store: TelemetryStore) -> None:
    store.record_many(calls("gpt-5", 4))
    row = router(store).get_best_model("code-review", "analysis").candidate("gpt-5")
    assert row is not None and row.rejected_because == ("too few calls (4 of 10)",)


def test_unknown_stage_uses_the_tier_default_and_says_there_is_no_history(
    store: TelemetryStore,
) -> None:
    decision = router(store).get_best_model("no-such-workflow", "no-such-stage")
    assert decision.fallback is True
    assert decision.chosen == "claude-sonnet-4-5"  # default tier capable, first in the registry
    assert decision.tier == "capable"
    assert decision.reason.startswith("No history for stage 'no-such-stage'")
    assert {c.model for c in decision.candidates} == {"claude-sonnet-4-5", "gpt-5"}
    assert all(c.rejected_because == ("no history",) for c in decision.candidates)


def test_every_candidate_filtered_out_falls_back_within_the_caps(store: TelemetryStore) -> None:
    # Trap 3: the older tool crashed here (a structlog-style keyword call on a stdlib logger).
    # And the caps are hard: the fallback is the nearest model within them, never one over.
    store.record_many(calls("claude-sonnet-4-5", 100, latency_ms=5000, cost_usd=0.02))
    store.record_many(calls("gpt-5", 100, latency_ms=900, cost_usd=0.05))
    decision = router(store).get_best_model(
        "code-review", "analysis", max_cost=0.01, max_latency_ms=2000
    )
    assert decision.fallback is True
    # The capable tier has nothing within the caps; the cheap tier's first model fits them by
    # its registry price ($0.0035 for a 1,000-token prompt and a 500-token answer).
    assert decision.chosen == "claude-haiku-4-5"
    assert decision.tier == "cheap"
    assert decision.reason.startswith("No model qualified")
    assert "claude-sonnet-4-5: p95 latency 5,000 ms over the 2,000 ms cap" in decision.reason
    assert "average cost $0.05 over the $0.01 cap" in decision.reason
    assert "so using claude-haiku-4-5, the nearest cheap-tier model within the caps" in (
        decision.reason
    )
    assert decision.as_dict()["fallback"] is True
    dearer = decision.candidate("gpt-5-pro")
    assert dearer is not None and "registry price" in dearer.rejected_because[0]


def test_candidates_include_history_of_other_tiers_and_the_default_tier(
    store: TelemetryStore,
) -> None:
    store.record_many(calls("claude-opus-4-5", 50))
    decision = router(store).get_best_model("code-review", "analysis")
    models = [c.model for c in decision.candidates]
    assert models[0] == "claude-opus-4-5"
    assert set(models) == {"claude-opus-4-5", "claude-sonnet-4-5", "gpt-5"}


def test_candidates_are_ordered_chosen_eligible_rejected_no_history(
    store: TelemetryStore,
) -> None:
    store.record_many(calls("gpt-5", 200, failures=2))
    store.record_many(calls("claude-haiku-4-5", 200, failures=20))
    store.record_many(calls("claude-opus-4-5", 3))
    decision = router(store).get_best_model("code-review", "analysis")
    assert [c.model for c in decision.candidates] == [
        "gpt-5",
        "claude-haiku-4-5",
        "claude-opus-4-5",
        "claude-sonnet-4-5",
    ]


def test_without_a_workflow_the_stage_counts_across_workflows(store: TelemetryStore) -> None:
    store.record_many(calls("gpt-5", 30, workflow="a"))
    store.record_many(calls("gpt-5", 30, workflow="b"))
    decision = router(store).get_best_model(None, "analysis")
    row = decision.candidate("gpt-5")
    assert row is not None and row.calls == 60
    assert "(all workflows)" in decision.reason


def test_what_would_change_the_decision_closes_the_gap(store: TelemetryStore) -> None:
    store.record_many(calls("gpt-5", 300, failures=3, latency_ms=1200, cost_usd=0.004))
    store.record_many(calls("claude-sonnet-4-5", 300, failures=6, latency_ms=1500, cost_usd=0.005))
    decision = router(store).get_best_model("code-review", "analysis")
    best, other = decision.candidate("gpt-5"), decision.candidate("claude-sonnet-4-5")
    assert best is not None and other is not None and decision.chosen == "gpt-5"
    weights = ScoreWeights()
    need = other.would_change
    assert need is not None and need.score_gap == pytest.approx(
        best.quality_score - other.quality_score
    )
    # Each figure named, moved alone, gives the runner-up exactly the leader's score.
    assert need.success_lower_bound is not None
    assert weights.score(
        need.success_lower_bound, other.avg_cost_usd, other.p95_latency_ms
    ) == pytest.approx(best.quality_score)
    assert need.avg_cost_usd is not None and need.avg_cost_usd < other.avg_cost_usd
    assert weights.score(
        other.success_lower_bound, need.avg_cost_usd, other.p95_latency_ms
    ) == pytest.approx(best.quality_score)
    assert "trails gpt-5 by" in need.text
    keep = best.would_change
    assert keep is not None and keep.p95_latency_ms is not None
    assert weights.score(
        best.success_lower_bound, best.avg_cost_usd, keep.p95_latency_ms
    ) == pytest.approx(other.quality_score)
    assert "would lose its place" in keep.text
    assert len(decision.what_would_change) == len(decision.candidates)


def test_what_would_change_names_the_calls_and_caps_still_needed(store: TelemetryStore) -> None:
    store.record_many(calls("gpt-5", 100))
    store.record_many(calls("claude-sonnet-4-5", 4, latency_ms=6000))
    decision = router(store).get_best_model("code-review", "analysis", max_latency_ms=5000)
    row = decision.candidate("claude-sonnet-4-5")
    assert row is not None and row.would_change is not None
    assert row.would_change.more_calls == 6
    assert "needs 6 more calls" in row.would_change.text
    assert "p95 must fall to 5,000 ms" in row.would_change.text


def test_decision_json_has_the_documented_keys(store: TelemetryStore) -> None:
    store.record_many(calls("gpt-5", 50))
    doc = router(store).get_best_model("code-review", "analysis", max_cost=0.5).as_dict()
    assert {"workflow", "stage", "chosen", "tier", "reason", "fallback", "constraints"} <= set(doc)
    assert doc["constraints"]["max_cost_usd"] == 0.5
    for candidate in doc["candidates"]:
        assert {
            "model",
            "provider",
            "tier",
            "calls",
            "success_rate",
            "success_lower_bound",
            "p50_latency_ms",
            "p95_latency_ms",
            "avg_cost_usd",
            "quality_score",
            "eligible",
            "rejected_because",
        } <= set(candidate)
    assert doc["candidates"][0]["model"] == "gpt-5"
    assert doc["candidates"][0]["provider"] == "openai"


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"max_cost": -0.01}, "--max-cost"),
        ({"max_latency_ms": -1}, "--max-latency"),
        ({"min_success_rate": 1.5}, "--min-success"),
        ({"min_success_rate": -0.1}, "--min-success"),
        ({"days": 0}, "--days"),
        ({"max_cost": math.nan}, "--max-cost"),
    ],
)
def test_bad_overrides_are_usage_errors_naming_the_flag(
    store: TelemetryStore, kwargs: dict[str, float], flag: str
) -> None:
    with pytest.raises(UsageError) as caught:
        router(store).get_best_model("w", "analysis", **kwargs)  # type: ignore[arg-type]
    assert flag in str(caught.value)
    assert caught.value.exit_code == 2


def test_stage_tiers_built_in_configured_and_default(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    settings = RoutingSettings.from_config(
        {"routing": {"default_tier": "premium", "stages": {"Triage": "capable", "lint": "CHEAP"}}},
        path,
    )
    assert settings.tier_of_stage("triage") == "capable"
    assert settings.tier_of_stage("lint") == "cheap"
    assert settings.tier_of_stage("classify") == "cheap"
    assert settings.tier_of_stage("review") == "capable"
    assert settings.tier_of_stage("architecture") == "premium"
    assert settings.tier_of_stage("something-new") == "premium"
    assert RoutingSettings().tier_of_stage("something-new") == "capable"


def test_settings_are_read_from_config(tmp_path: Path) -> None:
    settings = RoutingSettings.from_config(
        {
            "routing": {
                "window_days": 14,
                "min_calls": 25,
                "min_success_rate": 0.9,
                "max_latency_ms": 3000,
                "half_life_days": 0,
                "explore": False,
                "explore_share": 0.05,
                "explore_half_life_hours": 12,
                "score": {"cost_weight": 8.0},
            }
        },
        tmp_path / "config.toml",
    )
    assert (settings.window_days, settings.min_calls, settings.min_success_rate) == (14, 25, 0.9)
    assert settings.max_latency_ms == 3000 and settings.max_cost_usd is None
    assert settings.half_life_days is None
    assert settings.explore is False and settings.explore_share == 0.05
    assert settings.explore_half_life_hours == 12
    assert settings.weights.cost_weight == 8.0


@pytest.mark.parametrize(
    ("routing", "key"),
    [
        ({"window_days": 0}, "routing.window_days"),
        ({"min_calls": 2.5}, "routing.min_calls"),
        ({"min_success_rate": 1.2}, "routing.min_success_rate"),
        ({"max_cost_usd": -1}, "routing.max_cost_usd"),
        ({"explore_share": "lots"}, "routing.explore_share"),
        ({"explore_half_life_hours": 0}, "routing.explore_half_life_hours"),
        ({"explore": "yes"}, "routing.explore"),
        ({"default_tier": "gold"}, "routing.default_tier"),
        ({"stages": {"triage": "fast"}}, "routing.stages.triage"),
        ({"score": {"cost_weight": -2}}, "routing.score.cost_weight"),
    ],
)
def test_invalid_settings_name_file_key_and_value(
    tmp_path: Path, routing: dict[str, object], key: str
) -> None:
    path = tmp_path / "config.toml"
    with pytest.raises(ConfigError) as caught:
        RoutingSettings.from_config({"routing": routing}, path)
    message = str(caught.value)
    assert str(path) in message and key in message
    assert caught.value.exit_code == 2


def test_from_workspace_reads_routing_settings(tmp_path: Path) -> None:
    from attune_cli.core.paths import Paths
    from attune_cli.core.workspace import Workspace

    paths = Paths(config_dir=tmp_path, data_dir=tmp_path)
    paths.config_file.write_text('[routing]\nmin_calls = 3\n[routing.stages]\nanalysis = "cheap"\n')
    workspace = Workspace.load(paths)
    with TelemetryStore(paths.telemetry_db) as opened:
        built = AdaptiveModelRouter.from_workspace(
            workspace, opened, environ={"ANTHROPIC_API_KEY": "sk-ant-test"}
        )
        assert built.settings.min_calls == 3
        assert built.default_tier("analysis") == "cheap"
        assert built.get_best_model(None, "analysis").chosen == "claude-haiku-4-5"
        # No key at all: nothing is callable, so nothing is chosen.
        keyless = AdaptiveModelRouter.from_workspace(workspace, opened, environ={})
        assert keyless.get_best_model(None, "analysis").chosen is None


def test_an_outage_counts_only_while_it_is_recent(store: TelemetryStore) -> None:
    store.record_many(calls("gpt-5", 200, days_ago=2.0))
    store.record_many(calls("claude-sonnet-4-5", 200, failures=10, days_ago=2.0))
    # gpt-5's provider was down an hour ago: 30 refused attempts, all 503s.
    outage = calls("gpt-5", 30, failures=30, failure_status=503, days_ago=1 / 24, spread_days=0.01)
    store.record_many(outage)
    during = router(store).get_best_model("code-review", "analysis")
    down = during.candidate("gpt-5")
    assert down is not None and down.demoted
    assert down.ruled_out_by(Reason.DOWN)  # its newest calls are outages in a row
    assert during.chosen == "claude-sonnet-4-5"
    assert down.not_counted_text is None  # every outage failure is recent: they all count

    # Seven hours later (past the 6-hour outage memory) the same rows say nothing any more.
    later = AdaptiveModelRouter(store, REGISTRY, RoutingSettings(), clock=lambda: NOW + 7 * 3600)
    after = later.get_best_model("code-review", "analysis")
    recovered = after.candidate("gpt-5")
    assert recovered is not None and not recovered.demoted
    assert recovered.calls == 230 and recovered.counted_calls == 200
    assert recovered.success_rate == 1.0
    assert after.chosen == "gpt-5"
    assert recovered.not_counted_text == (
        "30 outage failures older than the outage memory not counted"
    )
    as_json = recovered.as_dict()
    assert as_json["failures"] == {
        "quality": 0,
        "outage": 30,
        "outage_counted": 0,
        "rate_limit": 0,
        "caller_error": 0,
    }


def test_rate_limits_and_refused_requests_never_count_against_a_model(
    store: TelemetryStore,
) -> None:
    store.record_many(calls("gpt-5", 100, failures=40, failure_status=429, days_ago=0.01))
    store.record_many(calls("gpt-5", 50, failures=25, failure_status=400, days_ago=0.02))
    row = router(store).get_best_model("code-review", "analysis").candidate("gpt-5")
    assert row is not None
    assert row.calls == 150 and row.counted_calls == 85
    assert row.success_rate == 1.0 and not row.demoted and row.eligible
    assert row.not_counted_text == "40 rate limits and 25 caller errors not counted"


def test_quality_failures_keep_the_long_memory(store: TelemetryStore) -> None:
    store.record_many(calls("gpt-5", 100, failures=40, days_ago=5.0))
    row = router(store).get_best_model("code-review", "analysis").candidate("gpt-5")
    assert row is not None and row.counted_calls == 100 and row.success_rate == 0.6


def test_outage_memory_is_a_setting(store: TelemetryStore) -> None:
    store.record_many(calls("gpt-5", 100, days_ago=3.0))
    store.record_many(
        calls("gpt-5", 20, failures=20, failure_status=503, days_ago=0.5, spread_days=0.01)
    )
    short = router(store).get_best_model("code-review", "analysis").candidate("gpt-5")
    long = (
        router(store, outage_memory_hours=24.0)
        .get_best_model("code-review", "analysis")
        .candidate("gpt-5")
    )
    assert short is not None and long is not None
    assert short.counted_calls == 100 and long.counted_calls == 120
    assert long.demoted and not short.demoted
