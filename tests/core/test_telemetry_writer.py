"""BatchWriter: one writer thread per process, calls and breaker outcomes committed together."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from attune_cli.core.breaker.sqlite import CircuitBreaker
from attune_cli.core.breaker.state import BreakerSettings
from attune_cli.core.errors import BreakerOpenError
from attune_cli.core.performance import ScoreWeights
from attune_cli.core.telemetry.records import CallFilter, CallRecord
from attune_cli.core.telemetry.spool import spool_path
from attune_cli.core.telemetry.sqlite import TelemetryStore
from attune_cli.core.telemetry.writer import BatchWriter, WriterClosed

KEY = "openai/gpt-5-mini"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "telemetry.db"


def call(n: int, *, success: bool = True) -> CallRecord:
    return CallRecord("ci", "triage", f"model-{n % 3}", success, provider="openai", attempt=1)


def test_every_call_recorded_by_fifty_threads_is_stored_once_the_writer_closes(
    path: Path,
) -> None:
    writer = BatchWriter(path)

    def client(n: int) -> None:
        for i in range(40):
            writer.record(call(n * 40 + i, success=i % 4 != 0))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    with TelemetryStore(path) as store:
        assert store.count(CallFilter()) == 2000
        figures = store.model_performance(
            workflow="ci", stage="triage", since_ts=None, weights=ScoreWeights()
        )
        # The rollups the router reads were kept in the same transactions as the rows.
        assert sum(p.calls for p in figures) == 2000
        assert sum(p.successes for p in figures) == 1500
        assert set(store.labels("model")) == {"model-0", "model-1", "model-2"}
    assert (writer.spooled, writer.lost) == (0, 0)


def test_a_call_is_stamped_when_recorded_not_when_written(path: Path) -> None:
    with BatchWriter(path, clock=lambda: 1_800_000_000.25) as writer:
        writer.record(call(1))
    with TelemetryStore(path) as store:
        [stored] = store.recent_calls(workflow=None, stage=None)
    assert stored.ts == 1_800_000_000.25


def test_run_returns_after_the_commit_and_a_failing_work_undoes_only_its_own_writes(
    path: Path,
) -> None:
    with BatchWriter(path) as writer:

        def add(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO labels (kind, value) VALUES ('workflow', 'kept')")
            return 7

        def fail(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO labels (kind, value) VALUES ('workflow', 'undone')")
            raise ValueError("refused")

        assert writer.run(add) == 7
        # Visible to another connection as soon as run returned: committed.
        with TelemetryStore(path) as store:
            assert "kept" in store.labels("workflow")
        writer.record(call(1))
        with pytest.raises(ValueError, match="refused"):
            writer.run(fail)
        assert writer.flush(timeout_s=30)
    with TelemetryStore(path) as store:
        assert "undone" not in store.labels("workflow")
        assert store.count(CallFilter()) == 1


def test_calls_the_store_cannot_take_wait_in_the_spool_and_none_is_lost(path: Path) -> None:
    path.write_bytes(b"this is not a SQLite database" * 100)
    with BatchWriter(path) as writer:
        for n in range(5):
            writer.record(call(n))
        with pytest.raises(Exception, match="telemetry"):
            writer.run(lambda conn: None)
    assert (writer.spooled, writer.lost) == (5, 0)
    assert len(spool_path(path).read_text().splitlines()) == 5


def test_a_call_recorded_after_close_is_still_written(path: Path) -> None:
    writer = BatchWriter(path)
    writer.close()
    writer.record(call(1))
    with pytest.raises(WriterClosed):
        writer.run(lambda conn: None)
    with TelemetryStore(path) as store:
        assert store.count(CallFilter()) == 1


def test_a_breaker_over_the_writer_trips_before_after_call_returns(path: Path) -> None:
    settings = BreakerSettings(consecutive_failures=2, min_calls=100)
    with BatchWriter(path) as writer:
        breaker = CircuitBreaker(path, settings, writer=writer)
        for _ in range(2):
            breaker.after_call(breaker.before_call(KEY), failure=True)
        # No flush: a failure's outcome is committed before after_call returns.
        with pytest.raises(BreakerOpenError):
            breaker.before_call(KEY)
        other = CircuitBreaker(path, settings)
        assert [s.state for s in other.states()] == ["open"]
        other.close()
        breaker.close()


def test_close_waits_for_a_store_held_by_another_process_and_loses_nothing(path: Path) -> None:
    TelemetryStore(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    writer = BatchWriter(path)
    for n in range(100):
        writer.record(call(n))
    closer = threading.Thread(target=writer.close)
    closer.start()
    closer.join(timeout=0.5)
    assert closer.is_alive(), "close returned while 100 calls were still unwritten"
    other.execute("ROLLBACK")
    other.close()
    closer.join(timeout=30)
    assert not closer.is_alive()
    with TelemetryStore(path) as store:
        assert store.count(CallFilter()) == 100
    assert (writer.spooled, writer.lost) == (0, 0)
