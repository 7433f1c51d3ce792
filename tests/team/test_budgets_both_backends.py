"""Budgets on a known history, on both backends: sums, projections, check and reservations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from attune_cli.core.errors import ConfigError
from attune_cli.core.registry import load_registry
from attune_cli.core.spend.budgets import (
    BudgetExceeded,
    BudgetSettings,
    BudgetState,
    OnExceed,
    admit,
    check,
    status,
)
from attune_cli.core.spend.periods import Period
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

HOUR = 3600.0
DAY = 86_400.0
MIDNIGHT = 1_799_971_200.0  # 2027-01-15 00:00 UTC
NOW = MIDNIGHT + 12 * HOUR  # 2027-01-15 12:00 UTC: 14.5 days into January
REGISTRY = load_registry({}, Path("config.toml"))
CONFIG = Path("config.toml")


def settings(**budgets: dict[str, object]) -> BudgetSettings:
    return BudgetSettings.from_config({"budgets": {"timezone": "UTC", **budgets}}, CONFIG)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TelemetryStore]:
    if request.param == "sqlite":
        opened = TelemetryStore(tmp_path / "telemetry.db", clock=lambda: NOW)
    else:
        from attune_cli.core.telemetry.postgres import PostgresCallStore

        opened = PostgresCallStore(request.getfixturevalue("pg_url"), clock=lambda: NOW)
    with opened:
        opened.record_many(
            [
                # December: not this month.
                CallRecord(
                    "code-review",
                    "a",
                    "claude-haiku-4-5",
                    True,
                    ts=MIDNIGHT - 20 * DAY,
                    cost_usd=100.0,
                ),
                # January 2nd: in the month, not in the last seven days.
                CallRecord(
                    "code-review",
                    "a",
                    "claude-haiku-4-5",
                    True,
                    ts=MIDNIGHT - 13 * DAY,
                    cost_usd=20.0,
                ),
                # January 10th and today.
                CallRecord(
                    "code-review",
                    "a",
                    "claude-haiku-4-5",
                    True,
                    ts=MIDNIGHT - 5 * DAY,
                    cost_usd=7.0,
                ),
                CallRecord(
                    "code-review", "a", "claude-haiku-4-5", True, ts=MIDNIGHT + HOUR, cost_usd=2.0
                ),
                CallRecord(
                    "docs", "b", "claude-haiku-4-5", True, ts=MIDNIGHT + 2 * HOUR, cost_usd=1.0
                ),
            ]
        )
        yield opened


def test_status_sums_and_projects(store: TelemetryStore) -> None:
    found = status(
        store,
        REGISTRY,
        settings(
            **{"code-review": {"monthly_usd": 40, "daily_usd": 2.5}, "*": {"monthly_usd": 100}}
        ),
        NOW,
    )
    by_key = {(s.budget, s.period): s for s in found}
    month = by_key["code-review", Period.MONTH]
    assert month.spent_usd == pytest.approx(29.0)
    assert month.left_usd == pytest.approx(11.0)
    assert month.burn_usd_per_day == pytest.approx(29.0 / 14.5)
    assert month.projected_usd == pytest.approx(29.0 / 14.5 * 31)
    # Last seven days: $9 → $9/7 a day for the 16.5 days left.
    assert month.projected_recent_usd == pytest.approx(29.0 + 9.0 / 7 * 16.5)
    assert month.state is BudgetState.OK
    day = by_key["code-review", Period.DAY]
    assert (day.spent_usd, day.state) == (pytest.approx(2.0), BudgetState.WARNING)
    assert day.resets_at_ts == MIDNIGHT + DAY
    assert by_key["*", Period.MONTH].spent_usd == pytest.approx(30.0)
    document = month.as_dict(settings().zone)
    assert document["resets_at"] == "2027-02-01T00:00:00+00:00"
    assert document["state"] == "ok"


def test_a_budget_for_a_workflow_that_never_ran_shows_zero(store: TelemetryStore) -> None:
    (found,) = status(store, REGISTRY, settings(nightly={"daily_usd": 1}), NOW)
    assert (found.spent_usd, found.left_usd, found.state) == (0.0, 1.0, BudgetState.OK)


def test_check_holds_what_it_lets_through(store: TelemetryStore) -> None:
    limits = settings(**{"code-review": {"daily_usd": 3}})
    assert check(store, REGISTRY, limits, "code-review", 0.75, now=NOW, hold_s=60)[0]
    # $2 spent + $0.75 held: $0.25 left.
    within, found = check(store, REGISTRY, limits, "code-review", 0.5, now=NOW)
    assert not within and found[0].reserved_usd == pytest.approx(0.75)
    # The hold expires by itself.
    assert check(store, REGISTRY, limits, "code-review", 0.5, now=NOW + 61)[0]


def test_admit_refuses_or_downgrades(store: TelemetryStore) -> None:
    choices = [("claude-sonnet-4-5", 0.9), ("gpt-5-mini", 0.2), ("claude-haiku-4-5", 0.3)]
    refuse = settings(**{"code-review": {"daily_usd": 2.5}})
    with pytest.raises(BudgetExceeded) as refused:
        admit(store, REGISTRY, refuse, "code-review", choices, now=NOW, hold_s=60)
    assert "$2.00 spent" in refused.value.message and "2027-01-16 00:00" in refused.value.message
    downgrade = settings(**{"code-review": {"daily_usd": 2.5, "on_exceed": "downgrade"}})
    admitted = admit(store, REGISTRY, downgrade, "code-review", choices, now=NOW, hold_s=60)
    assert (admitted.model, admitted.downgraded_from) == ("gpt-5-mini", "claude-sonnet-4-5")
    # What it reserved is the dearest choice that fits, and each attempt is capped there.
    assert admitted.cap_usd == pytest.approx(0.3)
    assert store.reserved_usd("code-review", NOW) == pytest.approx(0.3)
    assert admitted.reservation_id is not None
    store.release_reservation(admitted.reservation_id)
    assert store.reserved_usd("code-review", NOW) == 0.0
    other = admit(store, REGISTRY, downgrade, "docs", choices, now=NOW, hold_s=60)
    assert other.reservation_id is None and other.model == "claude-sonnet-4-5"


def covered_by_the_plan(store: TelemetryStore) -> None:
    """Calls billed to the subscription (API-equivalent prices), today and on January 10th."""
    store.record_many(
        [
            CallRecord(
                "code-review",
                "a",
                "claude-sonnet-4-5",
                True,
                ts=MIDNIGHT + 3 * HOUR,
                cost_usd=40.0,
                billing="subscription",
            ),
            CallRecord(
                "code-review",
                "a",
                "claude-haiku-4-5",
                True,
                ts=MIDNIGHT - 5 * DAY + HOUR,
                cost_usd=8.0,
                billing="subscription",
            ),
            # In the hour of a call paid per token ($2 at 01:00 today): one rollup holds both.
            CallRecord(
                "code-review",
                "a",
                "claude-haiku-4-5",
                True,
                ts=MIDNIGHT + HOUR + 60,
                cost_usd=0.5,
                billing="subscription",
            ),
        ]
    )


def test_plan_covered_calls_count_toward_no_limit_and_are_shown_apart(
    store: TelemetryStore,
) -> None:
    """$48.50 of plan-covered calls this month, $40.50 of them today: spent, left, burn rates,
    projections and states are the money paid per token alone, as without them."""
    covered_by_the_plan(store)
    found = status(
        store,
        REGISTRY,
        settings(**{"code-review": {"monthly_usd": 40, "daily_usd": 2.5}}),
        NOW,
    )
    by_period = {s.period: s for s in found}
    month, day = by_period[Period.MONTH], by_period[Period.DAY]
    assert (month.spent_usd, month.plan_covered_usd) == (pytest.approx(29.0), 48.5)
    assert month.left_usd == pytest.approx(11.0)
    assert month.burn_usd_per_day == pytest.approx(29.0 / 14.5)
    assert month.projected_recent_usd == pytest.approx(29.0 + 9.0 / 7 * 16.5)
    assert month.state is BudgetState.OK
    assert (day.spent_usd, day.plan_covered_usd) == (pytest.approx(2.0), 40.5)
    assert day.state is BudgetState.WARNING
    document = day.as_dict(settings().zone)
    assert (document["spent_usd"], document["plan_covered_usd"]) == (
        pytest.approx(2.0),
        40.5,
    )
    assert document["left_usd"] == pytest.approx(0.5)


def test_a_pipeline_check_counts_only_money_paid(store: TelemetryStore) -> None:
    """``budget check --cost`` is money a pipeline pays; what the plan covered leaves the
    $0.50 of today's $2.50 as it was."""
    covered_by_the_plan(store)
    limits = settings(**{"code-review": {"daily_usd": 2.5}})
    assert check(store, REGISTRY, limits, "code-review", 0.5, now=NOW)[0]
    assert not check(store, REGISTRY, limits, "code-review", 0.51, now=NOW)[0]


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ({"monthly_usd": -1}, "budgets.w.monthly_usd"),
        ({"monthly_usd": float("inf")}, "budgets.w.monthly_usd"),
        ({"daily_usd": float("nan")}, "budgets.w.daily_usd"),
        ({"daily_usd": "5"}, "budgets.w.daily_usd"),
        ({"daily_usd": True}, "budgets.w.daily_usd"),
        ({"daily_usd": 5, "on_exceed": "shrug"}, "budgets.w.on_exceed"),
        ({"on_exceed": "refuse"}, "budgets.w"),
    ],
)
def test_bad_budgets_name_the_key(entry: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        BudgetSettings.from_config({"budgets": {"w": entry}}, CONFIG)
    assert raised.value.key == key
    assert raised.value.exit_code == 2


def test_settings_read_each_limit() -> None:
    read = settings(w={"monthly_usd": 50, "daily_usd": 5, "on_exceed": "downgrade"})
    (budget,) = read.budgets
    assert budget.limits == ((Period.MONTH, 50.0), (Period.DAY, 5.0))
    assert budget.on_exceed is OnExceed.DOWNGRADE
    assert read.for_workflow("other") == ()


def test_a_spent_budget_refuses_even_a_call_priced_at_zero(store: TelemetryStore) -> None:
    """$2 spent today of $2: a model without registry prices (worst case $0) is refused too,
    and so is a check of $0."""
    spent = settings(**{"code-review": {"daily_usd": 2, "on_exceed": "downgrade"}})
    with pytest.raises(BudgetExceeded):
        admit(store, REGISTRY, spent, "code-review", [("local-llm", 0.0)], now=NOW, hold_s=60)
    assert not check(store, REGISTRY, spent, "code-review", 0.0, now=NOW)[0]
    roomy = settings(**{"code-review": {"daily_usd": 2.5}})
    assert check(store, REGISTRY, roomy, "code-review", 0.0, now=NOW)[0]
