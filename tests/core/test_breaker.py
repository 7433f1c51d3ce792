"""CircuitBreaker: transitions, open periods, the probe lease, stale results, neutral outcomes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from attune_cli.core.breaker.sqlite import CircuitBreaker
from attune_cli.core.breaker.state import (
    BreakerSettings,
    Permit,
    breaker_key,
    counts_as_failure,
    endpoint_key,
)
from attune_cli.core.errors import BreakerOpenError

KEY = "openai/gpt-4o-mini"
START = 1_800_000_000.0


class FakeClock:
    """Wall-clock epoch seconds that move only when a test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "data" / "telemetry.db"


@pytest.fixture
def breaker(store: Path, clock: FakeClock) -> CircuitBreaker:
    with CircuitBreaker(store, clock=clock, owner="test") as made:
        yield made


def call(breaker: CircuitBreaker, failure: bool | None, key: str = KEY, **kw: float) -> Permit:
    permit = breaker.before_call(key)
    breaker.after_call(permit, failure=failure, **kw)
    return permit


def state_of(breaker: CircuitBreaker, key: str = KEY) -> dict:
    return next(s.as_dict() for s in breaker.states() if s.key == key)


def rejection(breaker: CircuitBreaker, key: str = KEY) -> BreakerOpenError:
    with pytest.raises(BreakerOpenError) as caught:
        breaker.before_call(key)
    assert caught.value.key == key
    return caught.value


def trip(breaker: CircuitBreaker, key: str = KEY) -> None:
    for _ in range(breaker.settings.consecutive_failures):
        call(breaker, True, key)
    assert state_of(breaker, key)["state"] != "closed"


# Closed


def test_a_closed_breaker_lets_calls_through_without_creating_the_store(
    breaker: CircuitBreaker, store: Path
) -> None:
    permit = breaker.before_call(KEY)

    assert permit == Permit(KEY, 0, probe=False, started_at=START)
    assert not store.exists()
    assert breaker.states() == []


def test_five_consecutive_failures_open_the_breaker(breaker: CircuitBreaker) -> None:
    for _ in range(4):
        call(breaker, True)
    assert state_of(breaker)["state"] == "closed"
    assert state_of(breaker)["consecutive_failures"] == 4

    call(breaker, True)

    assert state_of(breaker)["state"] == "open"
    assert rejection(breaker).retry_after_s == pytest.approx(30.0)


def test_a_success_ends_the_run_of_consecutive_failures(store: Path, clock: FakeClock) -> None:
    settings = BreakerSettings(failure_rate_threshold=1.0)  # only a run of failures can trip it
    with CircuitBreaker(store, settings, clock=clock) as breaker:
        for outcome in (True, True, True, True, False, True, True, True, True):
            call(breaker, outcome)

        assert state_of(breaker)["state"] == "closed"
        assert state_of(breaker)["consecutive_failures"] == 4


def test_a_failure_rate_at_the_threshold_opens_the_breaker(breaker: CircuitBreaker) -> None:
    # Never more than two failures in a row: only the rate can trip it.
    for outcome in (False, True, False, True):
        call(breaker, outcome)
    assert state_of(breaker)["state"] == "closed", "4 calls are fewer than min_calls"

    call(breaker, True)  # 3 failures of 5 calls = 60 %

    assert state_of(breaker)["state"] == "open"
    assert state_of(breaker)["failures"] == 3
    assert state_of(breaker)["calls"] == 5


def test_a_failure_rate_below_the_threshold_keeps_it_closed(breaker: CircuitBreaker) -> None:
    for outcome in (False, False, False, True, False, True):  # 2 of 6 = 33 %
        call(breaker, outcome)

    assert state_of(breaker)["state"] == "closed"


def test_a_rate_threshold_like_30_percent_trips_exactly_at_3_of_10(
    store: Path, clock: FakeClock
) -> None:
    settings = BreakerSettings(failure_rate_threshold=0.3, min_calls=10)
    with CircuitBreaker(store, settings, clock=clock) as breaker:
        for outcome in [False] * 7 + [True, True]:
            call(breaker, outcome)
        assert state_of(breaker)["state"] == "closed"
        call(breaker, True)
        assert state_of(breaker)["state"] == "open"


def test_outcomes_older_than_the_window_no_longer_count(
    store: Path, clock: FakeClock, breaker: CircuitBreaker
) -> None:
    settings = BreakerSettings(consecutive_failures=100)
    with CircuitBreaker(store, settings, clock=clock) as patient:
        call(patient, True)
        call(patient, True)
        clock.advance(121)
        for outcome in (False, False, True):
            call(patient, outcome)

        # 3 failures of 5 would trip; within the window it is 1 of 3.
        assert state_of(patient)["state"] == "closed"
        assert (state_of(patient)["failures"], state_of(patient)["calls"]) == (1, 3)
    # The old events were deleted, not merely ignored: the table stays one window long.
    with sqlite3.connect(store) as conn:
        assert conn.execute("SELECT COUNT(*) FROM breaker_events").fetchone()[0] == 3


def test_breakers_are_independent_per_key(breaker: CircuitBreaker) -> None:
    trip(breaker, "anthropic/claude-haiku")

    permit = breaker.before_call(KEY)

    assert not permit.probe
    assert rejection(breaker, "anthropic/claude-haiku")


# Open, half-open and the probe


def test_an_open_breaker_rejects_until_its_open_period_ends(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    trip(breaker)
    clock.advance(29)

    assert rejection(breaker).retry_after_s == pytest.approx(1.0)
    assert state_of(breaker)["state"] == "open"

    clock.advance(1)
    assert state_of(breaker)["state"] == "half_open"
    assert breaker.before_call(KEY).probe


def test_half_open_admits_one_probe_and_its_success_closes_and_resets(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    trip(breaker)
    clock.advance(30)

    probe = breaker.before_call(KEY)
    clock.advance(2)
    waiting = rejection(breaker)

    assert probe.probe
    assert waiting.retry_after_s == pytest.approx(28.0), "until the probe's lease expires"
    assert state_of(breaker)["probe_in_flight"] is True

    breaker.after_call(probe, failure=False)

    after = state_of(breaker)
    assert after["state"] == "closed"
    assert (after["failures"], after["calls"], after["consecutive_failures"]) == (0, 0, 0)
    assert not breaker.before_call(KEY).probe
    # A fresh start: it takes five new failures to trip again, not one.
    for _ in range(4):
        call(breaker, True)
    assert state_of(breaker)["state"] == "closed"


def test_each_failed_probe_doubles_the_open_period_up_to_the_cap(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    trip(breaker)
    periods = [rejection(breaker).retry_after_s]
    for _ in range(5):
        clock.advance(periods[-1])
        call(breaker, True)  # the probe fails
        periods.append(rejection(breaker).retry_after_s)

    assert periods == pytest.approx([30, 60, 120, 240, 300, 300])
    assert state_of(breaker)["reopen_count"] == 5


def test_a_success_after_re_opens_starts_the_doubling_again(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    trip(breaker)
    clock.advance(30)
    call(breaker, True)  # re-open: 60 s
    clock.advance(60)
    call(breaker, False)  # closes

    trip(breaker)

    assert rejection(breaker).retry_after_s == pytest.approx(30.0)


def test_the_open_period_is_at_least_the_servers_retry_after(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    for _ in range(4):
        call(breaker, True)
    call(breaker, True, retry_after_s=90.0)
    assert rejection(breaker).retry_after_s == pytest.approx(90.0)

    clock.advance(90)
    call(breaker, True, retry_after_s=10.0)  # probe fails; doubling (60 s) beats the hint
    assert rejection(breaker).retry_after_s == pytest.approx(60.0)


def test_an_absurd_retry_after_is_capped_at_an_hour(breaker: CircuitBreaker) -> None:
    for _ in range(4):
        call(breaker, True)
    call(breaker, True, retry_after_s=10 * 86400.0)

    assert rejection(breaker).retry_after_s == pytest.approx(3600.0)


def test_a_probe_lease_expires_so_a_dead_prober_does_not_block_forever(
    store: Path, clock: FakeClock, breaker: CircuitBreaker
) -> None:
    trip(breaker)
    clock.advance(30)
    breaker.before_call(KEY)  # this process "dies" without answering

    other = CircuitBreaker(store, clock=clock, owner="other")
    clock.advance(29.9)
    rejection(other)
    clock.advance(0.1)
    permit = other.before_call(KEY)

    assert permit.probe
    other.after_call(permit, failure=False)
    assert state_of(other)["state"] == "closed"
    other.close()


def test_a_neutral_probe_hands_its_lease_back_and_changes_nothing_else(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    trip(breaker)
    clock.advance(30)
    probe = breaker.before_call(KEY)
    before = state_of(breaker)

    breaker.after_call(probe, failure=None)  # e.g. a 429 or a 400

    after = state_of(breaker)
    assert after["state"] == "half_open"
    assert after["probe_in_flight"] is False
    assert (after["reopen_count"], after["opened_at"]) == (
        before["reopen_count"],
        before["opened_at"],
    )
    assert breaker.before_call(KEY).probe, "the next caller may probe at once"


def test_a_late_neutral_answer_does_not_release_a_newer_probes_lease(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    trip(breaker)
    clock.advance(30)
    first = breaker.before_call(KEY)
    clock.advance(30)  # its lease expired: the same process probes again
    second = breaker.before_call(KEY)

    breaker.after_call(first, failure=None)

    assert first.probe and second.probe
    assert state_of(breaker)["probe_in_flight"] is True
    rejection(breaker)


def test_neutral_outcomes_in_closed_state_change_nothing(breaker: CircuitBreaker) -> None:
    for _ in range(20):
        call(breaker, None)
    assert breaker.states() == []

    for outcome in (True, True, None, True, None, True):
        call(breaker, outcome)
    assert state_of(breaker)["consecutive_failures"] == 4, "neutral does not end the run"
    assert state_of(breaker)["calls"] == 4
    call(breaker, True)
    assert state_of(breaker)["state"] == "open"


def test_a_degraded_permit_records_nothing(breaker: CircuitBreaker) -> None:
    permit = Permit(KEY, -1, probe=False, started_at=START, degraded=True)
    for _ in range(10):
        breaker.after_call(permit, failure=True)

    assert breaker.states() == []


# The stale-result rule


def test_a_call_started_before_a_trip_does_not_close_the_breaker(
    store: Path, clock: FakeClock, breaker: CircuitBreaker
) -> None:
    slow = breaker.before_call(KEY)
    other = CircuitBreaker(store, clock=clock, owner="other")
    trip(other)

    breaker.after_call(slow, failure=False)

    assert state_of(breaker)["state"] == "open"
    rejection(breaker)
    other.close()


def test_an_old_probe_never_closes_a_breaker_another_process_re_opened(
    store: Path, clock: FakeClock, breaker: CircuitBreaker
) -> None:
    trip(breaker)
    clock.advance(30)
    old_probe = breaker.before_call(KEY)
    clock.advance(30)  # its lease expires
    other = CircuitBreaker(store, clock=clock, owner="other")
    new_probe = other.before_call(KEY)
    other.after_call(new_probe, failure=True)  # re-opened for 60 s

    breaker.after_call(old_probe, failure=False)

    assert old_probe.probe and new_probe.probe
    assert state_of(breaker)["state"] == "open"
    assert rejection(breaker).retry_after_s == pytest.approx(60.0)
    other.close()


def test_failures_from_before_a_recovery_do_not_count_after_it(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    in_flight = [breaker.before_call(KEY) for _ in range(5)]
    trip(breaker)
    clock.advance(30)
    call(breaker, False)  # the probe closes it

    for permit in in_flight:
        breaker.after_call(permit, failure=True)

    assert state_of(breaker)["state"] == "closed"
    assert state_of(breaker)["calls"] == 0


def test_a_probe_answer_after_a_reset_is_ignored(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker)
    clock.advance(30)
    probe = breaker.before_call(KEY)
    breaker.reset(KEY)

    breaker.after_call(probe, failure=True)

    assert state_of(breaker)["state"] == "closed"
    assert state_of(breaker)["consecutive_failures"] == 0


# Reset and states


def test_reset_closes_one_breaker_or_all(breaker: CircuitBreaker) -> None:
    for key in ("a/1", "b/2", "c/3"):
        trip(breaker, key)

    assert breaker.reset("b/2") == 1
    assert [s.state for s in breaker.states()] == ["open", "closed", "open"]
    assert not breaker.before_call("b/2").probe

    assert breaker.reset() == 3
    assert {s.state for s in breaker.states()} == {"closed"}
    assert breaker.reset("no/such") == 0


def test_reset_without_a_store_creates_nothing(breaker: CircuitBreaker, store: Path) -> None:
    assert breaker.reset() == 0
    assert not store.exists()


def test_states_json_shape(breaker: CircuitBreaker, clock: FakeClock) -> None:
    trip(breaker, "b/half")
    call(breaker, False, "c/closed")
    clock.advance(30)
    trip(breaker, "a/open")
    clock.advance(5)

    items = [state.as_dict() for state in breaker.states()]

    assert [item["key"] for item in items] == ["a/open", "b/half", "c/closed"]
    design_keys = {"key", "state", "failures", "calls", "opened_at", "retry_after_s"}
    assert all(design_keys <= item.keys() for item in items)
    closed, half, opened = items[2], items[1], items[0]
    assert {k: closed[k] for k in design_keys} == {
        "key": "c/closed",
        "state": "closed",
        "failures": 0,
        "calls": 1,
        "opened_at": None,
        "retry_after_s": None,
    }
    assert {k: half[k] for k in design_keys} == {
        "key": "b/half",
        "state": "half_open",
        "failures": 5,
        "calls": 5,
        "opened_at": START,
        "retry_after_s": 0,
    }
    assert opened["state"] == "open"
    assert opened["opened_at"] == START + 30
    assert opened["retry_after_s"] == pytest.approx(25.0)
    assert opened["open_until"] == START + 60
    json.dumps(items)  # plain JSON types only


# Classification, keys, settings


@pytest.mark.parametrize(
    ("kind", "status", "expected"),
    [
        (None, 200, False),
        (None, 201, False),
        (None, None, False),
        ("server_error", 500, True),
        (None, 502, True),
        (None, 503, True),
        ("overloaded", 529, True),
        ("overloaded_error", None, True),
        ("api_error", None, True),
        ("timeout", None, True),
        ("connection", None, True),
        ("malformed_response", 200, True),
        ("stream_error", 200, True),
        (None, 408, True),
        (None, 409, True),
        # A failure no provider kind explains is a quality failure: an availability breaker
        # ignores it (failures.classify).
        ("something_unheard_of", None, None),
        ("something_unheard_of", 200, None),
        # Status first: an Anthropic 429 whose body says api_error is a rate limit.
        ("api_error", 429, None),
        ("overloaded_error", 429, None),
        ("server_error", 400, None),
        ("bad_request", 400, None),
        ("auth", 401, None),
        ("authentication_error", 401, None),
        ("permission_error", 403, None),
        ("not_found", 404, None),
        ("too_large", 413, None),
        ("request_too_large", 413, None),
        (None, 422, None),
        ("rate_limit", 429, None),
        ("rate_limit_error", None, None),
        (None, 429, None),
        ("cancelled", None, None),
        ("cancelled", 200, None),
        ("something_unheard_of", 404, None),
    ],
)
def test_counts_as_failure(kind: str | None, status: int | None, expected: bool | None) -> None:
    assert counts_as_failure(kind, status) is expected


# Endpoints

ENDPOINT = "endpoint:http://127.0.0.1:9/v1"


def test_endpoint_key_is_the_base_url_behind_a_prefix() -> None:
    assert endpoint_key("http://127.0.0.1:9/v1") == ENDPOINT
    assert endpoint_key("http://127.0.0.1:9/v1/") == ENDPOINT


def test_one_failure_opens_an_endpoint_while_a_model_needs_five(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    call(breaker, True, ENDPOINT)
    call(breaker, True, KEY)
    assert state_of(breaker, ENDPOINT)["state"] == "open"
    assert state_of(breaker, ENDPOINT)["kind"] == "endpoint"
    assert state_of(breaker, KEY)["state"] == "closed"
    assert rejection(breaker, ENDPOINT).retry_after_s == pytest.approx(30)


def test_an_endpoint_probe_success_closes_it_and_a_failure_reopens_it_longer(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    call(breaker, True, ENDPOINT)
    clock.advance(31)
    call(breaker, True, ENDPOINT)  # the probe fails: open again, twice as long
    assert rejection(breaker, ENDPOINT).retry_after_s == pytest.approx(60)
    clock.advance(61)
    probe = call(breaker, False, ENDPOINT)
    assert probe.probe
    assert state_of(breaker, ENDPOINT)["state"] == "closed"
    call(breaker, True, ENDPOINT)
    assert rejection(breaker, ENDPOINT).retry_after_s == pytest.approx(30)


def test_successes_on_a_closed_endpoint_write_nothing(breaker: CircuitBreaker, store: Path) -> None:
    for _ in range(3):
        call(breaker, False, ENDPOINT)
    assert not store.exists()  # no write: nothing to count before its first failure


def test_states_list_endpoints_before_models(breaker: CircuitBreaker) -> None:
    call(breaker, True, "anthropic/claude-haiku-4-5")
    call(breaker, True, ENDPOINT)
    call(breaker, True, "zz/last")
    assert [(s.key, str(s.kind)) for s in breaker.states()] == [
        (ENDPOINT, "endpoint"),
        ("anthropic/claude-haiku-4-5", "model"),
        ("zz/last", "model"),
    ]


def test_breaker_key_is_provider_slash_model() -> None:
    assert breaker_key("openai", "gpt-4o-mini") == KEY
    assert breaker_key("openrouter", "meta/llama-3") == "openrouter/meta/llama-3"


def test_settings_from_config_reads_the_breaker_table(tmp_path: Path) -> None:
    config = {"breaker": {"window_s": 60, "min_calls": 3, "open_base_s": 0, "open_max_s": 10}}

    settings = BreakerSettings.from_config(config, tmp_path / "config.toml")

    assert settings == BreakerSettings(window_s=60, min_calls=3, open_base_s=0, open_max_s=10)
    assert BreakerSettings.from_config({}, tmp_path / "config.toml") == BreakerSettings()


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"min_calls": 2.5}, "breaker.min_calls"),
        ({"min_calls": 0}, "breaker.min_calls"),
        ({"failure_rate_threshold": 1.5}, "breaker.failure_rate_threshold"),
        ({"window_s": "2m"}, "breaker.window_s"),
        ({"open_base_s": 60, "open_max_s": 30}, "breaker.open_max_s"),
    ],
)
def test_settings_from_config_names_a_bad_value(tmp_path: Path, table: dict, named: str) -> None:
    from attune_cli.core.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        BreakerSettings.from_config({"breaker": table}, tmp_path / "config.toml")

    assert named in str(caught.value)
    assert "config.toml" in str(caught.value)


def test_open_periods_of_zero_make_half_open_immediate(store: Path, clock: FakeClock) -> None:
    settings = BreakerSettings(open_base_s=0, open_max_s=0)
    with CircuitBreaker(store, settings, clock=clock) as breaker:
        trip(breaker)
        assert breaker.before_call(KEY).probe
