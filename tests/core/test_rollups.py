"""Hourly rollups: kept with the rows, equal to a recomputation, and the figures routing reads."""

from __future__ import annotations

import math
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from attune_cli.core.performance import ScoreWeights
from attune_cli.core.telemetry import db, rollups
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore
from attune_cli.core.telemetry.store import Backend, mask_url, store_location

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, an hour's start
HOUR = 3600.0
DAY = 86_400.0
WEIGHTS = ScoreWeights()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + 40 * DAY)


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> TelemetryStore:
    with TelemetryStore(tmp_path / "telemetry.db", clock=clock) as opened:
        yield opened


def call(ts: float, model: str = "m", *, success: bool = True, **fields: object) -> CallRecord:
    values: dict[str, object] = {"workflow": "wf", "stage": "st"}
    values.update(fields)
    return CallRecord(model=model, success=success, ts=ts, **values)  # type: ignore[arg-type]


def figures(store: TelemetryStore, **kwargs: object) -> dict[str, object]:
    options: dict[str, object] = {"workflow": "wf", "stage": "st", "since_ts": None}
    options.update(kwargs)
    return {p.model: p for p in store.model_performance(weights=WEIGHTS, **options)}  # type: ignore[arg-type]


def exact_rank(values: list[float], percent: int) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(len(ordered) * percent / 100) - 1]


def test_percentiles_read_from_rollups_are_within_five_percent_of_exact(
    store: TelemetryStore,
) -> None:
    rng = random.Random(11)
    latencies = [rng.lognormvariate(6.5, 0.8) for _ in range(5000)]
    # Spread over 30 days that lie wholly in the past: every hour is read from rollups.
    store.record_many(
        call(T0 + i * (30 * DAY / 5000), latency_ms=v) for i, v in enumerate(latencies)
    )
    got = figures(store)["m"]
    for percent, value in ((50, got.p50_latency_ms), (95, got.p95_latency_ms)):
        exact = exact_rank(latencies, percent)
        assert value is not None
        assert abs(value - exact) / exact < 0.05, (percent, value, exact)


def test_counts_from_rollups_equal_a_plain_count_with_a_window_cut_mid_hour(
    store: TelemetryStore, clock: Clock
) -> None:
    rng = random.Random(5)
    calls = [
        call(
            T0 + rng.uniform(0, 35 * DAY),
            rng.choice(["a", "b"]),
            success=rng.random() < 0.7,
            status=rng.choice([None, 500, 429, 400]),
            cost_usd=rng.choice([None, 0.01, 0.02]),
            latency_ms=rng.uniform(10, 2000),
        )
        for _ in range(3000)
    ]
    store.record_many(calls)
    since = clock.now - 20 * DAY - 1234.5  # cuts an hour: its rows are read exactly
    outage_since = clock.now - 3 * DAY - 77.0
    got = figures(store, since_ts=since, outage_since_ts=outage_since)
    for model in ("a", "b"):
        mine = [c for c in calls if c.model == model and (c.ts or 0) >= since]
        outages = [
            c
            for c in mine
            if not c.success and c.failure_class is not None and c.failure_class.value == "outage"
        ]
        assert got[model].calls == len(mine)
        assert got[model].successes == sum(c.success for c in mine)
        assert got[model].outage_failures == len(outages)
        assert got[model].outage_failures_counted == sum(
            1 for c in outages if (c.ts or 0) >= outage_since
        )
        costs = [c.cost_usd for c in mine if c.cost_usd is not None]
        assert got[model].avg_cost_usd == pytest.approx(sum(costs) / len(costs))
        assert got[model].newest_outage_ts == pytest.approx(max(c.ts or 0 for c in outages))


def test_recency_weights_of_old_hours_are_taken_at_the_middle_of_the_hour(
    store: TelemetryStore, clock: Clock
) -> None:
    old = T0 + 10 * DAY + 600  # ten minutes into an hour long past
    store.record(call(old))
    got = figures(store, half_life_s=DAY)["m"]
    middle = rollups.hour_of(old) + HOUR / 2
    assert got.weighted_calls == pytest.approx(0.5 ** ((clock.now - middle) / DAY))
    exact = 0.5 ** ((clock.now - old) / DAY)
    assert got.weighted_calls == pytest.approx(exact, rel=0.02)


def test_rollups_equal_their_recomputation_after_record_import_duplicates_and_prune(
    store: TelemetryStore, clock: Clock
) -> None:
    batch = [
        call(
            T0 + i * 97.0,
            "m" if i % 3 else "n",
            success=i % 7 != 0,
            latency_ms=float(i % 900),
            key=f"k{i}",
        )
        for i in range(2000)
    ]
    assert store.record_many(batch) == 2000
    assert store.record_many(batch[:500]) == 0  # duplicates add nothing, to rows or rollups
    store.record(call(T0 + 5.0, status=503, success=False))
    report = store.verify()
    assert report.ok and report.rollups > 40
    store.prune(T0 + 30 * HOUR + 1800.0)  # mid-hour: that hour is recounted from its rows
    assert store.verify().ok
    assert figures(store)["m"].calls == store.count(None) - figures(store)["n"].calls


def test_the_daily_histogram_of_whole_days_and_the_hours_around_them_equal_the_hourly_one(
    store: TelemetryStore,
) -> None:
    from attune_cli.core.telemetry.sqlite import _HISTOGRAM, _histogram_ranges

    rng = random.Random(3)
    store.record_many(
        call(T0 - DAY + i * 173.0, latency_ms=rng.lognormvariate(6, 0.7)) for i in range(3000)
    )
    assert store.verify().ok  # the daily table equals its recomputation from the rows too
    start, hour = int(T0), int(HOUR)
    for first, last in (
        (start + 5 * hour, start + 3 * 24 * hour + 7 * hour),  # days inside, hours both sides
        (start, start + 2 * 24 * hour),  # whole days only
        (start + 3 * hour, start + 20 * hour),  # no whole day
        (rollups.UNBOUNDED_HOUR, start + 30 * hour),  # from the beginning
    ):
        hourly = store.conn.execute(
            "SELECT bucket, SUM(calls), TOTAL(latency_ms) FROM rollup_latency WHERE "
            "workflow = 'wf' AND stage = 'st' AND model = 'm' AND hour >= ? AND hour < ? "
            "GROUP BY bucket",
            (first, last),
        ).fetchall()
        mixed = store.conn.execute(
            _HISTOGRAM, ("wf", "st", "m", *_histogram_ranges(first, last))
        ).fetchall()
        assert len(hourly) > 10
        assert {b: n for b, n, _ in mixed} == {b: n for b, n, _ in hourly}
        totals = {b: t for b, _, t in hourly}
        assert all(t == pytest.approx(totals[b]) for b, _, t in mixed)


def test_verify_finds_a_deliberately_corrupted_rollup(store: TelemetryStore) -> None:
    store.record_many(call(T0 + i * 600.0, latency_ms=100.0) for i in range(30))
    assert store.verify().ok
    store.conn.execute("UPDATE rollups SET calls = calls + 1 WHERE hour = ?", (T0 + 2 * HOUR,))
    store.conn.execute("DELETE FROM rollup_latency WHERE hour = ?", (T0 + 3 * HOUR,))
    report = store.verify()
    assert not report.ok
    assert report.total_differences == 2
    by_table = {d.table: d for d in report.differences}
    assert by_table["rollups"].key[3] == T0 + 2 * HOUR
    assert by_table["rollups"].stored[0] == by_table["rollups"].expected[0] + 1
    assert by_table["rollup_latency"].stored is None


def test_a_store_from_before_rollups_gets_them_built_on_open(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for number in range(2):
        for statement in db.MIGRATIONS[number].split(";"):
            if statement.strip():
                conn.execute(statement)
    conn.executemany(
        "INSERT INTO calls (ts, workflow, stage, model, success, latency_ms, import_key) "
        "VALUES (?, 'wf', 'st', 'm', ?, ?, ?)",
        [(T0 + i * 60.0, i % 4 != 0, 100.0 + i, f"k{i}") for i in range(500)],
    )
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    with TelemetryStore(path, clock=Clock(T0 + 40 * DAY)) as store:
        assert store.schema_version() == db.SCHEMA_VERSION
        assert store.verify().ok
        got = figures(store)["m"]
        assert (got.calls, got.successes) == (500, 375)


def test_a_window_reads_rollups_for_whole_hours_and_rows_only_at_its_edges() -> None:
    now = T0 + 10 * HOUR + 100
    plan = rollups.WindowPlan.of(T0 + 1800, now, T0 + 5 * HOUR + 60)
    assert plan.row_ranges == (
        (T0 + 1800, T0 + HOUR),
        (T0 + 5 * HOUR, T0 + 6 * HOUR),
        (T0 + 10 * HOUR, math.inf),
    )
    assert plan.rollup_ranges == ((T0 + HOUR, T0 + 5 * HOUR), (T0 + 6 * HOUR, T0 + 10 * HOUR))


def test_store_urls_never_show_a_password(tmp_path: Path) -> None:
    assert mask_url("postgresql://team:s3cr%40t@db:5432/attune") == (
        "postgresql://team:***@db:5432/attune"
    )
    assert mask_url("postgresql://db/attune?user=a&password=hunter2") == (
        "postgresql://db/attune?user=a&password=***"
    )
    from attune_cli.core.workspace import Workspace

    workspace = Workspace.load()
    chosen = store_location(workspace, {"ATTUNE_STORE_URL": "postgresql://u:pw@h/db"})
    assert chosen.backend is Backend.POSTGRES and "pw" not in chosen.shown
    assert store_location(workspace, {}).backend is Backend.SQLITE


def test_plan_covered_cost_is_kept_apart_from_rows_and_rollups_alike(
    store: TelemetryStore, clock: Clock
) -> None:
    now = clock.now
    # Whole hours a day ago come from the rollups; the current hour from the rows.
    for ts in (now - DAY, now - DAY + 60, now - 30):
        store.record(call(ts, cost_usd=0.25, billing="subscription"))
        store.record(call(ts + 1, cost_usd=0.5, billing="api"))
        store.record(call(ts + 2, cost_usd=1.0))  # imported or recorded by hand: unknown

    got = figures(store, since_ts=now - 2 * DAY)["m"]

    assert got.plan_covered_usd == pytest.approx(0.75)
    assert got.cost_usd == pytest.approx(5.25)
    document = got.as_dict()
    assert document["plan_covered_usd"] == pytest.approx(0.75)
    assert document["pay_per_token_usd"] == pytest.approx(4.5)
    assert store.verify().ok
    totals = {t.billing: t for t in store.billing_totals(now - 3600)}
    assert totals["subscription"].cost_usd == pytest.approx(0.25)
    assert (totals["api"].calls, totals[None].calls) == (1, 1)


def test_a_store_from_before_billing_gets_the_column_and_stays_verified(tmp_path: Path) -> None:
    path = tmp_path / "telemetry.db"
    with TelemetryStore(path, clock=Clock(T0 + DAY)) as old:
        old.record(call(T0 + 60, cost_usd=0.5))
    conn = sqlite3.connect(path, isolation_level=None)
    # Back to schema 5: what the later migrations (billing, then spend) added goes.
    later = conn.execute(
        "SELECT type, name FROM sqlite_master WHERE name LIKE 'rollups_spend_%' "
        "OR name LIKE 'spend_%' OR name IN ('budget_reservations', 'rollups_hour') "
        "ORDER BY type = 'trigger' DESC, type = 'index' DESC"
    ).fetchall()
    assert later, "schema 7's spend tables were expected"
    for kind, name in later:
        if not name.startswith("sqlite_autoindex"):
            conn.execute(f"DROP {kind.upper()} IF EXISTS {name}")
    conn.execute("ALTER TABLE calls DROP COLUMN billing")
    conn.execute("ALTER TABLE rollups DROP COLUMN plan_cost_usd")
    conn.execute("PRAGMA user_version = 5")
    conn.close()

    with TelemetryStore(path, clock=Clock(T0 + DAY)) as store:
        store.record(call(T0 + 120, cost_usd=0.25, billing="subscription"))
        assert store.schema_version() == db.SCHEMA_VERSION == 7
        assert store.verify().ok
        got = figures(store)["m"]
        assert (got.calls, got.plan_covered_usd) == (2, pytest.approx(0.25))
        assert [c.billing for c in store.recent_calls(workflow=None, stage=None)] == [
            "subscription",
            None,
        ]


def test_a_store_from_before_spend_fills_its_plan_covered_cost_from_the_rollups(
    tmp_path: Path,
) -> None:
    """Migration 7 builds the spend tables from the existing rollups, the plan-covered cost
    with the rest."""
    path = tmp_path / "telemetry.db"
    with TelemetryStore(path, clock=Clock(T0 + DAY)) as old:
        old.record(call(T0 + 60, cost_usd=0.25, billing="subscription"))
        old.record(call(T0 + 90, cost_usd=0.5, billing="api"))
        old.record(call(T0 + 2 * HOUR, cost_usd=2.0, billing="subscription"))
    conn = sqlite3.connect(path, isolation_level=None)
    # Back to schema 6: what the spend migration added goes.
    later = conn.execute(
        "SELECT type, name FROM sqlite_master WHERE name LIKE 'rollups_spend_%' "
        "OR name LIKE 'spend_%' OR name IN ('budget_reservations', 'rollups_hour') "
        "ORDER BY type = 'trigger' DESC, type = 'index' DESC"
    ).fetchall()
    for kind, name in later:
        if not name.startswith("sqlite_autoindex"):
            conn.execute(f"DROP {kind.upper()} IF EXISTS {name}")
    conn.execute("PRAGMA user_version = 6")
    conn.close()

    with TelemetryStore(path, clock=Clock(T0 + DAY)) as store:
        assert store.schema_version() == db.SCHEMA_VERSION == 7
        for table in rollups.SPEND_TABLES:
            kept = store.conn.execute(f"SELECT SUM(plan_cost_usd), SUM(cost_usd) FROM {table}")
            assert kept.fetchone() == (2.25, 2.75), table
        cells = store.spend_cells(T0, T0 + DAY)
        assert [(c.calls, c.cost_usd, c.plan_cost_usd) for c in cells] == [(3, 2.75, 2.25)]
        assert store.verify().ok


def _work_of(read: Callable[[], object], store: TelemetryStore) -> int:
    """SQLite virtual-machine steps (in hundreds) that ``read`` costs."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    store.conn.set_progress_handler(count, 100)
    try:
        read()
    finally:
        store.conn.set_progress_handler(None, 0)
    return steps[0]


def test_a_windows_figures_cost_the_same_whatever_history_lies_before_it(
    tmp_path: Path, clock: Clock
) -> None:
    """The window's hours are read, not the stage's whole history (issue 11: cost flat in
    history size), for routing's figures and for ``route simulate``'s hours; and recording a
    call adds only that call to the rollups. Counted in SQLite's steps, so a busy machine
    cannot change the answer."""

    def hourly_calls(first_day: float) -> list[CallRecord]:
        return [
            call(T0 + first_day * DAY + hour * HOUR + 60, model, latency_ms=100 + hour % 7)
            for hour in range(int((40 - first_day) * 24))
            for model in ("m1", "m2", "m3")
        ]

    window_start = int(T0 + 10 * DAY)
    work: dict[str, tuple[int, int, int]] = {}
    for name, first_day in (("window only", 10.0), ("a year before it too", -325.0)):
        with TelemetryStore(tmp_path / f"{name}.db", clock=clock) as store:
            store.record_many(hourly_calls(first_day))
            work[name] = (
                _work_of(lambda: figures(store, since_ts=window_start, half_life_s=3 * DAY), store),
                _work_of(
                    lambda: store.stage_hours("wf", "st", window_start, int(T0 + 40 * DAY)), store
                ),
                _work_of(lambda: store.record(call(T0 + 40 * DAY - 30, "m1")), store),
            )
    small, large = work["window only"], work["a year before it too"]
    assert min(small) > 0
    assert large[0] <= 1.3 * small[0], work
    assert large[1] <= 1.3 * small[1], work
    assert large[2] <= 1.3 * small[2], work
