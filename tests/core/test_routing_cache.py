"""PerformanceCache: a stage's figures reused for a moment by a process that routes many calls."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from helpers.routing import NOW, REGISTRY, calls

from attune_cli.core.performance import ModelPerformance
from attune_cli.core.routing import AdaptiveModelRouter, RoutingSettings
from attune_cli.core.routing.cache import PerformanceCache
from attune_cli.core.telemetry.sqlite import TelemetryStore


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class CountingStore(TelemetryStore):
    """A store that counts how often the router reads a stage's figures."""

    reads = 0

    def model_performance(self, **kwargs: object) -> list[ModelPerformance]:  # type: ignore[override]
        self.reads += 1
        return super().model_performance(**kwargs)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CountingStore]:
    with CountingStore(tmp_path / "telemetry.db", clock=lambda: NOW) as opened:
        yield opened


def routed(store: TelemetryStore, cache: PerformanceCache | None) -> AdaptiveModelRouter:
    return AdaptiveModelRouter(store, REGISTRY, RoutingSettings(), clock=lambda: NOW, cache=cache)


def test_figures_are_read_once_per_ttl_and_decide_the_same(store: CountingStore) -> None:
    store.record_many(calls("claude-sonnet-4-5", 300, failures=6, cost_usd=0.01))
    store.record_many(calls("gpt-5", 300, failures=30, cost_usd=0.005))
    clock = Clock()
    cache = PerformanceCache(ttl_s=1.0, clock=clock)
    uncached = routed(store, None).get_best_model("code-review", "analysis")
    assert store.reads == 1
    first = routed(store, cache).get_best_model("code-review", "analysis")
    clock.now += 0.5
    second = routed(store, cache).get_best_model("code-review", "analysis")
    assert store.reads == 2  # the second decision reused the first one's figures
    assert first.chosen == second.chosen == uncached.chosen == "claude-sonnet-4-5"
    assert first.candidates == uncached.candidates
    clock.now += 0.5
    routed(store, cache).get_best_model("code-review", "analysis")
    assert store.reads == 3  # a second old: read again


def test_new_history_is_seen_once_the_figures_expire(store: CountingStore) -> None:
    store.record_many(calls("claude-sonnet-4-5", 300, cost_usd=0.01))
    clock = Clock()
    cache = PerformanceCache(ttl_s=1.0, clock=clock)
    assert routed(store, cache).get_best_model("code-review", "analysis").chosen == (
        "claude-sonnet-4-5"
    )
    # The model starts failing every call: within the second, the kept figures still rank it.
    store.record_many(calls("claude-sonnet-4-5", 600, failures=600, days_ago=0.1, spread_days=0.05))
    store.record_many(calls("gpt-5", 300, cost_usd=0.005))
    kept = routed(store, cache).get_best_model("code-review", "analysis")
    assert kept.chosen == "claude-sonnet-4-5"
    clock.now += 1.0
    fresh = routed(store, cache).get_best_model("code-review", "analysis")
    assert fresh.chosen == "gpt-5"


def test_stages_and_settings_are_kept_apart(store: CountingStore) -> None:
    store.record_many(calls("claude-sonnet-4-5", 300, cost_usd=0.01))
    store.record_many(calls("gpt-5", 300, cost_usd=0.005, stage="triage"))
    cache = PerformanceCache(clock=Clock())
    analysis = routed(store, cache).get_best_model("code-review", "analysis")
    triage = routed(store, cache).get_best_model("code-review", "triage")
    assert (analysis.chosen, triage.chosen) == ("claude-sonnet-4-5", "gpt-5")
    narrow = AdaptiveModelRouter(
        store, REGISTRY, RoutingSettings(window_days=1), clock=lambda: NOW, cache=cache
    )
    narrow.get_best_model("code-review", "analysis")
    assert store.reads == 3


def test_a_caller_cannot_change_the_kept_figures() -> None:
    cache = PerformanceCache(clock=Clock())
    perf = cast(ModelPerformance, object())
    got = cache.get("k", lambda: [perf])
    got.clear()
    assert cache.get("k", lambda: []) == [perf]


def test_the_cache_does_not_grow_with_the_names_callers_send() -> None:
    clock = Clock()
    cache = PerformanceCache(ttl_s=1.0, clock=clock, max_entries=8)
    for i in range(100):
        cache.get(f"stage-{i}", list)
        clock.now += 0.01
    assert len(cache._entries) <= 8
    reads: list[str] = []

    def read() -> list[ModelPerformance]:
        reads.append("stage-99")
        return []

    cache.get("stage-99", read)
    assert reads == []  # the newest entry survived the pruning


def test_one_thread_reads_expired_figures_while_the_others_use_the_kept_ones() -> None:
    import threading

    clock = Clock()
    cache = PerformanceCache(ttl_s=1.0, clock=clock)
    old = [cast(ModelPerformance, "old")]
    new = [cast(ModelPerformance, "new")]
    cache.get("k", lambda: old)
    clock.now += 2.0
    reading, release = threading.Event(), threading.Event()

    def slow_read() -> list[ModelPerformance]:
        reading.set()
        release.wait(30)
        return new

    def never() -> list[ModelPerformance]:
        raise AssertionError("a second thread read the same figures at the same time")

    refresher = threading.Thread(target=cache.get, args=("k", slow_read))
    refresher.start()
    assert reading.wait(30)
    assert cache.get("k", never) == old  # not held up by the read in progress
    release.set()
    refresher.join(30)
    assert cache.get("k", never) == new
