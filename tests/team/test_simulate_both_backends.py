"""`route simulate` on a known history, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from attune_cli.core.errors import UsageError
from attune_cli.core.performance import ScoreWeights
from attune_cli.core.registry import load_registry
from attune_cli.core.routing.settings import RoutingSettings
from attune_cli.core.routing.simulate import parse_score_weights, simulate
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

HOUR = 3600
END = 1_799_971_200  # a whole hour
NOW = END + 1800.0
REGISTRY = load_registry({}, Path("config.toml"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TelemetryStore]:
    if request.param == "sqlite":
        opened = TelemetryStore(tmp_path / "telemetry.db", clock=lambda: NOW)
    else:
        from attune_cli.core.telemetry.postgres import PostgresCallStore

        opened = PostgresCallStore(request.getfixturevalue("pg_url"), clock=lambda: NOW)
    with opened:
        calls = []
        for hour in range(END - 48 * HOUR, END, HOUR):
            # model-a: 12 calls an hour at $0.10, one failing; model-b: 8 at $0.001.
            calls += [
                CallRecord(
                    "w",
                    "s",
                    "model-a",
                    i != 0,
                    ts=hour + i,
                    cost_usd=0.10,
                    latency_ms=900.0,
                    error_kind=None if i else "bad_answer",
                )
                for i in range(12)
            ]
            calls += [
                CallRecord(
                    "w", "s", "model-b", True, ts=hour + 100 + i, cost_usd=0.001, latency_ms=300.0
                )
                for i in range(8)
            ]
        opened.record_many(calls)
        yield opened


def test_a_cost_cap_replayed_hour_by_hour(store: TelemetryStore) -> None:
    settings = replace(RoutingSettings(), window_days=2, max_cost_usd=0.01)
    result = simulate(store, REGISTRY, settings, workflow="w", stage="s", days=1, now=NOW)
    assert result.hours == 24
    assert result.chosen == {"model-b": 24 * 20}
    assert result.actual.cost_usd == pytest.approx(24 * (12 * 0.10 + 8 * 0.001))
    assert result.proposed.cost_usd == pytest.approx(24 * 20 * 0.001)
    assert result.actual.success_rate == pytest.approx(19 / 20)
    assert result.proposed.success_rate == pytest.approx(1.0)
    assert result.proposed.p95_latency_ms == pytest.approx(300.0)
    assert result.actual.p95_latency_ms == pytest.approx(900.0)
    assert result.hours_disagreeing == 24 and len(result.disagreements) == 5
    document = result.as_dict()
    assert document["difference"]["cost_usd"] == pytest.approx(
        24 * 20 * 0.001 - 24 * (12 * 0.10 + 8 * 0.001)
    )
    assert document["disagreements"][0]["actual_model"] == "model-a"
    assert "not a counterfactual truth" in document["estimate"]


def test_only_the_history_before_each_hour_is_used(store: TelemetryStore) -> None:
    """With the replay covering the whole history, the first hour has none before it and the
    second too little (8 calls of model-b, under min_calls): routing falls back to the
    registry's model of the stage's tier there, priced from the registry, its success
    unknown. From the third hour on model-b qualifies."""
    settings = replace(RoutingSettings(), window_days=1, max_cost_usd=0.01, min_calls=10)
    result = simulate(store, REGISTRY, settings, workflow="w", stage="s", days=2, now=NOW)
    assert result.hours == 48
    assert result.chosen == {"model-b": 46 * 20, "gpt-5": 2 * 20}
    assert result.unknown_calls == 40
    assert result.actual.calls == 48 * 20
    assert result.proposed.judged_calls == 46 * 20


def test_score_weights_parse() -> None:
    weights = parse_score_weights("cost=8, latency=0.5", ScoreWeights())
    assert (weights.cost_weight, weights.latency_weight, weights.success_weight) == (8, 0.5, 100)
    for bad in ("cost", "speed=1", "cost=-1", "cost=nan"):
        with pytest.raises(UsageError) as raised:
            parse_score_weights(bad, ScoreWeights())
        assert "--score-weights" in raised.value.message
