"""The CallStore contract on both backends: SQLite (the default) and PostgreSQL (the team store).

Each PostgreSQL test gets a schema of its own (``pg_url`` in conftest) and drops it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from attune_cli.core.performance import ScoreWeights
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

if TYPE_CHECKING:
    from attune_cli.core.telemetry.postgres import PostgresCallStore

NOW = 1_800_000_000.0


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.e2e)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TelemetryStore]:
    """The same store contract over each backend."""
    if request.param == "sqlite":
        opened = TelemetryStore(tmp_path / "telemetry.db", clock=lambda: NOW)
    else:
        from attune_cli.core.telemetry.postgres import PostgresCallStore

        opened = PostgresCallStore(request.getfixturevalue("pg_url"), clock=lambda: NOW)
    with opened:
        yield opened


def _rows(count: int, seed: int = 7) -> list[tuple[object, ...]]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        failed = rng.random() < 0.2
        rows.append(
            (
                round(NOW - rng.random() * 5 * 86400, 3),
                "review",
                rng.choice(["analysis", "summary"]),
                "openai",
                rng.choice(["m-a", "m-b", "m-c"]),
                "cheap",
                0 if failed else 1,
                "timeout" if failed else None,
                503 if failed and i % 2 else None,
                rng.lognormvariate(6, 0.5),
                100,
                50,
                0.001,
                1,
                "test",
                rng.choice(["subscription", "api", None]),
                f"k{i}",
            )
        )
    return rows


def test_record_import_and_figures_agree_with_sqlite(store: TelemetryStore) -> None:
    store.record(CallRecord("review", "analysis", "m-a", True, ts=NOW - 30, latency_ms=120.0))
    with store.bulk_transaction():
        added = store.insert_rows(_rows(3000))
    with store.bulk_transaction():
        again = store.insert_rows(_rows(3000))
    assert (added, again) == (3000, 0)
    assert store.count() == 3001
    reference = TelemetryStore(Path(":memory:"), clock=lambda: NOW)
    reference.record(CallRecord("review", "analysis", "m-a", True, ts=NOW - 30, latency_ms=120.0))
    with reference.bulk_transaction():
        reference.insert_rows(_rows(3000))

    def figures(source: TelemetryStore) -> list[tuple[object, ...]]:
        found = source.model_performance(
            workflow="review",
            stage=None,
            since_ts=NOW - 3 * 86400,
            weights=ScoreWeights(),
            half_life_s=86400,
            now=NOW,
            outage_since_ts=NOW - 86400,
            explore_half_life_s=6 * 3600,
        )
        return [
            (
                p.model,
                p.calls,
                p.successes,
                p.outage_failures_counted,
                p.recent_failures,
                round(p.p95_latency_ms or 0, 6),
                round(p.weighted_calls or 0, 6),
                round(p.plan_covered_usd, 6),
                round(p.cost_usd, 6),
                round(p.explore_calls or 0, 6),
                round(p.explore_successes or 0, 6),
                p.newest_ts,
            )
            for p in found
        ]

    assert figures(store) == figures(reference)
    assert all(0 < f[7] < f[8] for f in figures(store))  # some of each cost: plan and per token
    # Exploring's shorter memory weighs the same calls less.
    assert all(0 < f[9] < f[6] for f in figures(store))
    store.add_labels({("review", "analysis", m) for m in ("m-c", "m-b")})
    assert store.labels("model") == ["m-a", "m-b", "m-c"]
    newest = store.recent_calls(workflow="review", stage=None, limit=3)
    assert [c.ts for c in newest] == [
        c.ts for c in reference.recent_calls(workflow="review", stage=None, limit=3)
    ]
    assert store.verify().ok


def test_prune_keeps_rollups_equal_to_rows(store: TelemetryStore) -> None:
    with store.bulk_transaction():
        store.insert_rows(_rows(2000))
    cut = NOW - 2.5 * 86400
    before = store.count_before(cut)
    assert store.prune(cut) == before > 0
    assert store.count_before(cut) == 0
    assert store.verify().ok


def test_verify_finds_a_corrupted_rollup(store: TelemetryStore) -> None:
    with store.bulk_transaction():
        store.insert_rows(_rows(200))
    store.conn.execute("UPDATE rollups SET calls = calls + 1 WHERE model = 'm-b'")
    report = store.verify()
    assert not report.ok
    assert {d.key[2] for d in report.differences} == {"m-b"}


def test_verify_counts_every_difference_lists_up_to_the_limit_and_reports_progress(
    store: TelemetryStore,
) -> None:
    """A rollup changed, one deleted and one that no row gives: three differences, each of
    its kind (stored and recomputed, recomputed only, stored only); ``limit`` lists fewer
    but counts them all; progress hears of every table, in order, ending at the total."""
    with store.bulk_transaction():
        store.insert_rows(_rows(200))
    key = "workflow = ? AND stage = ? AND model = ? AND hour = ? AND provider = ?"
    changed = store.conn.execute(
        "SELECT workflow, stage, model, hour, provider, calls FROM rollups WHERE model = 'm-a' "
        "ORDER BY hour, stage LIMIT 1"
    ).fetchone()
    store.conn.execute(f"UPDATE rollups SET calls = calls + 2 WHERE {key}", tuple(changed[:5]))
    gone = store.conn.execute(
        "SELECT workflow, stage, model, hour, provider FROM rollups WHERE model = 'm-b' "
        "ORDER BY hour, stage LIMIT 1"
    ).fetchone()
    store.conn.execute(f"DELETE FROM rollups WHERE {key}", tuple(gone))
    store.conn.execute(
        "INSERT INTO rollups (workflow, stage, model, hour, provider, calls, successes, "
        "quality_failures, outage_failures, rate_limited, caller_errors, cancelled, cost_usd, "
        "costs, input_tokens, output_tokens, latencies) "
        "VALUES ('ghost', 'analysis', 'm-z', 0, 'openai', 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)"
    )
    steps: list[tuple[int, int]] = []
    report = store.verify(progress=lambda done, total: steps.append((done, total)))
    by_model = {d.key[2]: d for d in report.differences if d.table == "rollups"}
    assert set(by_model) == {"m-a", "m-b", "m-z"}
    assert by_model["m-a"].key == tuple(changed[:5]) and by_model["m-b"].key == tuple(gone)
    assert by_model["m-a"].stored is not None and by_model["m-a"].expected is not None
    assert by_model["m-a"].stored[0] == by_model["m-a"].expected[0] + 2 == changed[5] + 2
    assert by_model["m-b"].stored is None and by_model["m-b"].expected is not None
    assert by_model["m-z"].stored is not None and by_model["m-z"].expected is None
    # The spend tables follow the rollups by trigger, so they differ from nothing here.
    assert {d.table for d in report.differences} == {"rollups"}
    assert report.total_differences == 3
    total = steps[-1][1]
    assert steps == [(done, total) for done in range(total + 1)] and total == 7
    limited = store.verify(limit=1)
    assert limited.total_differences == 3 and len(limited.differences) == 1


def test_verify_finds_corrupted_spend_table_rows(store: TelemetryStore) -> None:
    """The spend tables are kept from the rollups by triggers; a write to them that bypasses
    the rollups (here: by hand) is found by verify, per table and key, and the rollups
    themselves still verify clean."""
    with store.bulk_transaction():
        store.insert_rows(_rows(300))
    clean = store.verify()
    assert clean.ok
    # Every table has rows: per hour and per day, with and without the workflow.
    kept = {
        table: int(store.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        for table in ("spend_hours", "spend_workflow_hours", "spend_days", "spend_workflow_days")
    }
    assert all(kept.values()) and clean.spend_rows == sum(kept.values())
    day, cost = store.conn.execute(
        "SELECT hour, cost_usd FROM spend_days WHERE model = 'm-a' ORDER BY hour LIMIT 1"
    ).fetchone()
    store.conn.execute(
        "UPDATE spend_days SET cost_usd = cost_usd + 0.5 WHERE model = 'm-a' AND hour = ?",
        (day,),
    )
    hour = store.conn.execute(
        "SELECT MAX(hour) FROM spend_workflow_hours WHERE model = 'm-c'"
    ).fetchone()[0]
    store.conn.execute("DELETE FROM spend_workflow_hours WHERE model = 'm-c' AND hour = ?", (hour,))
    report = store.verify()
    assert not report.ok
    assert report.total_differences == 2
    by_table = {d.table: d for d in report.differences}
    assert set(by_table) == {"spend_days", "spend_workflow_hours"}
    days = by_table["spend_days"]
    assert days.key == (day, "m-a", "openai")
    assert days.stored is not None and days.expected is not None
    assert days.stored[1] == pytest.approx(cost + 0.5)
    assert days.expected[1] == pytest.approx(cost)
    assert days.stored[0] == days.expected[0]  # the calls still agree
    missing = by_table["spend_workflow_hours"]
    assert missing.key == ("review", hour, "m-c", "openai")
    assert missing.stored is None and missing.expected is not None
    assert missing.expected[0] > 0


def _bucket_rows_histogram(conn: Any, *, daily: bool) -> None:
    """The latency histograms of ``calls`` as schemas 1 to 5 kept them: a row per bucket in
    ``rollup_latency`` (and, from schema 2 on, in ``rollup_latency_day``)."""
    from attune_cli.core.telemetry import postgres, rollups

    conn.execute(
        f"INSERT INTO rollup_latency ({rollups.KEY}, bucket, calls, latency_ms) "
        + postgres._aggregate("calls")[1]
    )
    if daily:
        conn.execute("INSERT INTO rollup_latency_day " + postgres._daily("rollup_latency"))


def test_a_postgresql_store_of_schema_1_gets_its_daily_histogram_from_the_hourly_one(
    pg_url: str,
) -> None:
    import psycopg

    from attune_cli.core.telemetry import postgres

    with psycopg.connect(pg_url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("CREATE TABLE attune_schema (version INTEGER NOT NULL)")
            conn.execute(postgres.MIGRATIONS[0])
            conn.execute("INSERT INTO attune_schema VALUES (1)")
            # The columns of schema 3 for a moment, so today's statements can write the rows
            # and their rollups; dropped again below to leave schema 1's exact shape.
            conn.execute(postgres.MIGRATIONS[2])
        with (
            conn.cursor() as cursor,
            cursor.copy(f"COPY calls ({', '.join(postgres.COLUMNS)}) FROM STDIN") as copy,
        ):
            for row in _rows(500):
                copy.write_row(row)
        # Schema 1's rollups, as its writers kept them.
        conn.execute(postgres._upserts("calls")[0])
        _bucket_rows_histogram(conn, daily=False)
        conn.execute("ALTER TABLE calls DROP COLUMN billing")
        conn.execute("ALTER TABLE rollups DROP COLUMN plan_cost_usd")
    with postgres.PostgresCallStore(pg_url, clock=lambda: NOW) as store:
        assert store.schema_version() == postgres.SCHEMA_VERSION
        days = store.raw.execute("SELECT SUM(calls) FROM rollup_latency_day").fetchone()[0]
        assert days == 500
        assert store.verify().ok


def _spend_differences(store: PostgresCallStore) -> list[tuple[str, object, object]]:
    """Each spend table against the rollups added up by its key: the rows that differ."""
    from attune_cli.core.telemetry import rollups

    differences: list[tuple[str, object, object]] = []
    for table, key in rollups.SPEND_TABLES.items():
        keys = ", ".join(rollups._key_value(table, column, "r") for column in key)
        sums = ", ".join(f"SUM({value})" for value in rollups.spend_values("r"))
        expected = {
            tuple(row[: len(key)]): row[len(key) :]
            for row in store.raw.execute(
                f"SELECT {keys}, {sums} FROM rollups AS r GROUP BY {keys}"
            ).fetchall()
        }
        kept = {
            tuple(row[: len(key)]): row[len(key) :]
            for row in store.raw.execute(
                f"SELECT {', '.join(key)}, {', '.join(rollups.SPEND_SUMS)} FROM {table}"
            ).fetchall()
        }
        assert expected, table
        for found in set(expected) | set(kept):
            want, have = expected.get(found), kept.get(found)
            if (
                want is None
                or have is None
                or any(
                    abs(float(a) - float(b)) > 1e-9 * max(1.0, abs(float(a)))
                    for a, b in zip(want, have, strict=True)
                )
            ):
                differences.append((table, found, (want, have)))
    return differences


def test_a_postgresql_store_of_schema_4_keeps_its_spend_through_imports_and_prunes(
    pg_url: str,
) -> None:
    """Schema 5 keeps the spend tables with one trigger per statement (and drops ``calls.id``):
    a store written under schema 4's row triggers keeps its spend, and batches that add to
    existing rollups, new ones, and a prune all leave the spend equal to the rollups."""
    import psycopg

    from attune_cli.core.telemetry import postgres

    with psycopg.connect(pg_url, autocommit=True) as conn, conn.transaction():
        conn.execute("CREATE TABLE attune_schema (version INTEGER NOT NULL)")
        for number in range(4):
            conn.execute(postgres.MIGRATIONS[number])
            conn.execute("INSERT INTO attune_schema VALUES (%s)", (number + 1,))
        with (
            conn.cursor() as cursor,
            cursor.copy(f"COPY calls ({', '.join(postgres.COLUMNS)}) FROM STDIN") as copy,
        ):
            for row in _rows(600):
                copy.write_row(row)
        # Schema 4's writers: the rollups (through its row trigger, the spend) of those rows.
        conn.execute(postgres._upserts("calls")[0])
        _bucket_rows_histogram(conn, daily=True)
    with postgres.PostgresCallStore(pg_url, clock=lambda: NOW) as store:
        assert store.schema_version() == postgres.SCHEMA_VERSION
        id_column = store.raw.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'calls' "
            "AND column_name = 'id' AND table_schema = current_schema()"
        ).fetchone()[0]
        assert id_column == 0
        assert _spend_differences(store) == []
        # Schema 6 keeps the histograms' buckets in arrays: the same rows as before.
        assert store.verify().ok
        assert store.raw.execute("SELECT SUM(calls) FROM rollup_latency_day").fetchone()[0] > 0
        # The same hours again (DO UPDATE of existing rollups), with a batch boundary inside.
        rows = _rows(3000, seed=11)
        with store.bulk_transaction():
            assert store.insert_rows(rows, batch=700) == 3000
        assert store.count_before(NOW + 1) == 3600
        assert _spend_differences(store) == []
        store.record(CallRecord("review", "analysis", "m-a", True, ts=NOW - 10, cost_usd=0.5))
        assert _spend_differences(store) == []
        assert store.prune(NOW - 2.5 * 86400) > 0
        assert _spend_differences(store) == []
        assert store.verify().ok


def test_postgresql_session_settings_keep_the_url_and_pgoptions_ones(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``jit=off`` travels in the start-up packet after the URL's own ``options`` (here its
    search path) or, without them, after ``PGOPTIONS``."""
    from urllib.parse import unquote

    from attune_cli.core.telemetry.postgres import PostgresCallStore

    schema = unquote(pg_url).rsplit("search_path=", 1)[1]
    with PostgresCallStore(pg_url) as store:
        assert store.raw.execute("SHOW jit").fetchone()[0] == "off"
        assert store.raw.execute("SELECT current_schema()").fetchone()[0] == schema
    monkeypatch.setenv("PGOPTIONS", f"-csearch_path={schema}")
    without_options = pg_url.rsplit("options=", 1)[0].rstrip("?&")
    with PostgresCallStore(without_options) as store:
        assert store.raw.execute("SHOW jit").fetchone()[0] == "off"
        assert store.raw.execute("SELECT current_schema()").fetchone()[0] == schema


def _varied_rows(count: int, seed: int = 11) -> list[tuple[object, ...]]:
    """Calls of two workflows × three stages × four models over five days, with every failure
    class (quality, outage by status and by kind, rate limit, caller error, cancelled), missing
    latencies, costs, providers and tiers, and calls in the current hour. No two share a time:
    the newest calls of a model are then one list on both backends (ties have no order)."""
    rng = random.Random(seed)
    failures = [
        (None, None),  # quality
        ("timeout", None),  # outage
        ("server_error", 503),  # outage
        ("rate_limit", 429),
        ("bad_request", 400),  # caller error
        ("cancelled", None),
    ]
    rows = []
    taken: set[float] = set()
    for i in range(count):
        failed = rng.random() < 0.3
        kind, status = rng.choice(failures) if failed else (None, 200)
        age = rng.choice([rng.random() * 5 * 86400, rng.random() * 7200, rng.random() * 600])
        ts = round(NOW - age, 3)
        while ts in taken:
            ts = round(ts - 0.001, 3)
        taken.add(ts)
        rows.append(
            (
                ts,
                rng.choice(["review", "triage"]),
                rng.choice(["analysis", "summary", "draft"]),
                rng.choice(["openai", "anthropic", None]),
                rng.choice(["m-a", "m-b", "m-c", "m-d"]),
                rng.choice(["cheap", "capable", None]),
                0 if failed else 1,
                kind,
                status,
                None if rng.random() < 0.1 else rng.lognormvariate(6, 0.7),
                100,
                50,
                None if rng.random() < 0.1 else 0.001 * rng.random(),
                1,
                "test",
                rng.choice(["subscription", "api", None]),
                f"v{i}",
            )
        )
    return rows


@pytest.mark.e2e
def test_decision_reads_equal_sqlite_for_every_filter_window_and_memory(pg_url: str) -> None:
    """PostgreSQL reads a decision in one statement (pairs, window, edges, histogram, newest
    calls); every figure of every model equals SQLite's, for each kind of filter and window."""
    from attune_cli.core.telemetry.postgres import PostgresCallStore

    rows = _varied_rows(4000)
    reference = TelemetryStore(Path(":memory:"), clock=lambda: NOW)
    with reference.bulk_transaction():
        reference.insert_rows(rows)
    with PostgresCallStore(pg_url, clock=lambda: NOW) as team:
        with team.bulk_transaction():
            assert team.insert_rows(rows) == len(rows)
        compared = 0
        for workflow, stage in (
            (None, None),
            ("review", None),
            (None, "summary"),
            ("triage", "draft"),
            ("review", "nope"),
            ("nope", None),
        ):
            for since in (None, NOW - 3 * 86400 - 1234.5, NOW - 5400.0, NOW - 300.0):
                for half_life, recent_n, outage in (
                    (None, 20, None),
                    (86400.0, 5, NOW - 4000.0),
                    (3600.0, 0, NOW - 86400.0),
                    (7200.0, 1, NOW - 7200.0),
                ):
                    arguments = {
                        "workflow": workflow,
                        "stage": stage,
                        "since_ts": since,
                        "weights": ScoreWeights(),
                        "half_life_s": half_life,
                        "recent_n": recent_n,
                        "now": NOW,
                        "outage_since_ts": outage,
                    }
                    want = reference.model_performance(**arguments)  # type: ignore[arg-type]
                    have = team.model_performance(**arguments)  # type: ignore[arg-type]
                    assert [_figures(p) for p in have] == [_figures(p) for p in want], arguments
                    compared += len(want)
        assert compared > 100


def _figures(perf: object) -> tuple[object, ...]:
    """Every field of a ModelPerformance, floats rounded (the two servers add in other orders)."""
    from dataclasses import astuple

    return tuple(round(v, 6) if isinstance(v, float) else v for v in astuple(perf))  # type: ignore[call-overload]


def test_an_import_overlapping_stored_rows_adds_only_the_new_ones(store: TelemetryStore) -> None:
    """An import's chunk goes in as all-new rows first; a chunk holding rows already stored (or
    the same row twice) is undone and moved row by row instead: each call is stored once and
    its rollups once, whatever the chunk held."""
    rows = _varied_rows(3000)
    with store.bulk_transaction():
        assert store.insert_rows(rows[:1000], batch=400) == 1000
    again = rows[500:1500] + rows[1500:1700] + rows[1500:1600]  # stored, new, new twice
    with store.bulk_transaction():
        assert store.insert_rows(again, batch=300) == 700
    with store.bulk_transaction():
        assert store.insert_rows(rows[1700:], batch=400) == 1300  # all new: the quick way
    assert store.count() == 3000
    assert store.verify().ok
    reference = TelemetryStore(Path(":memory:"), clock=lambda: NOW)
    with reference.bulk_transaction():
        reference.insert_rows(rows)
    arguments = {
        "workflow": None,
        "stage": None,
        "since_ts": NOW - 4 * 86400,
        "weights": ScoreWeights(),
        "half_life_s": 86400.0,
        "now": NOW,
        "outage_since_ts": NOW - 3600,
    }
    want = reference.model_performance(**arguments)  # type: ignore[arg-type]
    assert [_figures(p) for p in store.model_performance(**arguments)] == [  # type: ignore[arg-type]
        _figures(p) for p in want
    ]
