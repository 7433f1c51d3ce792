"""The telemetry store: recording, the newest calls, and per-model figures over a window."""

from __future__ import annotations

import math
import random
import sqlite3
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attune_cli.core.errors import OperationError, StoreVersionError, UsageError
from attune_cli.core.performance import ScoreWeights
from attune_cli.core.registry import load_registry
from attune_cli.core.telemetry import db
from attune_cli.core.telemetry.records import (
    CallRecord,
    iso_to_ts,
    ts_to_iso,
    validate_label,
    with_registry_defaults,
)
from attune_cli.core.telemetry.sqlite import TelemetryStore

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
WEIGHTS = ScoreWeights()


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> TelemetryStore:
    with TelemetryStore(tmp_path / "data" / "telemetry.db", clock=clock) as opened:
        yield opened


def call(ts: float, model: str = "m", *, success: bool = True, **fields: object) -> CallRecord:
    values: dict[str, object] = {"workflow": "wf", "stage": "st"}
    values.update(fields)
    return CallRecord(model=model, success=success, ts=ts, **values)  # type: ignore[arg-type]


def perf(store: TelemetryStore, **kwargs: object) -> dict[str, object]:
    options: dict[str, object] = {"workflow": "wf", "stage": "st", "since_ts": None}
    options.update(kwargs)
    found = store.model_performance(weights=WEIGHTS, **options)  # type: ignore[arg-type]
    return {p.model: p for p in found}


# --- recording and reading back -------------------------------------------------------------


def test_the_store_file_is_private_and_a_recorded_call_reads_back(
    store: TelemetryStore, clock: Clock
) -> None:
    store.record(
        CallRecord(
            workflow="code-review",
            stage="analysis",
            model="claude-haiku-4-5",
            success=False,
            provider="anthropic",
            tier="cheap",
            error_kind="rate_limit",
            status=429,
            latency_ms=812.5,
            input_tokens=1200,
            output_tokens=0,
            cost_usd=0.0,
            attempt=2,
        )
    )
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    [got] = store.recent_calls(workflow=None, stage=None)
    assert got.as_dict() == {
        "ts": "2026-01-01T00:00:00.000Z",
        "workflow": "code-review",
        "stage": "analysis",
        "provider": "anthropic",
        "model": "claude-haiku-4-5",
        "tier": "cheap",
        "success": False,
        "error_kind": "rate_limit",
        "status": 429,
        "latency_ms": 812.5,
        "input_tokens": 1200,
        "output_tokens": 0,
        "cost_usd": 0.0,
        "attempt": 2,
        "source": "recorded",
        "billing": None,
        "failure_class": "rate_limit",
    }


def test_a_call_without_a_time_takes_the_store_clock_to_the_millisecond(
    store: TelemetryStore, clock: Clock
) -> None:
    clock.now = T0 + 12.3456789
    store.record(CallRecord("wf", "st", "m", True))
    [got] = store.recent_calls(workflow="wf", stage="st")
    assert got.ts == T0 + 12.346
    assert got.as_dict()["ts"] == "2026-01-01T00:00:12.346Z"


def test_recent_calls_are_newest_first_and_filtered(store: TelemetryStore) -> None:
    store.record_many(
        [
            call(T0 + 1, "a"),
            call(T0 + 5, "b"),
            call(T0 + 3, "a", stage="other"),
            call(T0 + 4, "a", workflow="w2"),
            call(T0 + 2, "a"),
        ]
    )
    times = [c.ts for c in store.recent_calls(workflow=None, stage=None)]
    assert times == [T0 + 5, T0 + 4, T0 + 3, T0 + 2, T0 + 1]
    assert [c.ts for c in store.recent_calls(workflow="wf", stage="st")] == [
        T0 + 5,
        T0 + 2,
        T0 + 1,
    ]
    assert [c.ts for c in store.recent_calls(workflow=None, stage=None, model="a")] == [
        T0 + 4,
        T0 + 3,
        T0 + 2,
        T0 + 1,
    ]
    assert [c.ts for c in store.recent_calls(workflow=None, stage="st", model="a")] == [
        T0 + 4,
        T0 + 2,
        T0 + 1,
    ]
    assert [c.ts for c in store.recent_calls(workflow="wf", stage=None, limit=2)] == [
        T0 + 5,
        T0 + 3,
    ]
    assert store.recent_calls(workflow="nope", stage=None) == []


def test_labels_list_known_names_by_prefix_for_completion(store: TelemetryStore) -> None:
    store.record(call(T0, "claude-haiku-4-5", workflow="code-review", stage="analysis"))
    store.record(call(T0, "gpt-5", workflow="bug-triage", stage="triage"))
    store.record_many([call(T0, "claude-opus-4-5", workflow="code-review", stage="draft")])
    assert store.labels("model") == ["claude-haiku-4-5", "claude-opus-4-5", "gpt-5"]
    assert store.labels("model", "claude") == ["claude-haiku-4-5", "claude-opus-4-5"]
    assert store.labels("workflow", "code") == ["code-review"]
    assert store.labels("stage") == ["analysis", "draft", "triage"]
    with pytest.raises(ValueError):
        store.labels("provider")


def test_record_many_adds_a_keyed_call_once(store: TelemetryStore) -> None:
    batch = [call(T0, key="k1"), call(T0, key="k2"), call(T0 + 1, key="k1")]
    assert store.record_many(batch) == 3
    assert store.record_many(batch) == 0
    assert store.count() == 3


def test_prune_deletes_old_calls_and_forgets_their_names(store: TelemetryStore) -> None:
    store.record(call(T0 - 100, "old-model", workflow="old-flow"))
    store.record(call(T0, "new-model"))
    assert store.count_before(T0 - 50) == 1
    assert store.prune(T0 - 50) == 1
    assert [c.model for c in store.recent_calls(workflow=None, stage=None)] == ["new-model"]
    assert store.labels("model") == ["new-model"]
    assert store.labels("workflow") == ["wf"]
    assert store.prune(T0 - 50) == 0


def test_a_store_from_a_newer_attune_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE calls (x)")
    raw.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    before = path.read_bytes()
    with pytest.raises(StoreVersionError, match="newer attune"):
        TelemetryStore(path)
    assert path.read_bytes() == before


def test_read_only_callers_do_not_create_a_store(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        TelemetryStore(tmp_path / "telemetry.db", create=False)
    assert not (tmp_path / "telemetry.db").exists()


def test_registry_defaults_fill_provider_tier_and_cost() -> None:
    registry = load_registry({}, Path("config.toml"))
    filled = with_registry_defaults(
        CallRecord("wf", "st", "claude-haiku-4-5", True, input_tokens=1_000_000, output_tokens=0),
        registry,
    )
    assert (filled.provider, filled.tier, filled.cost_usd) == ("anthropic", "cheap", 1.0)
    given_values = CallRecord("wf", "st", "claude-haiku-4-5", True, provider="proxy", cost_usd=0.5)
    assert with_registry_defaults(given_values, registry).provider == "proxy"
    assert with_registry_defaults(given_values, registry).cost_usd == 0.5
    unknown = with_registry_defaults(CallRecord("wf", "st", "llama3", True), registry)
    assert (unknown.provider, unknown.tier, unknown.cost_usd) == (None, None, None)


@pytest.mark.parametrize("value", ["", "   ", "a\nb"])
def test_names_given_by_a_person_must_be_printable(value: str) -> None:
    with pytest.raises(UsageError, match="--workflow"):
        validate_label("workflow", value)


# --- times -------------------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=4_102_444_800_000))
def test_iso_text_and_store_times_round_trip_exactly(millis: int) -> None:
    ts = millis / 1000
    text = ts_to_iso(ts)
    assert text.endswith("Z")
    assert iso_to_ts(text) == ts
    assert ts_to_iso(iso_to_ts(text)) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T00:00:00Z", T0),
        ("2026-01-01T00:00:00.5Z", T0 + 0.5),
        ("2026-01-01T00:00:01.123456Z", T0 + 1.123),
        ("2026-01-01T02:00:00+02:00", T0),
        ("2026-01-01 00:00:07.250000", T0 + 7.25),  # llm writes naive UTC times
    ],
)
def test_iso_times_in_the_shapes_logs_write(text: str, expected: float) -> None:
    assert iso_to_ts(text) == expected


@pytest.mark.parametrize(
    "text",
    ["yesterday", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-01T00:61:00Z"],
)
def test_impossible_times_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        iso_to_ts(text)


# --- per-model figures ----------------------------------------------------------------------


def test_figures_cover_every_call_of_the_window_not_the_newest_few(
    store: TelemetryStore,
) -> None:
    # 3,000 calls: far more than any "newest N" shortcut would read.
    store.record_many(
        call(T0 - i, "m", success=i % 10 != 0, latency_ms=float(i % 1000)) for i in range(3000)
    )
    figures = perf(store, since_ts=T0 - 2999)["m"]
    assert figures.calls == 3000
    assert figures.successes == 2700
    assert perf(store, since_ts=T0 - 999)["m"].calls == 1000


def test_percentiles_are_nearest_rank_over_recorded_latencies(store: TelemetryStore) -> None:
    latencies = list(range(1, 101))
    random.Random(3).shuffle(latencies)
    store.record_many(call(T0 + i, latency_ms=float(v)) for i, v in enumerate(latencies))
    store.record(call(T0 + 500))  # no latency recorded: not part of the percentiles
    figures = perf(store)["m"]
    assert figures.calls == 101
    assert (figures.p50_latency_ms, figures.p95_latency_ms) == (50.0, 95.0)


def test_average_cost_skips_calls_without_a_cost(store: TelemetryStore) -> None:
    store.record_many([call(T0, cost_usd=0.01), call(T0 + 1, cost_usd=0.03), call(T0 + 2)])
    assert perf(store)["m"].avg_cost_usd == pytest.approx(0.02)
    store.record(call(T0, "free"))
    assert perf(store)["free"].avg_cost_usd is None
    assert perf(store)["free"].p50_latency_ms is None


def test_recent_failures_look_at_the_newest_calls_not_the_oldest(store: TelemetryStore) -> None:
    # Old history is all failures; the newest 20 calls all worked.
    store.record_many(call(T0 + i, "recovered", success=i >= 30) for i in range(50))
    store.record_many(call(T0 + i, "degraded", success=i < 30) for i in range(50))
    figures = perf(store, recent_n=20)
    assert (figures["recovered"].recent_calls, figures["recovered"].recent_failures) == (20, 0)
    assert (figures["degraded"].recent_calls, figures["degraded"].recent_failures) == (20, 20)
    figures = perf(store, since_ts=T0 + 40, recent_n=20)
    assert figures["degraded"].recent_calls == 10


def test_recency_weights_halve_with_each_half_life(store: TelemetryStore, clock: Clock) -> None:
    clock.now = T0 + 200
    store.record_many([call(T0 + 200), call(T0 + 100, success=False), call(T0)])
    figures = perf(store, half_life_s=100.0)["m"]
    assert figures.weighted_calls == pytest.approx(1 + 0.5 + 0.25)
    assert figures.weighted_successes == pytest.approx(1 + 0.25)
    assert perf(store)["m"].weighted_calls is None


def test_exploring_memory_is_a_second_half_life_over_the_same_calls(
    store: TelemetryStore, clock: Clock
) -> None:
    clock.now = T0 + 200
    store.record_many([call(T0 + 200), call(T0 + 100, success=False), call(T0)])
    figures = perf(store, half_life_s=100.0, explore_half_life_s=50.0)["m"]
    assert figures.weighted_calls == pytest.approx(1 + 0.5 + 0.25)
    assert figures.explore_calls == pytest.approx(1 + 0.25 + 0.0625)
    assert figures.explore_successes == pytest.approx(1 + 0.0625)
    assert figures.newest_ts == T0 + 200
    assert perf(store)["m"].explore_calls is None


def test_provider_and_tier_come_from_the_newest_rows(store: TelemetryStore) -> None:
    store.record(call(T0, provider="old", tier="cheap"))
    store.record(call(T0 + 1, provider="proxy", tier="capable"))
    figures = perf(store)["m"]
    assert (figures.provider, figures.tier) == ("proxy", "capable")


def test_models_come_best_first_and_cheaper_wins_at_equal_success(
    store: TelemetryStore,
) -> None:
    for i in range(200):
        store.record(call(T0 + i, "dear", latency_ms=1000.0, cost_usd=0.03))
        store.record(call(T0 + i, "cheap", latency_ms=1000.0, cost_usd=0.0003))
    assert [
        p.model
        for p in store.model_performance(workflow="wf", stage="st", since_ts=None, weights=WEIGHTS)
    ] == ["cheap", "dear"]


def test_a_window_with_no_calls_has_no_figures(store: TelemetryStore) -> None:
    store.record(call(T0))
    assert perf(store, since_ts=T0 + 1) == {}
    assert perf(store, workflow="other") == {}


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_figures_match_a_plain_python_count_for_every_filter(tmp_path_factory, seed: int) -> None:
    rng = random.Random(seed)
    calls = [
        call(
            T0 + rng.randrange(0, 1000),
            rng.choice(["a", "b", "c"]),
            success=rng.random() < 0.8,
            workflow=rng.choice(["w1", "w2", "w3"]),
            stage=rng.choice(["s1", "s2"]),
            latency_ms=None if rng.random() < 0.1 else float(rng.randrange(1, 500)),
            cost_usd=None if rng.random() < 0.1 else rng.randrange(0, 100) / 1000,
        )
        for _ in range(rng.randrange(1, 150))
    ]
    path = tmp_path_factory.mktemp("store") / "telemetry.db"
    with TelemetryStore(path, clock=Clock(T0 + 1000)) as store:
        store.record_many(calls)
        for workflow in (None, "w1"):
            for stage in (None, "s2"):
                since = T0 + 300
                window = [
                    c
                    for c in calls
                    if c.ts is not None
                    and c.ts >= since
                    and workflow in (None, c.workflow)
                    and stage in (None, c.stage)
                ]
                got = perf(store, workflow=workflow, stage=stage, since_ts=since, recent_n=5)
                assert set(got) == {c.model for c in window}
                for model, figures in got.items():
                    mine = sorted((c for c in window if c.model == model), key=lambda c: c.ts or 0)
                    latencies = sorted(c.latency_ms for c in mine if c.latency_ms is not None)
                    costs = [c.cost_usd for c in mine if c.cost_usd is not None]
                    assert figures.calls == len(mine)
                    assert figures.successes == sum(c.success for c in mine)
                    assert figures.p50_latency_ms == _rank(latencies, 50)
                    assert figures.p95_latency_ms == _rank(latencies, 95)
                    if costs:
                        assert figures.avg_cost_usd == pytest.approx(sum(costs) / len(costs))
                    else:
                        assert figures.avg_cost_usd is None
                    newest = mine[-5:]
                    assert figures.recent_calls == len(newest)
                    # Ties in time make "newest" ambiguous; compare only when they cannot.
                    if len({c.ts for c in mine}) == len(mine):
                        assert figures.recent_failures == sum(not c.success for c in newest)


def _rank(values: list[float], percent: int) -> float | None:
    if not values:
        return None
    return values[math.ceil(len(values) * percent / 100) - 1]


def test_a_call_that_cannot_get_into_a_locked_store_is_spooled_and_added_by_the_next_write(
    store: TelemetryStore, tmp_path: Path
) -> None:
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    store.conn.execute("PRAGMA busy_timeout = 50")
    try:
        spooled = store.record(call(T0, key="waited"))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert spooled is not None
    assert "stayed locked" in str(spooled) and "spool.jsonl" in str(spooled)
    assert store.count() == 0
    assert store.spooled_rows() == 1
    assert store.record(call(T0 + 1)) is None
    assert store.count() == 2
    assert store.spooled_rows() == 0
    # Draining again (a drainer killed half-way, say) adds nothing twice.
    assert store.record_many([call(T0, key="waited")]) == 0
    assert store.verify().ok


def test_a_call_that_neither_the_store_nor_the_spool_can_take_is_a_clear_error(
    store: TelemetryStore, tmp_path: Path
) -> None:
    assert store.spool is not None
    store.spool.mkdir()  # the spool cannot be written: a folder is in its way
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    store.conn.execute("PRAGMA busy_timeout = 50")
    try:
        with pytest.raises(OperationError, match=r"stayed locked.*could not be spooled either"):
            store.record(call(T0))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.count() == 0


def test_a_large_batch_with_repeats_adds_each_call_once(store: TelemetryStore) -> None:
    batch = [call(T0 + i % 180, key=f"k{i % 180}") for i in range(450)]
    assert store.record_many(batch) == 180
    assert store.record_many(batch) == 0
    assert store.count() == 180


def test_reading_before_anything_was_recorded_creates_no_file(attune_home: Path) -> None:
    from attune_cli.core.workspace import Workspace

    workspace = Workspace.load()
    with TelemetryStore.open_for_reading(workspace) as store:
        figures = store.model_performance(
            workflow=None, stage="triage", since_ts=None, weights=ScoreWeights()
        )
    assert figures == []
    assert not attune_home.exists()


def test_reading_an_existing_store_sees_its_calls(attune_home: Path) -> None:
    from attune_cli.core.workspace import Workspace

    workspace = Workspace.load()
    with TelemetryStore.open(workspace) as store:
        store.record(CallRecord(workflow="w", stage="triage", model="gpt-5-mini", success=True))
    with TelemetryStore.open_for_reading(workspace) as store:
        figures = store.model_performance(
            workflow="w", stage="triage", since_ts=None, weights=ScoreWeights()
        )
    assert [(f.model, f.calls) for f in figures] == [("gpt-5-mini", 1)]


# --- an existing store gets its rollups in chunks ---------------------------------------------


def _version_2_store(path: Path, calls: int) -> None:
    """A store as attune wrote it before rollups (schema 2), holding ``calls`` calls."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = sqlite3.connect(path, isolation_level=None)
    for script in db.MIGRATIONS[:2]:
        raw.executescript(script)
    raw.execute("PRAGMA user_version = 2")
    raw.executemany(
        "INSERT INTO calls (ts, workflow, stage, provider, model, success, error_kind, status, "
        "latency_ms, cost_usd, import_key) VALUES (?, 'wf', ?, 'p', ?, ?, ?, ?, ?, 0.01, ?)",
        (
            (
                T0 + i * 61.7,
                f"st{i % 3}",
                f"m{i % 2}",
                int(i % 4 != 0),
                None if i % 4 else "server_error",
                None if i % 4 else 503,
                100.0 + i % 700,
                f"k{i}",
            )
            for i in range(calls)
        ),
    )
    raw.close()


def test_an_existing_store_gets_its_rollups_in_short_chunks_newest_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from attune_cli.core import hooks

    path = tmp_path / "data" / "telemetry.db"
    _version_2_store(path, 1_000)
    monkeypatch.setattr(db, "BACKFILL_ROWS", 150)
    seen: list[tuple[int, int]] = []
    monkeypatch.setattr(hooks, "backfill_progress", lambda done, total: seen.append((done, total)))
    with TelemetryStore(path) as store:
        assert not db.backfill_pending(store.conn)
        assert store.verify().ok
        assert store.rollup_hours() > 10
    assert [done for done, _ in seen] == [150, 300, 450, 600, 750, 900, 1000]
    assert {total for _, total in seen} == {1000}


def test_a_rollup_build_stopped_midway_goes_on_where_it_stopped_and_adds_no_row_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from attune_cli.core import hooks

    path = tmp_path / "data" / "telemetry.db"
    _version_2_store(path, 1_000)
    monkeypatch.setattr(db, "BACKFILL_ROWS", 200)

    def stop(done: int, total: int) -> None:
        if done >= 400:
            raise KeyboardInterrupt

    monkeypatch.setattr(hooks, "backfill_progress", stop)
    with pytest.raises(KeyboardInterrupt):
        TelemetryStore(path)
    monkeypatch.setattr(hooks, "backfill_progress", None)
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT next_id FROM rollup_backfill").fetchone() == (601,)
    raw.close()
    with TelemetryStore(path) as store:
        assert not db.backfill_pending(store.conn)
        store.record(call(T0 + 10, "m1", stage="st1"))
        assert store.count() == 1_001
        assert store.verify().ok
