"""CircuitBreaker over a real store: an unusable store never blocks calls; threads share it."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from attune_cli.core.breaker.sqlite import CircuitBreaker
from attune_cli.core.breaker.state import BreakerSettings
from attune_cli.core.errors import BreakerOpenError, OperationError

KEY = "anthropic/claude-sonnet"
START = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def tripped(store: Path, clock: Clock) -> None:
    """Open the breaker of KEY in ``store`` and move past its open period."""
    with CircuitBreaker(store, clock=clock) as breaker:
        for _ in range(5):
            breaker.after_call(breaker.before_call(KEY), failure=True)
    clock.now += 30


def test_a_corrupt_store_lets_calls_through_and_warns_once(tmp_path: Path) -> None:
    store = tmp_path / "telemetry.db"
    store.write_bytes(b"this is not a database, just bytes " * 200)
    warnings: list[str] = []
    breaker = CircuitBreaker(store, clock=Clock(), on_warning=warnings.append)

    permits = [breaker.before_call(KEY) for _ in range(3)]
    for permit in permits:
        breaker.after_call(permit, failure=True)

    assert all(permit.degraded and not permit.probe for permit in permits)
    assert len(warnings) == 1
    assert str(store) in warnings[0]
    assert "without circuit-breaker protection" in warnings[0]
    assert store.read_bytes().startswith(b"this is not a database"), "left untouched"


def test_a_store_from_a_newer_attune_degrades_instead_of_failing(tmp_path: Path) -> None:
    store = tmp_path / "telemetry.db"
    with sqlite3.connect(store) as conn:
        conn.execute("PRAGMA user_version = 999")
    warnings: list[str] = []
    breaker = CircuitBreaker(store, clock=Clock(), on_warning=warnings.append)

    permit = breaker.before_call(KEY)
    breaker.after_call(permit, failure=True)

    assert permit.degraded
    assert "newer attune" in warnings[0]


def test_a_store_that_cannot_be_created_does_not_block_or_raise(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    warnings: list[str] = []
    breaker = CircuitBreaker(blocker / "telemetry.db", clock=Clock(), on_warning=warnings.append)

    permit = breaker.before_call(KEY)  # nothing to read: a normal permit
    breaker.after_call(permit, failure=True)  # cannot write: a warning, no exception

    assert not permit.degraded
    assert len(warnings) == 1
    assert "outcome was not recorded" in warnings[0]


def test_a_store_locked_past_the_timeout_lets_the_probe_through(tmp_path: Path) -> None:
    store = tmp_path / "telemetry.db"
    clock = Clock()
    tripped(store, clock)
    warnings: list[str] = []
    settings = BreakerSettings(lock_timeout_s=0.05)
    breaker = CircuitBreaker(store, settings, clock=clock, on_warning=warnings.append)
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process stuck holding the write lock
    try:
        permit = breaker.before_call(KEY)
        breaker.after_call(permit, failure=False)
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert permit.degraded
    assert "locked" in warnings[0]
    # Once the lock is free the breaker works again, and warns again if it breaks again.
    probe = breaker.before_call(KEY)
    assert probe.probe and not probe.degraded
    breaker.close()


def test_an_open_breaker_still_rejects_while_another_process_holds_the_write_lock(
    tmp_path: Path,
) -> None:
    store = tmp_path / "telemetry.db"
    clock = Clock()
    tripped(store, clock)
    clock.now -= 20  # back inside the open period
    breaker = CircuitBreaker(store, BreakerSettings(lock_timeout_s=0.05), clock=clock)
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        # Rejecting writes nothing, so it needs no lock: WAL readers are never blocked.
        with pytest.raises(BreakerOpenError):
            breaker.before_call(KEY)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    breaker.close()


def test_listing_a_corrupt_store_is_an_operation_error_naming_the_file(tmp_path: Path) -> None:
    store = tmp_path / "telemetry.db"
    store.write_bytes(b"garbage" * 1000)

    with pytest.raises(OperationError) as caught:
        CircuitBreaker(store).states()

    assert str(store) in str(caught.value)


def test_threads_racing_a_half_open_breaker_get_exactly_one_probe(tmp_path: Path) -> None:
    store = tmp_path / "telemetry.db"
    clock = Clock()
    tripped(store, clock)
    breaker = CircuitBreaker(store, clock=clock)
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def racer() -> None:
        start.wait()
        try:
            permit = breaker.before_call(KEY)
        except BreakerOpenError:
            outcomes.append("rejected")
        else:
            outcomes.append("probe" if permit.probe else "closed")

    threads = [threading.Thread(target=racer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    breaker.close()

    assert sorted(outcomes) == ["probe"] + ["rejected"] * 7


def test_close_then_reuse_reopens_the_store(tmp_path: Path) -> None:
    store = tmp_path / "telemetry.db"
    breaker = CircuitBreaker(store, clock=Clock())
    breaker.after_call(breaker.before_call(KEY), failure=True)
    breaker.close()

    breaker.after_call(breaker.before_call(KEY), failure=True)

    assert breaker.states()[0].failures == 2
    breaker.close()
