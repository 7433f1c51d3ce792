"""Exploration: the challenger that could be best within the caps, with a traffic cap."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.routing import NOW, REGISTRY, calls

from attune_cli.core.routing import AdaptiveModelRouter, RoutingSettings
from attune_cli.core.telemetry.sqlite import TelemetryStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TelemetryStore]:
    with TelemetryStore(tmp_path / "telemetry.db", clock=lambda: NOW) as opened:
        # gpt-5 is well known and good; sonnet has only 5 calls, so its rate is uncertain (it
        # could beat gpt-5's); haiku is well known and bad.
        opened.record_many(calls("gpt-5", 1000, failures=40))
        opened.record_many(calls("claude-sonnet-4-5", 5))
        opened.record_many(calls("claude-haiku-4-5", 1000, failures=400))
        yield opened


def explorer(store: TelemetryStore, seed: int, **settings: object) -> AdaptiveModelRouter:
    return AdaptiveModelRouter(
        store,
        REGISTRY,
        RoutingSettings(**settings),  # type: ignore[arg-type]
        clock=lambda: NOW,
        rng=random.Random(seed),
    )


def choices(router: AdaptiveModelRouter, n: int, **kwargs: object) -> Counter[str]:
    return Counter(
        router.get_best_model("code-review", "analysis", **kwargs).chosen  # type: ignore[arg-type]
        for _ in range(n)
    )


def test_without_explore_the_choice_is_always_the_best(store: TelemetryStore) -> None:
    assert choices(explorer(store, 1, explore_share=1.0), 50) == Counter({"gpt-5": 50})


def test_explore_favours_the_uncertain_over_the_known_bad(store: TelemetryStore) -> None:
    picked = choices(explorer(store, 3, explore_share=0.3), 400, explore=True)
    assert picked["claude-sonnet-4-5"] > 20  # uncertain: drawn often
    assert picked["claude-haiku-4-5"] == 0  # known to fail 40 %: never worth a try
    assert picked["gpt-5"] >= 400 * 0.7  # the rest of the traffic stays on the best


def test_explore_share_caps_the_traffic_taken_from_the_best(store: TelemetryStore) -> None:
    picked = choices(explorer(store, 5, explore_share=0.1), 1000, explore=True)
    deviated = 1000 - picked["gpt-5"]
    # Each decision explores with probability 0.1: 100 of 1,000 on average (sd 9.5).
    assert 0 < deviated <= 130
    assert choices(explorer(store, 5, explore_share=0.0), 300, explore=True)["gpt-5"] == 300


def test_explored_decisions_say_so(store: TelemetryStore) -> None:
    router = explorer(store, 11, explore_share=1.0)
    decisions = [router.get_best_model("code-review", "analysis", explore=True) for _ in range(200)]
    explored = [d for d in decisions if d.explored]
    assert explored, "with share 1.0 some draws must pick the uncertain model"
    for d in explored:
        assert d.chosen != "gpt-5" and d.best == "gpt-5" and d.fallback is False
        assert d.reason.startswith("Exploring:")
        assert d.constraints["explore"] is True
    assert all(not d.explored for d in decisions if d.chosen == "gpt-5")


def test_capped_models_are_never_explored(store: TelemetryStore) -> None:
    store.record_many(calls("claude-opus-4-5", 3, latency_ms=9000))
    picked = choices(explorer(store, 2, explore_share=1.0), 300, explore=True, max_latency_ms=5000)
    assert picked["claude-opus-4-5"] == 0


def test_a_seed_makes_exploration_reproducible(store: TelemetryStore) -> None:
    first = [
        explorer(store, 42, explore_share=0.5)
        .get_best_model("code-review", "analysis", explore=True)
        .chosen
        for _ in range(1)
    ]
    a, b = explorer(store, 42, explore_share=0.5), explorer(store, 42, explore_share=0.5)
    seq_a = [a.get_best_model("code-review", "analysis", explore=True).chosen for _ in range(60)]
    seq_b = [b.get_best_model("code-review", "analysis", explore=True).chosen for _ in range(60)]
    assert seq_a == seq_b and seq_a[0] == first[0]
    assert len(set(seq_a)) > 1


def test_exploring_from_no_history_tries_the_tier_models(tmp_path: Path) -> None:
    with TelemetryStore(tmp_path / "empty.db", clock=lambda: NOW) as empty:
        router = explorer(empty, 9, explore_share=1.0)
        decisions = []
        for _ in range(40):
            decision = router.get_best_model("w", "analysis", explore=True)
            decisions.append(decision)
            assert decision.chosen is not None
            empty.record_many(calls(decision.chosen, 1, workflow="w"))
    # A model never tried could be anything: once one tier model has calls, the other is tried.
    assert {d.chosen for d in decisions} == {"claude-sonnet-4-5", "gpt-5"}
    assert all(not d.fallback for d in decisions)
