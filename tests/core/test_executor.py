"""ResilientExecutor: retries, waits, deadline, fallback chain, breaker and telemetry hand-offs.

Every wait is checked on an injected clock; nothing sleeps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest
from helpers.executor_fakes import (
    EPOCH,
    KEY,
    FakeBreaker,
    FakeClock,
    FakeStore,
    ScriptedProvider,
    answer,
    error,
    make_executor,
    stream_then_error,
)

from attune_cli.core.errors import OperationError, UsageError
from attune_cli.core.executor import RetryPolicy, failure_error, retry_after_s
from attune_cli.core.response import BREAKER_OPEN


def http_date(epoch_s: float) -> str:
    return format_datetime(datetime.fromtimestamp(epoch_s, UTC), usegmt=True)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_healthy_call_streams_and_fills_the_envelope(clock: FakeClock) -> None:
    provider = ScriptedProvider()
    pieces: list[str] = []
    response = make_executor(provider, clock).execute(
        "hi", model="claude-haiku-4-5", on_text=pieces.append
    )
    assert response.success and response.content == "Hello there"
    assert pieces == ["Hello", " there"]
    assert (response.model, response.provider, response.tier) == (
        "claude-haiku-4-5",
        "anthropic",
        "cheap",
    )
    assert (response.input_tokens, response.output_tokens) == (10, 4)
    assert response.cost_usd == pytest.approx((10 * 1.0 + 4 * 5.0) / 1_000_000)
    assert not response.fallback_used
    assert [(a.status, a.error_kind) for a in response.attempts] == [(200, None)]
    assert provider.requests[0].headers["x-api-key"] == KEY


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_transient_statuses_are_retried_with_exponential_backoff(
    clock: FakeClock, status: int
) -> None:
    provider = ScriptedProvider(gpt_5_mini=[error(status), error(status), error(status)])
    response = make_executor(provider, clock, configured=("openai",)).execute(
        "hi", model="gpt-5-mini", fallback=False
    )
    assert not response.success
    assert provider.models == ["gpt-5-mini"] * 3
    assert clock.slept == [0.5, 1.0]


def test_backoff_doubles_to_eight_seconds_and_jitter_only_shortens(clock: FakeClock) -> None:
    policy = RetryPolicy(max_retries=6)
    assert [policy.delay_s(n, None, rand=0.0) for n in range(7)] == [0.5, 1, 2, 4, 8, 8, 8]
    # Up to 25 % is taken off, never added: synchronised clients spread out, none waits longer.
    assert policy.delay_s(0, None, rand=0.999) == pytest.approx(0.5 * 0.75, abs=1e-3)
    assert policy.delay_s(4, None, rand=0.5) == pytest.approx(8 * 0.875)


@pytest.mark.parametrize(
    ("headers", "expected_s"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # the finer header wins
        (
            {
                "retry-after": format_datetime(
                    datetime.fromtimestamp(EPOCH + 1000 + 7, UTC), usegmt=True
                )
            },
            7.0,
        ),
        ({"retry-after": "120"}, 0.5),  # beyond 60 s: the server is ignored, back-off applies
        ({"retry-after": "0"}, 0.5),
        ({"retry-after": "soon"}, 0.5),
    ],
)
def test_server_wait_is_honoured_up_to_60_s(
    clock: FakeClock, headers: dict[str, str], expected_s: float
) -> None:
    provider = ScriptedProvider()
    provider.script("gpt-5-mini", error(429, headers), answer)
    response = make_executor(provider, clock, configured=("openai",)).execute(
        "hi", model="gpt-5-mini"
    )
    assert response.success
    assert clock.slept == [pytest.approx(expected_s, abs=1e-6)]


def test_retry_after_parsing() -> None:
    now = EPOCH
    date = http_date(now + 30)
    assert retry_after_s({"retry-after": date}, now) == pytest.approx(30)
    assert retry_after_s({"retry-after": "2.5"}, now) == 2.5
    assert retry_after_s({"retry-after-ms": "abc", "retry-after": "4"}, now) == 4.0
    assert retry_after_s({}, now) is None
    assert retry_after_s({"retry-after": "nan"}, now) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_caller_errors_are_never_retried_nor_sent_elsewhere(clock: FakeClock, status: int) -> None:
    provider = ScriptedProvider(claude_haiku_4_5=[error(status, {"x-should-retry": "true"})])
    response = make_executor(provider, clock).execute("hi", model="claude-haiku-4-5")
    assert not response.success
    assert provider.models == ["claude-haiku-4-5"]
    assert clock.slept == []
    assert "not retried" in (response.error or "")
    assert response.retry_after_s is None


def test_x_should_retry_false_stops_retries_of_a_5xx(clock: FakeClock) -> None:
    provider = ScriptedProvider(gpt_5_mini=[error(503, {"x-should-retry": "false"})])
    response = make_executor(provider, clock, configured=("openai",)).execute(
        "hi", model="gpt-5-mini", fallback=False
    )
    assert not response.success and provider.models == ["gpt-5-mini"]


def test_x_should_retry_true_retries_an_unusual_status(clock: FakeClock) -> None:
    provider = ScriptedProvider()
    provider.script("gpt-5-mini", error(418, {"x-should-retry": "true"}), answer)
    response = make_executor(provider, clock, configured=("openai",)).execute(
        "hi", model="gpt-5-mini", fallback=False
    )
    assert response.success and provider.models == ["gpt-5-mini"] * 2


@pytest.mark.parametrize(
    "raised",
    [
        httpx.ReadTimeout("slow"),
        httpx.ReadError("reset by peer"),
        httpx.RemoteProtocolError("dropped"),
    ],
)
def test_timeouts_and_connection_errors_are_retried(clock: FakeClock, raised: Exception) -> None:
    provider = ScriptedProvider()
    provider.script("gpt-5-mini", raised, answer)
    response = make_executor(provider, clock, configured=("openai",)).execute(
        "hi", model="gpt-5-mini"
    )
    assert response.success
    assert [a.error_kind for a in response.attempts] == [
        "timeout" if isinstance(raised, httpx.TimeoutException) else "connection",
        None,
    ]


def test_error_event_before_the_first_token_is_retried(clock: FakeClock) -> None:
    provider = ScriptedProvider()
    provider.script("claude-haiku-4-5", stream_then_error(0), answer)
    response = make_executor(provider, clock).execute("hi", model="claude-haiku-4-5")
    assert response.success and len(provider.requests) == 2
    assert response.attempts[0].status == 200 and response.attempts[0].error_kind == "overloaded"


def test_failure_after_the_first_token_is_final(clock: FakeClock) -> None:
    provider = ScriptedProvider(claude_haiku_4_5=[stream_then_error(2)])
    pieces: list[str] = []
    store = FakeStore()
    response = make_executor(provider, clock, store=store).execute(
        "hi", model="claude-haiku-4-5", on_text=pieces.append
    )
    # The reader has seen text: no retry and no other model's answer appended to it.
    assert not response.success
    assert provider.models == ["claude-haiku-4-5"]
    assert response.content == "p0 p1 " == "".join(pieces)
    assert "broke off" in (response.error or "")
    assert "incomplete" in (failure_error(response).hint or "")
    assert [r.error_kind for r in store.records] == ["overloaded"]


def test_no_sleep_past_the_deadline(clock: FakeClock) -> None:
    provider = ScriptedProvider(gpt_5_mini=[error(529, {"retry-after": "30"})])
    executor = make_executor(provider, clock, configured=("openai",))
    response = executor.execute("hi", model="gpt-5-mini", fallback=False, deadline_s=10)
    assert clock.slept == []
    assert provider.models == ["gpt-5-mini"]
    assert not response.success
    assert "deadline" in (response.error or "")
    assert response.retry_after_s == 30


def test_deadline_cut_moves_on_to_the_next_model(clock: FakeClock) -> None:
    provider = ScriptedProvider(claude_haiku_4_5=[error(529, {"retry-after": "30"})])
    response = make_executor(provider, clock).execute("hi", model="claude-haiku-4-5", deadline_s=10)
    assert response.success and response.model == "gpt-5-mini"
    assert clock.slept == []


def test_fallback_chain_same_tier_other_provider_then_cheaper_tiers(clock: FakeClock) -> None:
    provider = ScriptedProvider(claude_sonnet_4_5=[error(500)], gpt_5=[error(500)])
    executor = make_executor(provider, clock, policy=RetryPolicy(max_retries=0))
    planned = executor.chain_for("claude-sonnet-4-5")
    chain, skipped = list(planned.chain), list(planned.unconfigured)
    # Never a dearer tier by default; other providers before the one that just failed.
    assert [t.model for t in chain] == [
        "claude-sonnet-4-5",
        "gpt-5",
        "gpt-5-mini",
        "claude-haiku-4-5",
    ]
    assert skipped == []
    notes: list[str] = []
    response = executor.execute("hi", model="claude-sonnet-4-5", on_notice=notes.append)
    assert response.success and response.fallback_used
    assert (response.model, response.tier) == ("gpt-5-mini", "cheap")
    assert provider.models == ["claude-sonnet-4-5", "gpt-5", "gpt-5-mini"]
    assert "falling back to gpt-5-mini (openai)" in notes


def test_the_cheapest_tier_never_escalates_by_default(clock: FakeClock) -> None:
    provider = ScriptedProvider(claude_haiku_4_5=[error(500)], gpt_5_mini=[error(500)])
    executor = make_executor(provider, clock, policy=RetryPolicy(max_retries=0))
    assert [t.model for t in executor.chain_for("claude-haiku-4-5").chain] == [
        "claude-haiku-4-5",
        "gpt-5-mini",
    ]
    response = executor.execute("hi", model="claude-haiku-4-5")
    assert not response.success
    assert provider.models == ["claude-haiku-4-5", "gpt-5-mini"]


def test_escalate_adds_dearer_tiers_last_and_within_the_cost_cap(clock: FakeClock) -> None:
    provider = ScriptedProvider(claude_haiku_4_5=[error(500)], gpt_5_mini=[error(500)])
    policy = RetryPolicy(max_retries=0, escalate=True)
    executor = make_executor(provider, clock, policy=policy)
    assert [t.model for t in executor.chain_for("claude-haiku-4-5").chain] == [
        "claude-haiku-4-5",
        "gpt-5-mini",
        "gpt-5",
        "claude-sonnet-4-5",
        "gpt-5-pro",
        "claude-opus-4-5",
    ]
    # 100 + 1000 tokens: gpt-5 costs up to $0.0101, sonnet $0.0153, the premium tier more.
    capped = executor.chain_for(
        "claude-haiku-4-5", max_cost_usd=0.012, worst_case_tokens=(100, 1000)
    )
    assert [t.model for t in capped.chain] == ["claude-haiku-4-5", "gpt-5-mini", "gpt-5"]
    response = executor.execute(
        "x" * 396, model="claude-haiku-4-5", max_tokens=1000, max_cost_usd=0.012
    )
    assert response.success and response.model == "gpt-5"
    assert provider.models == ["claude-haiku-4-5", "gpt-5-mini", "gpt-5"]


def test_fallback_skips_unconfigured_providers(clock: FakeClock) -> None:
    provider = ScriptedProvider(gpt_5=[error(500)])
    executor = make_executor(
        provider, clock, configured=("openai",), policy=RetryPolicy(max_retries=0)
    )
    planned = executor.chain_for("gpt-5")
    chain, skipped = list(planned.chain), list(planned.unconfigured)
    assert [t.model for t in chain] == ["gpt-5", "gpt-5-mini"]
    assert [t.model for t in skipped] == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    response = executor.execute("hi", model="gpt-5")
    assert response.model == "gpt-5-mini" and response.fallback_used


def test_a_forced_model_on_an_unconfigured_provider_says_how_to_configure(clock: FakeClock) -> None:
    executor = make_executor(ScriptedProvider(), clock, configured=("openai",))
    with pytest.raises(OperationError) as caught:
        executor.execute("hi", model="claude-haiku-4-5", fallback=False)
    assert "anthropic is not configured" in caught.value.message
    assert "ANTHROPIC_API_KEY" in (caught.value.hint or "")


def test_an_unknown_model_goes_to_the_only_configured_provider(clock: FakeClock) -> None:
    provider = ScriptedProvider()
    executor = make_executor(provider, clock, configured=("openai",))
    response = executor.execute("hi", model="llama3.1:8b")
    assert response.success and response.provider == "openai" and response.tier is None
    both = make_executor(provider, clock)
    with pytest.raises(UsageError):
        both.execute("hi", model="llama3.1:8b")


def test_max_cost_keeps_dear_fallbacks_out(clock: FakeClock) -> None:
    executor = make_executor(ScriptedProvider(), clock)
    chain = executor.chain_for(
        "claude-haiku-4-5", max_cost_usd=0.002, worst_case_tokens=(100, 100)
    ).chain
    # gpt-5-pro at $15/$120 per Mtok would cost $0.0135 for 100 + 100 tokens.
    assert "gpt-5-pro" not in [t.model for t in chain]
    assert "gpt-5-mini" in [t.model for t in chain]


def test_open_breaker_sends_nothing_and_falls_back(clock: FakeClock) -> None:
    provider = ScriptedProvider()
    breaker = FakeBreaker(open_for={"anthropic/claude-haiku-4-5": 25.0})
    notes: list[str] = []
    response = make_executor(provider, clock, breaker=breaker).execute(
        "hi", model="claude-haiku-4-5", on_notice=notes.append
    )
    assert provider.models == ["gpt-5-mini"]
    assert response.success and response.fallback_used
    assert response.attempts[0].error_kind == BREAKER_OPEN and not response.attempts[0].sent
    assert any("circuit open, retry in 25 s" in n for n in notes)
    assert breaker.after == [("openai/gpt-5-mini", False, None)]


def test_every_option_gone_says_what_was_tried_and_when_to_retry(clock: FakeClock) -> None:
    provider = ScriptedProvider(gpt_5=[error(503, {"retry-after": "12"})])
    breaker = FakeBreaker(open_for={"openai/gpt-5-mini": 40.0})
    response = make_executor(
        provider, clock, configured=("openai",), breaker=breaker, policy=RetryPolicy(max_retries=1)
    ).execute("hi", model="gpt-5")
    assert not response.success
    assert response.error == (
        "no model could answer; tried gpt-5 (openai): 2 attempts, last HTTP 503 "
        "server_error; gpt-5-mini (openai): circuit open. Retry in 12 s"
    )
    assert response.retry_after_s == 12
    raised = failure_error(response)
    assert raised.retry_after_s == 12 and raised.kind == "server_error"


def test_all_circuits_open_is_a_breaker_open_failure(clock: FakeClock) -> None:
    provider = ScriptedProvider()
    breaker = FakeBreaker(open_for={"openai/gpt-5": 20.0, "openai/gpt-5-mini": 9.0})
    response = make_executor(provider, clock, configured=("openai",), breaker=breaker).execute(
        "hi", model="gpt-5"
    )
    assert provider.requests == []
    assert response.error_kind == BREAKER_OPEN and response.retry_after_s == 9
    assert "route breakers" in (failure_error(response).hint or "")


def test_breaker_is_told_each_outcome_classified(clock: FakeClock) -> None:
    provider = ScriptedProvider()
    provider.script(
        "claude-haiku-4-5",
        error(529, {"retry-after": "2"}),
        error(429, {"retry-after": "1"}),
        answer,
    )
    breaker = FakeBreaker()
    make_executor(provider, clock, breaker=breaker, policy=RetryPolicy(max_retries=3)).execute(
        "hi", model="claude-haiku-4-5"
    )
    key = "anthropic/claude-haiku-4-5"
    # 529 counts against the model; 429 is a rate limit (neutral); then a success.
    assert breaker.after == [(key, True, 2.0), (key, None, 1.0), (key, False, None)]


def test_cancellation_hands_the_permit_back_as_neutral(clock: FakeClock) -> None:
    provider = ScriptedProvider(gpt_5_mini=[KeyboardInterrupt()])
    breaker = FakeBreaker()
    store = FakeStore()
    with pytest.raises(KeyboardInterrupt):
        make_executor(provider, clock, breaker=breaker, store=store).execute(
            "hi", model="gpt-5-mini"
        )
    assert breaker.after == [("openai/gpt-5-mini", None, None)]
    assert store.records == []


def test_every_attempt_becomes_a_telemetry_row(clock: FakeClock) -> None:
    provider = ScriptedProvider(claude_haiku_4_5=[error(500)])
    provider.script("gpt-5-mini", httpx.ReadTimeout("slow"), answer)
    store = FakeStore()
    make_executor(provider, clock, store=store, policy=RetryPolicy(max_retries=1)).execute(
        "hi", model="claude-haiku-4-5", workflow="review", stage="triage"
    )
    rows = [
        (r.model, r.provider, r.tier, r.success, r.error_kind, r.status, r.attempt)
        for r in store.records
    ]
    assert rows == [
        ("claude-haiku-4-5", "anthropic", "cheap", False, "server_error", 500, 1),
        ("claude-haiku-4-5", "anthropic", "cheap", False, "server_error", 500, 2),
        ("gpt-5-mini", "openai", "cheap", False, "timeout", None, 3),
        ("gpt-5-mini", "openai", "cheap", True, None, 200, 4),
    ]
    assert {(r.workflow, r.stage) for r in store.records} == {("review", "triage")}
    assert store.records[-1].cost_usd == pytest.approx((10 * 0.25 + 4 * 2.0) / 1_000_000)
    assert store.records[0].cost_usd is None


def test_a_store_that_cannot_be_written_does_not_lose_the_answer(clock: FakeClock) -> None:
    notes: list[str] = []
    response = make_executor(ScriptedProvider(), clock, store=FakeStore(fail=True)).execute(
        "hi", model="gpt-5-mini", on_notice=notes.append
    )
    assert response.success
    assert any("telemetry not recorded" in n for n in notes)


def test_keys_never_reach_the_envelope(clock: FakeClock) -> None:
    body = {"error": {"message": f"Incorrect API key provided: {KEY}"}}
    provider = ScriptedProvider(gpt_5_mini=[httpx.Response(401, json=body)])
    response = make_executor(provider, clock).execute("hi", model="gpt-5-mini")
    assert KEY not in str(response.to_dict())
    assert KEY not in str(failure_error(response))


def test_retry_policy_from_config_names_the_bad_key() -> None:
    from pathlib import Path

    from attune_cli.core.errors import ConfigError

    policy = RetryPolicy.from_config({"executor": {"max_retries": 4}}, Path("c.toml"))
    assert policy.max_retries == 4
    with pytest.raises(ConfigError, match=r"executor\.deadline_s"):
        RetryPolicy.from_config({"executor": {"deadline_s": "soon"}}, Path("c.toml"))
