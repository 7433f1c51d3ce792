"""Budgets and calls a subscription plan covers, as `attune ask` and `attune budget status` show
them, on both stores.

A budget limits money paid per token. A call on the plan (a stand-in `claude` first on PATH)
costs none: it is never refused nor downgraded, reserves nothing, and `budget status` shows its
API-equivalent price apart. Its pay-per-token fallback (``[auth] api_fallback``) is budgeted as
any paid call; the API side is the provider emulator.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers.fake_claude import FakeClaude
from typer.testing import CliRunner

from attune_cli.cli.app import app
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore
from attune_cli.emulator import ProviderEmulator

runner = CliRunner()
ANTHROPIC_KEY = "sk-ant-budget-0123456789abcdef"
ON_THE_PLAN = '[auth]\nsubscription_tier = "max"\ndefault_mode = "subscription"\n'

Opener = Callable[[], TelemetryStore]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(
    request: pytest.FixtureRequest, attune_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Opener:
    """Opens the store `attune` uses here: the SQLite file, or a PostgreSQL team store."""
    if request.param == "sqlite":
        return lambda: TelemetryStore(attune_home / "telemetry.db")
    from attune_cli.core.telemetry.postgres import PostgresCallStore

    url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("ATTUNE_STORE_URL", url)
    return lambda: PostgresCallStore(url)


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderEmulator]:
    with ProviderEmulator({}, api_key=ANTHROPIC_KEY) as running:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", running.anthropic_base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        yield running


def configure(home: Path, budget: str, auth: str = ON_THE_PLAN) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'{auth}\n[budgets]\ntimezone = "UTC"\n\n{budget}\n[routing.stages]\nanalysis = "capable"\n'
    )


def pay(open_store: Opener, usd: float) -> None:
    """A call of today paid per token."""
    with open_store() as store:
        store.record(CallRecord("code-review", "analysis", "claude-haiku-4-5", True, cost_usd=usd))


def plan_rows(open_store: Opener) -> list[tuple[str, float]]:
    with open_store() as store:
        return [
            (c.model, c.cost_usd or 0.0)
            for c in store.recent_calls(workflow="code-review", stage=None, limit=20)
            if c.billing == "subscription"
        ]


def reserved(open_store: Opener) -> float:
    with open_store() as store:
        return store.reserved_usd("code-review", time.time())


def test_a_refuse_budget_at_its_limit_lets_a_plan_covered_call_through(
    attune_home: Path, open_store: Opener, fake_claude: FakeClaude, emulator: ProviderEmulator
) -> None:
    configure(attune_home, "[budgets.code-review]\ndaily_usd = 1\n")
    pay(open_store, 1.0)  # the whole day's limit
    on_plan = runner.invoke(app, ["ask", "hello", "-w", "code-review", "-s", "analysis", "--json"])
    assert on_plan.exit_code == 0, on_plan.stderr
    answered = json.loads(on_plan.stdout)
    assert answered["billing"] == "subscription"
    assert len(fake_claude.runs()) == 1 and emulator.requests == []
    assert reserved(open_store) == 0.0
    ((model, covered),) = plan_rows(open_store)
    assert model == answered["model"] and covered > 0
    # The same call paid per token is refused: the budget still holds money.
    paid = runner.invoke(
        app, ["ask", "hello", "-w", "code-review", "-s", "analysis", "--mode", "api"]
    )
    assert paid.exit_code == 1
    assert "budget 'code-review' (daily $1.00): $1.00 spent" in paid.stderr
    assert emulator.requests == []
    # Status: the plan-covered call counts toward nothing, and is shown apart.
    status = runner.invoke(app, ["budget", "status", "--json"])
    assert status.exit_code == 0, status.stderr
    (day,) = json.loads(status.stdout)
    assert day["spent_usd"] == pytest.approx(1.0)
    assert day["plan_covered_usd"] == pytest.approx(covered)
    assert (day["left_usd"], day["state"]) == (0.0, "exceeded")
    table = runner.invoke(app, ["budget", "status"], env={"COLUMNS": "200"})
    assert "Plan-covered" in table.stdout and "exceeded" in table.stdout


def test_a_downgrade_budget_never_changes_the_model_on_the_plan(
    attune_home: Path, open_store: Opener, fake_claude: FakeClaude, emulator: ProviderEmulator
) -> None:
    configure(attune_home, '[budgets.code-review]\ndaily_usd = 1\non_exceed = "downgrade"\n')
    pay(open_store, 1.0)
    result = runner.invoke(
        app,
        ["ask", "hello", "-w", "code-review", "-m", "claude-sonnet-4-5", "--json", "--verbose"],
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["model"] == "claude-sonnet-4-5"
    (run,) = fake_claude.runs()
    argv = run["argv"]
    assert isinstance(argv, list) and argv[argv.index("--model") + 1] == "claude-sonnet-4-5"
    assert "instead of" not in result.stderr and "budget" not in result.stderr


def test_a_spent_budget_keeps_a_plan_covered_call_from_falling_back_to_paid_tokens(
    attune_home: Path,
    open_store: Opener,
    fake_claude: FakeClaude,
    emulator: ProviderEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With api_fallback, the plan's usage limit would send the call to the API; the budget is
    spent, so the call stays on the plan (and fails there) instead of being refused or paid."""
    configure(
        attune_home, "[budgets.code-review]\ndaily_usd = 1\n", ON_THE_PLAN + "api_fallback = true\n"
    )
    pay(open_store, 1.0)
    monkeypatch.setenv("FAKE_CLAUDE_SCENARIO", "usage_limit")
    result = runner.invoke(
        app, ["ask", "hello", "-w", "code-review", "-m", "claude-haiku-4-5", "--verbose"]
    )
    assert result.exit_code == 1
    assert len(fake_claude.runs()) == 1  # the plan was asked
    assert emulator.requests == []  # and nothing was paid per token
    said = " ".join(result.stderr.split())
    assert (
        "budget: the plan covers this call, so it goes ahead with no pay-per-token fallback" in said
    )
    assert "budget 'code-review' (daily $1.00): $1.00 spent" in said
    assert reserved(open_store) == 0.0


def test_a_plan_covered_calls_paid_fallback_is_held_and_capped_by_the_budget(
    attune_home: Path,
    open_store: Opener,
    fake_claude: FakeClaude,
    emulator: ProviderEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """$0.99 of $1 spent, downgrade: the routed call (claude-sonnet-4-5, capable) goes to the
    plan first; at the plan's usage limit it falls back to the API, where claude-sonnet-4-5
    could cost more than the $0.01 left and claude-haiku-4-5 fits. The reservation is released
    afterwards, and the paid attempt's cost counts."""
    configure(
        attune_home,
        '[budgets.code-review]\ndaily_usd = 1\non_exceed = "downgrade"\n',
        ON_THE_PLAN + "api_fallback = true\n",
    )
    pay(open_store, 0.99)
    monkeypatch.setenv("FAKE_CLAUDE_SCENARIO", "usage_limit")
    result = runner.invoke(
        app, ["ask", "hello", "-w", "code-review", "-s", "analysis", "--json", "--verbose"]
    )
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["billing"], document["model"]) == ("api", "claude-haiku-4-5")
    runs = fake_claude.runs()
    first = runs[0]["argv"]
    assert isinstance(first, list) and first[first.index("--model") + 1] == "claude-sonnet-4-5"
    assert emulator.requests_for("claude-sonnet-4-5") == 0
    assert emulator.requests_for("claude-haiku-4-5") == 1
    said = " ".join(result.stderr.split())
    assert "so a pay-per-token fallback may use only models that could cost at most" in said
    assert reserved(open_store) == 0.0
    (day,) = json.loads(runner.invoke(app, ["budget", "status", "--json"]).stdout)
    assert day["spent_usd"] == pytest.approx(0.99 + document["cost_usd"])
    assert document["cost_usd"] > 0
