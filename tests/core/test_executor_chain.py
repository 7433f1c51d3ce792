"""The executor does not make an outage or a rate limit worse.

One dead endpoint costs one attempt; a rate limit waits only as the server asks or moves on;
caps hold for every model, the first included; one call makes at most ``max_attempts``
network attempts. Every wait is checked on an injected clock; nothing sleeps.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from helpers.executor_fakes import (
    FakeBreaker,
    FakeClock,
    ScriptedProvider,
    answer,
    error,
    make_executor,
)

from attune_cli.core.breaker.sqlite import CircuitBreaker
from attune_cli.core.breaker.state import BreakerSettings
from attune_cli.core.errors import ConfigError, OperationError
from attune_cli.core.executor import RetryPolicy
from attune_cli.core.response import BREAKER_OPEN

ANTHROPIC_URL = "endpoint:http://llm.test"
OPENAI_URL = "endpoint:http://llm.test/v1"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def anthropic_429(headers: dict[str, str] | None = None) -> httpx.Response:
    """Anthropic's shape, with the body type a 5xx would carry: the status must decide."""
    body = {"type": "error", "error": {"type": "api_error", "message": "Too many requests"}}
    return httpx.Response(429, headers=headers, json=body)


# Classification


def test_an_anthropic_429_with_an_api_error_body_is_a_neutral_rate_limit(clock: FakeClock) -> None:
    provider = ScriptedProvider(claude_haiku_4_5=[anthropic_429()])
    breaker = FakeBreaker()
    response = make_executor(provider, clock, configured=("anthropic",), breaker=breaker).execute(
        "hi", model="claude-haiku-4-5", fallback=False
    )
    assert not response.success
    assert {failure for _key, failure, _wait in breaker.after} == {None}
    assert {failure for _key, failure in breaker.endpoint_after} == {False}


def test_a_real_breaker_never_opens_on_rate_limits(tmp_path: Path, clock: FakeClock) -> None:
    provider = ScriptedProvider(claude_haiku_4_5=[anthropic_429()])
    with CircuitBreaker(tmp_path / "t.db", BreakerSettings(), clock=clock.wall) as breaker:
        executor = make_executor(
            provider, clock, configured=("anthropic",), breaker=breaker, policy=RetryPolicy()
        )
        for _ in range(4):
            executor.execute("hi", model="claude-haiku-4-5", fallback=False)
        assert len(provider.requests) == 12
        assert {s.state for s in breaker.states()} <= {"closed"}


# One dead endpoint, one failure


@pytest.mark.parametrize(
    "raised", [httpx.ConnectError("[Errno 111] Connection refused"), httpx.ConnectTimeout("slow")]
)
def test_an_unreachable_endpoint_costs_one_attempt_and_skips_every_model_behind_it(
    clock: FakeClock, raised: Exception
) -> None:
    provider = ScriptedProvider(claude_sonnet_4_5=[raised], claude_haiku_4_5=[raised])
    breaker = FakeBreaker()
    notes: list[str] = []
    response = make_executor(provider, clock, breaker=breaker).execute(
        "hi", model="claude-sonnet-4-5", on_notice=notes.append
    )
    # No retry of sonnet, no request to haiku; the other endpoint answers.
    assert provider.models == ["claude-sonnet-4-5", "gpt-5"]
    assert response.success and response.model == "gpt-5"
    assert clock.slept == []
    assert (ANTHROPIC_URL, True) in breaker.endpoint_after
    assert ("anthropic/claude-sonnet-4-5", None, None) in breaker.after  # not the model's fault
    assert "anthropic/claude-haiku-4-5" not in breaker.before
    assert any("http://llm.test cannot be reached" in n for n in notes)


def test_a_dead_endpoint_everywhere_ends_in_one_attempt_per_endpoint(clock: FakeClock) -> None:
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    provider = ScriptedProvider(
        **{m.replace("-", "_"): [refused] for m in ("claude-haiku-4-5", "gpt-5-mini")}
    )
    response = make_executor(provider, clock, policy=RetryPolicy(escalate=True)).execute(
        "hi", model="claude-haiku-4-5"
    )
    assert provider.models == ["claude-haiku-4-5", "gpt-5-mini"]
    assert not response.success and response.error_kind == "connection"
    error_text = response.error or ""
    assert "claude-sonnet-4-5 (anthropic): skipped, http://llm.test unreachable" in error_text
    assert "gpt-5 (openai): skipped, http://llm.test/v1 unreachable" in error_text
    assert "\n" not in error_text


def test_an_open_endpoint_circuit_skips_its_models_without_asking_theirs(clock: FakeClock) -> None:
    provider = ScriptedProvider()
    breaker = FakeBreaker(open_for={ANTHROPIC_URL: 25.0})
    notes: list[str] = []
    response = make_executor(provider, clock, breaker=breaker).execute(
        "hi", model="claude-sonnet-4-5", on_notice=notes.append
    )
    assert provider.models == ["gpt-5"]
    assert response.success and response.fallback_used
    assert [a.error_kind for a in response.attempts] == [BREAKER_OPEN, None]
    assert not [k for k in breaker.before if k.startswith("anthropic/")]
    # One note for the endpoint, not one per model behind it.
    assert [n for n in notes if "circuit open" in n] == [
        "http://llm.test: circuit open, retry in 25 s; skipping every model behind it"
    ]


def test_a_model_circuit_open_hands_the_endpoint_permit_back(clock: FakeClock) -> None:
    breaker = FakeBreaker(open_for={"openai/gpt-5-mini": 10.0})
    make_executor(ScriptedProvider(), clock, configured=("openai",), breaker=breaker).execute(
        "hi", model="gpt-5-mini", fallback=False
    )
    assert breaker.endpoint_after == [(OPENAI_URL, None)]


def test_a_dropped_connection_is_the_models_failure_not_the_endpoints(clock: FakeClock) -> None:
    provider = ScriptedProvider()
    provider.script("gpt-5-mini", httpx.RemoteProtocolError("dropped"), answer)
    breaker = FakeBreaker()
    response = make_executor(provider, clock, breaker=breaker).execute("hi", model="gpt-5-mini")
    assert response.success and provider.models == ["gpt-5-mini", "gpt-5-mini"]
    assert breaker.endpoint_after == [(OPENAI_URL, False), (OPENAI_URL, False)]
    assert breaker.after[0] == ("openai/gpt-5-mini", True, None)


def test_with_the_real_breaker_the_next_call_sends_nothing_to_a_dead_endpoint(
    tmp_path: Path, clock: FakeClock
) -> None:
    refused = httpx.ConnectError("[Errno 111] Connection refused")
    provider = ScriptedProvider(claude_haiku_4_5=[refused])
    with CircuitBreaker(tmp_path / "t.db", BreakerSettings(), clock=clock.wall) as breaker:
        executor = make_executor(provider, clock, configured=("anthropic",), breaker=breaker)
        first = executor.execute("hi", model="claude-haiku-4-5")
        assert len(provider.requests) == 1 and not first.success
        second = executor.execute("hi", model="claude-sonnet-4-5")
        assert len(provider.requests) == 1  # nothing sent
        assert second.error_kind == BREAKER_OPEN and second.retry_after_s == pytest.approx(30)
        states = {s.key: s.state for s in breaker.states()}
        assert states == {ANTHROPIC_URL: "open"}  # the model is not to blame
        # The server is back: after the open period one probe closes the endpoint.
        clock.now += 31
        provider.script("claude-haiku-4-5", answer)
        assert executor.execute("hi", model="claude-haiku-4-5").success
        assert len(provider.requests) == 2
        assert {s.key: s.state for s in breaker.states()}[ANTHROPIC_URL] == "closed"


# Rate limits


def test_a_rate_limit_without_a_wait_moves_on_at_once(clock: FakeClock) -> None:
    provider = ScriptedProvider(claude_sonnet_4_5=[anthropic_429()])
    notes: list[str] = []
    response = make_executor(provider, clock).execute(
        "hi", model="claude-sonnet-4-5", on_notice=notes.append
    )
    assert provider.models == ["claude-sonnet-4-5", "gpt-5"]
    assert response.success and clock.slept == []
    assert "claude-sonnet-4-5 (anthropic): rate limited; trying the next model instead" in notes


def test_a_rate_limit_wait_that_fits_is_honoured(clock: FakeClock) -> None:
    provider = ScriptedProvider()
    provider.script("claude-sonnet-4-5", anthropic_429({"retry-after": "3"}), answer)
    response = make_executor(provider, clock).execute("hi", model="claude-sonnet-4-5")
    assert provider.models == ["claude-sonnet-4-5", "claude-sonnet-4-5"]
    assert response.success and not response.fallback_used
    assert clock.slept == [3.0]


def test_a_rate_limit_wait_past_the_deadline_tries_another_provider(clock: FakeClock) -> None:
    provider = ScriptedProvider(claude_sonnet_4_5=[anthropic_429({"retry-after": "30"})])
    response = make_executor(provider, clock).execute(
        "hi", model="claude-sonnet-4-5", deadline_s=20
    )
    assert provider.models == ["claude-sonnet-4-5", "gpt-5"]
    assert response.success and clock.slept == []


def test_a_rate_limited_model_with_nowhere_to_go_backs_off(clock: FakeClock) -> None:
    provider = ScriptedProvider()
    provider.script("gpt-5-mini", error(429), answer)
    response = make_executor(provider, clock).execute("hi", model="gpt-5-mini", fallback=False)
    assert response.success and clock.slept == [0.5]


# The attempt budget


def test_max_attempts_bounds_the_whole_chain(clock: FakeClock) -> None:
    provider = ScriptedProvider(
        **{
            m: [error(500)]
            for m in ("claude_haiku_4_5", "gpt_5_mini", "gpt_5", "claude_sonnet_4_5")
        }
    )
    policy = RetryPolicy(max_retries=2, max_attempts=4, escalate=True)
    response = make_executor(provider, clock, policy=policy).execute("hi", model="claude-haiku-4-5")
    assert provider.models == ["claude-haiku-4-5"] * 3 + ["gpt-5-mini"]
    assert not response.success
    assert "(stopped after 4 attempts, [executor] max_attempts = 4)" in (response.error or "")
    # No wait was slept for a retry the budget did not allow.
    assert clock.slept == [0.5, 1.0]


def test_the_default_budget_is_six_attempts(clock: FakeClock) -> None:
    provider = ScriptedProvider(**{m: [error(503)] for m in ("gpt_5", "gpt_5_mini")})
    provider.script("claude-sonnet-4-5", error(503))
    provider.script("claude-haiku-4-5", error(503))
    make_executor(provider, clock).execute("hi", model="claude-sonnet-4-5")
    assert len(provider.requests) == 6


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ({"max_attempts": 0}, "executor.max_attempts"),
        ({"max_attempts": 2.5}, "executor.max_attempts"),
        ({"max_attempts": "6"}, "executor.max_attempts"),
        ({"escalate": "yes"}, "executor.escalate"),
        ({"escalate": 1}, "executor.escalate"),
        ({"retry_delay_s": -0.1}, "executor.retry_delay_s"),
        ({"retry_delay_s": 9}, "executor.retry_delay_s"),
        ({"retry_delay_s": "1"}, "executor.retry_delay_s"),
    ],
)
def test_bad_budget_or_escalate_settings_name_the_key(section: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        RetryPolicy.from_config({"executor": section}, Path("c.toml"))


def test_budget_and_escalate_are_read_from_config() -> None:
    policy = RetryPolicy.from_config(
        {"executor": {"max_attempts": 3, "escalate": True}}, Path("c.toml")
    )
    assert (policy.max_attempts, policy.escalate) == (3, True)
    assert (RetryPolicy().max_attempts, RetryPolicy().escalate) == (6, False)


def test_the_first_back_off_is_read_from_config() -> None:
    policy = RetryPolicy.from_config({"executor": {"retry_delay_s": 0.05}}, Path("c.toml"))
    assert policy.delay_s(0, None, 0.0) == pytest.approx(0.05)
    assert policy.delay_s(2, None, 0.0) == pytest.approx(0.2)
    assert RetryPolicy().delay_s(0, None, 0.0) == pytest.approx(0.5)


# Caps are hard, the first model included


def test_a_first_model_over_the_cost_cap_is_never_called(clock: FakeClock) -> None:
    provider = ScriptedProvider()
    notes: list[str] = []
    # 1024 output tokens: sonnet could cost $0.0154, gpt-5 $0.0103; the cheap tier far less.
    response = make_executor(provider, clock).execute(
        "hi", model="claude-sonnet-4-5", max_cost_usd=0.01, on_notice=notes.append
    )
    assert provider.models == ["gpt-5-mini"]
    assert response.success and response.fallback_used
    assert any(
        n.startswith("claude-sonnet-4-5 (anthropic) skipped: it could cost $0.0154") for n in notes
    )


def test_no_model_within_the_caps_raises_and_sends_nothing(clock: FakeClock) -> None:
    provider = ScriptedProvider()
    executor = make_executor(provider, clock)
    with pytest.raises(OperationError) as caught:
        executor.execute("hi", model="claude-sonnet-4-5", max_cost_usd=0.000001)
    message = caught.value.message
    assert message.startswith("no model within the caps: ")
    assert (
        "claude-sonnet-4-5 (anthropic) could cost $0.0154, over the cost cap $0.000001" in message
    )
    assert "gpt-5-mini (openai) could cost" in message
    assert provider.requests == []


def test_admissible_rules_out_models_and_is_named(clock: FakeClock) -> None:
    provider = ScriptedProvider(claude_sonnet_4_5=[error(500)])
    executor = make_executor(provider, clock, policy=RetryPolicy(max_retries=0))
    slow = {"gpt-5", "gpt-5-mini"}
    response = executor.execute(
        "hi",
        model="claude-sonnet-4-5",
        admissible=lambda model: model not in slow,
        admissible_cap="--max-latency 800 ms",
    )
    assert provider.models == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    assert response.success and response.model == "claude-haiku-4-5"
    with pytest.raises(OperationError) as caught:
        executor.execute(
            "hi",
            model="gpt-5",
            fallback=False,
            admissible=lambda model: model not in slow,
            admissible_cap="--max-latency 800 ms",
        )
    assert caught.value.message == (
        "no model within the caps: gpt-5 (openai) ruled out by --max-latency 800 ms"
    )
    assert provider.models == ["claude-sonnet-4-5", "claude-haiku-4-5"]
