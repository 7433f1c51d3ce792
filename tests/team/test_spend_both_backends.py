"""Spend reports on a known history, on both backends (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from attune_cli.core.registry import load_registry
from attune_cli.core.spend.periods import Zone
from attune_cli.core.spend.report import GroupBy, SpendQuery, SpendReport, Window, build_report
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

HOUR = 3600.0
DAY = 86_400.0
# 2027-01-15 00:00:00 UTC, a Friday.
MIDNIGHT = 1_799_971_200.0
NOW = MIDNIGHT + 10 * HOUR + 17.0
UTC = Zone.named("UTC")
REGISTRY = load_registry({}, Path("config.toml"))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TelemetryStore]:
    """The same history over each backend."""
    if request.param == "sqlite":
        opened = TelemetryStore(tmp_path / "telemetry.db", clock=lambda: NOW)
    else:
        from attune_cli.core.telemetry.postgres import PostgresCallStore

        opened = PostgresCallStore(request.getfixturevalue("pg_url"), clock=lambda: NOW)
    with opened:
        yield opened


def call(ts: float, cost: float | None, **fields: object) -> CallRecord:
    values: dict[str, object] = {
        "workflow": "code-review",
        "stage": "analysis",
        "model": "claude-haiku-4-5",
        "provider": "anthropic",
    }
    values.update(fields)
    return CallRecord(success=True, ts=ts, cost_usd=cost, **values)  # type: ignore[arg-type]


def seed(store: TelemetryStore) -> None:
    store.record_many(
        [
            # Four days ago (2027-01-11): two calls; then nothing for two days.
            call(MIDNIGHT - 4 * DAY + 5 * HOUR, 0.25),
            call(MIDNIGHT - 4 * DAY + 23 * HOUR + 1800, 0.5, workflow="docs", stage="gen"),
            # Yesterday, a priced call and one with tokens but no price (estimated).
            call(MIDNIGHT - 2 * HOUR, 1.0, model="gpt-5-mini", provider="openai"),
            call(
                MIDNIGHT - HOUR,
                None,
                model="gpt-5-mini",
                provider="openai",
                input_tokens=1_000_000,
                output_tokens=0,
            ),
            # Today, in the current hour (read from rows) and earlier (rollups).
            call(MIDNIGHT + 3 * HOUR, 2.0),
            call(NOW - 5, 0.125, workflow="docs", stage="gen"),
            # Long before the window: only in the previous one.
            call(MIDNIGHT - 6 * DAY, 4.0),
        ]
    )


def test_days_are_filled_and_exact(store: TelemetryStore) -> None:
    seed(store)
    window = Window.of(UTC, NOW, days=5)
    report = build_report(store, REGISTRY, SpendQuery(window, GroupBy.DAY), UTC)
    got = {r.key: (r.calls, round(r.cost_usd, 6)) for r in report.rows}
    mini_input = REGISTRY.cost_usd("gpt-5-mini", 1_000_000, 0)
    assert mini_input is not None and mini_input > 0
    assert got == {
        "2027-01-11": (2, 0.75),
        "2027-01-12": (0, 0.0),
        "2027-01-13": (0, 0.0),
        "2027-01-14": (2, round(1.0 + mini_input, 6)),
        "2027-01-15": (2, 2.125),
    }
    yesterday = report.rows[3]
    assert yesterday.estimated_usd == pytest.approx(mini_input)
    assert report.rows[4].previous_cost_usd == pytest.approx(yesterday.cost_usd)
    assert report.total_usd == pytest.approx(0.75 + 1.0 + mini_input + 2.125)
    assert report.previous_total_usd == pytest.approx(4.0)
    assert report.as_dict()["rows"][3]["estimated"] is True
    assert report.as_dict()["rows"][0]["estimated"] is False
    series = dict(report.series)
    assert series["gpt-5-mini"][3] == pytest.approx(1.0 + mini_input)
    assert series["claude-haiku-4-5"] == pytest.approx((0.75, 0, 0, 0, 2.125))


def test_names_compare_with_the_window_before(store: TelemetryStore) -> None:
    seed(store)
    window = Window.of(UTC, NOW, since=date(2027, 1, 11), until=date(2027, 1, 15))
    by_workflow = build_report(store, REGISTRY, SpendQuery(window, GroupBy.WORKFLOW), UTC)
    assert [(r.key, r.calls, round(r.cost_usd, 6)) for r in by_workflow.rows][1:] == [
        ("docs", 2, 0.625)
    ]
    review = by_workflow.rows[0]
    assert review.key == "code-review" and review.calls == 4
    # The previous window is 2027-01-06 .. 2027-01-10 (the call on the 9th) and holds the $4 call.
    assert review.previous_cost_usd == pytest.approx(4.0)
    by_tier = build_report(store, REGISTRY, SpendQuery(window, GroupBy.TIER), UTC)
    assert [(r.key, r.calls) for r in by_tier.rows] == [("cheap", 6)]
    only_docs = build_report(
        store, REGISTRY, SpendQuery(window, GroupBy.MODEL, workflow="docs"), UTC
    )
    assert [(r.key, r.calls) for r in only_docs.rows] == [("claude-haiku-4-5", 2)]
    assert only_docs.share(only_docs.rows[0]) == 1.0


def test_weeks_and_months_start_on_calendar_bounds(store: TelemetryStore) -> None:
    seed(store)
    window = Window.of(UTC, NOW, since=date(2027, 1, 1))
    weeks = build_report(store, REGISTRY, SpendQuery(window, GroupBy.WEEK), UTC)
    # 2027-01-01 is a Friday in ISO week 2026-W53; 2027-01-11 opens 2027-W02.
    assert [r.key for r in weeks.rows] == ["2026-W53", "2027-W01", "2027-W02"]
    assert [round(r.cost_usd, 6) for r in weeks.rows][:2] == [0.0, 4.0]
    months = build_report(store, REGISTRY, SpendQuery(window, GroupBy.MONTH), UTC)
    assert [r.key for r in months.rows] == ["2027-01"]
    assert months.rows[0].calls == 7


def test_a_half_hour_zone_cuts_its_window_exactly(store: TelemetryStore) -> None:
    """Asia/Kolkata is UTC+05:30: its midnight is half past a UTC hour."""
    kolkata = Zone.named("Asia/Kolkata")
    local_midnight = MIDNIGHT - 5.5 * HOUR  # 2027-01-15 00:00 IST
    store.record_many(
        [
            call(local_midnight - 60, 1.0),  # 23:59 on the 14th, IST
            call(local_midnight + 60, 2.0),  # 00:01 on the 15th, IST
        ]
    )
    window = Window.of(kolkata, NOW, days=1)
    assert window.since_ts == local_midnight
    today = build_report(store, REGISTRY, SpendQuery(window, GroupBy.MODEL), kolkata)
    assert today.total_usd == pytest.approx(2.0)
    assert today.previous_total_usd == pytest.approx(1.0)


def test_spend_tables_follow_the_rollups_through_writes_and_prunes(
    store: TelemetryStore,
) -> None:
    """The triggers keep the spend tables (per hour and per day) equal to the rollups' sums
    whatever writes them: record, record_many, a second call in the same hour, prune."""
    seed(store)
    # Adds to an existing rollup, covered by the plan.
    store.record(call(MIDNIGHT + 3 * HOUR + 60, 0.5, billing="subscription"))
    store.record(call(MIDNIGHT + 3 * HOUR + 90, None, input_tokens=10, output_tokens=5))

    def compare() -> None:
        day = "(hour / 86400 * 86400)"
        for table, key, source in (
            ("spend_hours", "hour, model, provider", "hour, model, provider"),
            ("spend_workflow_hours", "workflow, hour, model, provider", None),
            ("spend_days", "hour, model, provider", f"{day}, model, provider"),
            (
                "spend_workflow_days",
                "workflow, hour, model, provider",
                f"workflow, {day}, model, provider",
            ),
        ):
            grouped = source or key
            expected = store.conn.execute(
                f"SELECT {grouped}, SUM(calls), ROUND(CAST(SUM(cost_usd) AS NUMERIC), 9), "
                "SUM(costs), SUM(CASE WHEN costs = 0 THEN input_tokens ELSE 0 END), "
                "ROUND(CAST(SUM(plan_cost_usd) AS NUMERIC), 9) "
                f"FROM rollups GROUP BY {grouped} ORDER BY {grouped}"
            ).fetchall()
            kept = store.conn.execute(
                f"SELECT {key}, calls, ROUND(CAST(cost_usd AS NUMERIC), 9), costs, "
                f"unpriced_input_tokens, ROUND(CAST(plan_cost_usd AS NUMERIC), 9) "
                f"FROM {table} ORDER BY {key}"
            ).fetchall()
            assert [tuple(map(str, r)) for r in kept] == [tuple(map(str, r)) for r in expected]
            assert kept, table
            assert any(float(r[-1]) > 0 for r in kept), table

    compare()
    assert store.prune(MIDNIGHT - 3 * DAY) == 3
    compare()


def test_days_follow_summer_time(store: TelemetryStore) -> None:
    """Europe/Paris moves from +01:00 to +02:00 at 01:00 UTC on 2027-03-28: the day's calls
    at 22:30 UTC on the 28th belong to the 29th in Paris, at 22:30 UTC on the 27th to the
    27th."""
    paris = Zone.named("Europe/Paris")
    march_27 = 1_806_105_600.0  # 2027-03-27 00:00 UTC
    store.record_many(
        [
            call(march_27 + 22.5 * HOUR, 1.0),  # 23:30 on the 27th in Paris (+01:00)
            call(march_27 + DAY + 22.5 * HOUR, 2.0),  # 00:30 on the 29th in Paris (+02:00)
            call(march_27 + DAY + 21.5 * HOUR, 4.0),  # 23:30 on the 28th in Paris
        ]
    )
    window = Window.of(paris, march_27 + 5 * DAY, since=date(2027, 3, 27), until=date(2027, 3, 29))
    report = build_report(store, REGISTRY, SpendQuery(window, GroupBy.DAY), paris)
    assert [(r.key, r.cost_usd) for r in report.rows] == [
        ("2027-03-27", 1.0),
        ("2027-03-28", 4.0),
        ("2027-03-29", 2.0),
    ]


def seed_billing(store: TelemetryStore) -> None:
    """Calls through the subscription plan, the API and unknown billing (pay per token)."""
    sub, api = "subscription", "api"
    store.record_many(
        [
            # 2027-01-11: whole hours, read from the daily tables.
            call(MIDNIGHT - 4 * DAY + 5 * HOUR, 0.25, billing=sub),
            call(MIDNIGHT - 4 * DAY + 6 * HOUR, 0.5, billing=api),
            call(MIDNIGHT - 4 * DAY + 6 * HOUR + 60, 1.0, workflow="docs", stage="gen"),
            # 2027-01-14: another model, all covered by the plan.
            call(
                MIDNIGHT - 2 * HOUR,
                2.0,
                billing=sub,
                model="claude-sonnet-4-5",
                workflow="docs",
                stage="gen",
            ),
            # Today: plan and API calls in one rollup, then the current hour (from the rows).
            call(MIDNIGHT + 3 * HOUR, 0.125, billing=sub),
            call(MIDNIGHT + 3 * HOUR + 60, 4.0, billing=api),
            call(NOW - 5, 8.0, billing=sub, workflow="docs", stage="gen"),
            call(NOW - 10, 0.0625, billing=api),
        ]
    )


def split(report: SpendReport) -> dict[str, tuple[int, float, float, float]]:
    return {
        r.key: (r.calls, r.cost_usd, r.plan_covered_usd, r.pay_per_token_usd) for r in report.rows
    }


@pytest.mark.parametrize(
    ("by", "expected"),
    [
        (
            GroupBy.DAY,
            {
                "2027-01-11": (3, 1.75, 0.25, 1.5),
                "2027-01-12": (0, 0.0, 0.0, 0.0),
                "2027-01-13": (0, 0.0, 0.0, 0.0),
                "2027-01-14": (1, 2.0, 2.0, 0.0),
                "2027-01-15": (4, 12.1875, 8.125, 4.0625),
            },
        ),
        (
            GroupBy.MODEL,
            {
                "claude-haiku-4-5": (7, 13.9375, 8.375, 5.5625),
                "claude-sonnet-4-5": (1, 2.0, 2.0, 0.0),
            },
        ),
        (
            GroupBy.WORKFLOW,
            {"code-review": (5, 4.9375, 0.375, 4.5625), "docs": (3, 11.0, 10.0, 1.0)},
        ),
        (GroupBy.STAGE, {"analysis": (5, 4.9375, 0.375, 4.5625), "gen": (3, 11.0, 10.0, 1.0)}),
    ],
)
def test_plan_covered_and_pay_per_token_apart(
    store: TelemetryStore, by: GroupBy, expected: dict[str, tuple[int, float, float, float]]
) -> None:
    """What the subscription covered and what was paid per token, per row and in total, from
    every source a report reads (daily and hourly spend tables, rollups, the current hour's
    rows)."""
    seed_billing(store)
    report = build_report(store, REGISTRY, SpendQuery(Window.of(UTC, NOW, days=5), by), UTC)
    assert split(report) == expected
    assert report.total_usd == 15.9375
    assert report.plan_covered_usd == 10.375
    assert report.pay_per_token_usd == 5.5625
    document = report.as_dict()
    assert (document["plan_covered_usd"], document["pay_per_token_usd"]) == (10.375, 5.5625)
    assert {
        r["key"]: (r["calls"], r["cost_usd"], r["plan_covered_usd"], r["pay_per_token_usd"])
        for r in document["rows"]
    } == expected
    assert store.verify().ok


def test_plan_covered_leaves_with_pruned_calls(store: TelemetryStore) -> None:
    """Pruning the oldest day takes its plan-covered cost off the spend tables too."""
    seed_billing(store)
    assert store.prune(MIDNIGHT - 3 * DAY) == 3
    query = SpendQuery(Window.of(UTC, NOW, days=5), GroupBy.MODEL)
    report = build_report(store, REGISTRY, query, UTC)
    assert split(report) == {
        "claude-haiku-4-5": (4, 12.1875, 8.125, 4.0625),
        "claude-sonnet-4-5": (1, 2.0, 2.0, 0.0),
    }
    assert store.verify().ok
