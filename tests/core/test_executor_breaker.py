"""The executor with the real CircuitBreaker and TelemetryStore on one SQLite file.

A model failing every call trips its breaker; later calls reach no server; once the open
period has passed (on the injected clock), exactly one probe goes out and closes it again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.executor_fakes import FakeClock, ScriptedProvider, answer, error, make_executor

from attune_cli.core.breaker.sqlite import CircuitBreaker
from attune_cli.core.breaker.state import BreakerSettings
from attune_cli.core.executor import RetryPolicy
from attune_cli.core.response import BREAKER_OPEN, LLMResponse
from attune_cli.core.telemetry.sqlite import TelemetryStore


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "telemetry.db"


def test_failing_model_trips_its_breaker_then_one_probe_recovers_it(db: Path) -> None:
    clock = FakeClock()
    provider = ScriptedProvider(gpt_5_mini=[error(500)])
    with (
        CircuitBreaker(db, BreakerSettings(), clock=clock.wall) as breaker,
        TelemetryStore(db, clock=clock.wall) as store,
    ):
        executor = make_executor(
            provider,
            clock,
            configured=("openai",),
            breaker=breaker,
            store=store,
            policy=RetryPolicy(max_retries=0),
        )

        def ask() -> LLMResponse:
            return executor.execute("hi", model="gpt-5-mini", fallback=False)

        for _ in range(5):
            ask()
        assert len(provider.requests) == 5
        refused = ask()
        assert len(provider.requests) == 5  # nothing reached the server
        assert refused.error_kind == BREAKER_OPEN
        assert refused.retry_after_s == pytest.approx(30)
        assert "circuit open" in (refused.error or "")

        clock.now += 31
        provider.script("gpt-5-mini", answer)
        probe = ask()
        assert probe.success
        assert len(provider.requests) == 6  # exactly one probe went out
        [state] = breaker.states()
        assert (state.key, state.state) == ("openai/gpt-5-mini", "closed")
        # Five failures and the probe were recorded; the refusal sent nothing and is not a row.
        assert store.count() == 6


def test_breaker_open_on_the_first_model_falls_back_to_the_next(db: Path) -> None:
    clock = FakeClock()
    provider = ScriptedProvider(claude_haiku_4_5=[error(529)])
    with CircuitBreaker(db, BreakerSettings(consecutive_failures=2), clock=clock.wall) as breaker:
        executor = make_executor(
            provider, clock, breaker=breaker, policy=RetryPolicy(max_retries=1)
        )
        first = executor.execute("hi", model="claude-haiku-4-5")
        assert first.success and first.model == "gpt-5-mini" and first.fallback_used
        assert provider.models == ["claude-haiku-4-5", "claude-haiku-4-5", "gpt-5-mini"]
        second = executor.execute("hi", model="claude-haiku-4-5")
        assert second.model == "gpt-5-mini"
        assert provider.models[3:] == ["gpt-5-mini"]
        assert second.attempts[0].error_kind == BREAKER_OPEN


def test_retry_time_is_the_open_circuits_not_an_older_server_hint(db: Path) -> None:
    clock = FakeClock()
    provider = ScriptedProvider(gpt_5_mini=[error(500, {"retry-after": "1"})])
    with CircuitBreaker(db, BreakerSettings(consecutive_failures=2), clock=clock.wall) as breaker:
        executor = make_executor(
            provider,
            clock,
            configured=("openai",),
            breaker=breaker,
            policy=RetryPolicy(max_retries=3),
        )
        response = executor.execute("hi", model="gpt-5-mini", fallback=False)
    assert [a.error_kind for a in response.attempts] == [
        "server_error",
        "server_error",
        BREAKER_OPEN,
    ]
    assert clock.slept == [1.0]
    # The server said 1 s, but the circuit that opened since will refuse calls for 30 s.
    assert response.retry_after_s == pytest.approx(30, abs=1)
    assert (response.error or "").endswith("then its circuit opened. Retry in 30 s")
