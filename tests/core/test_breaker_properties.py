"""Whatever the order of calls, answers and elapsed time, the breaker keeps its promises."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from attune_cli.core.breaker.sqlite import CircuitBreaker
from attune_cli.core.breaker.state import BreakerSettings, Permit
from attune_cli.core.errors import BreakerOpenError

KEY = "openai/gpt-4o-mini"

OUTCOMES = {"fail": True, "succeed": False, "neutral": None}

# (what, which "process" or outstanding call, detail):
#   call    — ask leave and answer at once;  begin — ask leave, answer later;
#   answer  — answer an outstanding call;    advance — let time pass (boundaries likely).
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("call"), st.integers(0, 2), st.sampled_from(["fail"] * 4 + list(OUTCOMES))
        ),
        st.tuples(st.just("begin"), st.integers(0, 2), st.just("")),
        st.tuples(st.just("answer"), st.integers(0, 50), st.sampled_from(list(OUTCOMES))),
        st.tuples(st.just("advance"), st.sampled_from([5, 20, 30, 30, 60, 121, 300]), st.just("")),
    ),
    max_size=40,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@settings(database=None)
@given(operations)
def test_never_two_live_probes_and_never_a_call_through_an_open_breaker(ops: list) -> None:
    limits = BreakerSettings(min_calls=3, consecutive_failures=3, probe_lease_s=20)
    clock = Clock()
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "telemetry.db"
        processes = [CircuitBreaker(store, limits, clock=clock, owner=f"p{i}") for i in range(3)]
        outstanding: list[tuple[int, Permit]] = []
        for what, which, detail in ops:
            if what == "advance":
                clock.now += which
                continue
            if what == "answer":
                if outstanding:
                    owner, permit = outstanding.pop(which % len(outstanding))
                    processes[owner].after_call(permit, failure=OUTCOMES[detail])
                continue
            states = processes[which].states()
            shown = states[0].state if states else "closed"
            try:
                permit = processes[which].before_call(KEY)
            except BreakerOpenError as exc:
                assert shown != "closed", "a closed breaker rejected a call"
                assert exc.retry_after_s > 0
                continue
            if permit.probe:
                assert shown == "half_open"
                live = [
                    other
                    for _, other in outstanding
                    if other.probe
                    and other.generation == permit.generation
                    and other.started_at + limits.probe_lease_s > clock.now
                ]
                assert live == [], "a second probe while one holds a live lease"
            else:
                assert shown == "closed", f"a call went through a {shown} breaker"
            if what == "call":
                processes[which].after_call(permit, failure=OUTCOMES[detail])
            else:
                outstanding.append((which, permit))
        for process in processes:
            process.close()
