"""Real processes sharing one telemetry.db: one probe at a time, no lost outcomes.

Each child is ``sys.executable -c CHILD`` with a fixed fake time on its command line, so the
open period and the probe lease pass without anyone waiting. The children open the store,
say "ready", and block on stdin; the test releases them all at once to make them race.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from attune_cli.core.breaker.sqlite import CircuitBreaker
from attune_cli.core.telemetry.db import connect

pytestmark = pytest.mark.e2e

KEY = "openai/gpt-4o-mini"
START = 1_800_000_000.0

CHILD = """
import json, os, sys
from pathlib import Path
from attune_cli.core.breaker.sqlite import CircuitBreaker
from attune_cli.core.telemetry.db import connect
from attune_cli.core.errors import BreakerOpenError

store, now, then = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
breaker = CircuitBreaker(store, clock=lambda: now)
breaker.states()  # open the connection before the race, so the race is the decision alone
print("ready", flush=True)
sys.stdin.readline()
try:
    permit = breaker.before_call(sys.argv[4])
except BreakerOpenError as exc:
    print(json.dumps({"outcome": "rejected", "retry_after_s": exc.retry_after_s}), flush=True)
    sys.exit(0)
print(json.dumps({"outcome": "probe" if permit.probe else "closed"}), flush=True)
if permit.probe and then == "die":
    os._exit(0)  # killed mid-probe: never answers, never closes anything
breaker.after_call(permit, failure={"succeed": False, "fail": True}[then])
"""

RECORDER = """
import sys
from pathlib import Path
from attune_cli.core.breaker.state import BreakerSettings
from attune_cli.core.breaker.sqlite import CircuitBreaker

settings = BreakerSettings(consecutive_failures=10_000, min_calls=10_000)
breaker = CircuitBreaker(Path(sys.argv[1]), settings, clock=lambda: float(sys.argv[2]))
print("ready", flush=True)
sys.stdin.readline()
for _ in range(int(sys.argv[3])):
    breaker.after_call(breaker.before_call(sys.argv[4]), failure=True)
"""


def race(script: str, *argv_per_child: list[str]) -> list[str]:
    """Start one child per argv, release them together, return their stdout after 'ready'."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argv_per_child
    ]
    try:
        for child in children:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line == "ready\n", child.stderr.read() if child.stderr else line
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = []
        for child in children:
            stdout, stderr = child.communicate(timeout=60)
            assert child.returncode == 0, stderr
            assert stderr == "", "a child degraded (store trouble): " + stderr
            results.append(stdout)
        return results
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def outcomes(store: Path, now: float, then: str, processes: int = 6) -> list[dict]:
    argv = [str(store), repr(now), then, KEY]
    return [json.loads(out) for out in race(CHILD, *[argv] * processes)]


def names(results: list[dict]) -> list[str]:
    return sorted(result["outcome"] for result in results)


def test_processes_racing_a_half_open_breaker_get_exactly_one_probe(tmp_path: Path) -> None:
    store = tmp_path / "telemetry.db"
    with CircuitBreaker(store, clock=lambda: START) as breaker:
        for _ in range(5):
            breaker.after_call(breaker.before_call(KEY), failure=True)

    # Still open: nobody gets through, and everyone is told when to retry.
    still_open = outcomes(store, START + 10, "succeed")
    assert names(still_open) == ["rejected"] * 6
    assert {round(r["retry_after_s"]) for r in still_open} == {20}

    # Half-open: exactly one probe; the prober is killed before it answers.
    first = outcomes(store, START + 30, "die")
    assert names(first) == ["probe"] + ["rejected"] * 5

    # Its lease is live: the others keep waiting rather than piling onto a sick provider.
    assert names(outcomes(store, START + 45, "succeed")) == ["rejected"] * 6

    # The lease expired (30 s): exactly one new probe, and its success closes the breaker
    # (a process that looks after that success finds it closed and goes ahead).
    second = names(outcomes(store, START + 60, "succeed"))
    assert second.count("probe") == 1
    assert set(second) <= {"probe", "rejected", "closed"}

    assert names(outcomes(store, START + 61, "succeed")) == ["closed"] * 6
    with CircuitBreaker(store, clock=lambda: START + 61) as breaker:
        assert breaker.states()[0].state == "closed"


def test_a_failed_probe_from_one_process_re_opens_for_all(tmp_path: Path) -> None:
    store = tmp_path / "telemetry.db"
    with CircuitBreaker(store, clock=lambda: START) as breaker:
        for _ in range(5):
            breaker.after_call(breaker.before_call(KEY), failure=True)

    assert names(outcomes(store, START + 30, "fail")) == ["probe"] + ["rejected"] * 5

    reopened = outcomes(store, START + 31, "succeed")
    assert names(reopened) == ["rejected"] * 6
    assert {round(r["retry_after_s"]) for r in reopened} == {59}, "the period doubled to 60 s"


def test_concurrent_processes_lose_no_outcome(tmp_path: Path) -> None:
    store = tmp_path / "telemetry.db"
    connect(store).close()

    argv = [str(store), repr(START), "25", KEY]
    race(RECORDER, *[argv] * 4)

    with CircuitBreaker(store, clock=lambda: START) as breaker:
        (state,) = breaker.states()
    assert (state.calls, state.failures) == (100, 100)
    assert state.consecutive_failures == 100
