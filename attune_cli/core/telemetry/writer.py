"""One telemetry writer per long-running process: writes queued, committed together.

A process that makes many calls at once (``attune serve`` with 50 clients) used to write each
telemetry row and each breaker outcome in its own ``BEGIN IMMEDIATE`` transaction, from each
of its worker threads, through each thread's own connection. Fifty connections of one process
then compete for SQLite's single write lock, and SQLite's busy handler is not a queue: a
waiter sleeps (1, 2, 5 … up to 100 ms at a time) and retries, so the slowest calls waited
whole seconds for a lock that was free most of that time.

``BatchWriter`` owns one connection on one thread. Whatever the other threads want written
waits in a queue; the writer takes everything queued, writes it in one transaction and
commits::

    worker threads                          writer thread (one connection)
    ──────────────                          ──────────────────────────────
    record(call) ──▶ queue ─┐               BEGIN IMMEDIATE
    run(work) ────▶ queue ──┼─────────────▶   INSERT the queued calls (+ rollups, labels)
        ▲                   │                 each work(conn) in its own SAVEPOINT
        └─── result ◀───────┴──────────────  COMMIT, then hand back the works' results

* ``record`` returns at once (the executor's ``Recorder``): the row is written with the next
  batch, at most one transaction later. ``close`` (the server's shutdown) writes every row
  still queued before it returns, so a graceful shutdown loses nothing.
* ``run`` (the circuit breaker's read-decide-write) waits for the commit of its batch, so a
  failure that trips a breaker is in the store before the caller goes on, as before.
* A batch that cannot be written (the store stayed locked past the busy timeout, a full
  disk, a corrupt file) sends its calls to the spool (``telemetry.spool``), as ``record``
  does; the works get the error and go on without the breaker, as they would have.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from attune_cli.core.clock import now as clock_now
from attune_cli.core.errors import AttuneError, OperationError
from attune_cli.core.telemetry.records import CallRecord, Row

if TYPE_CHECKING:
    from attune_cli.core.telemetry.sqlite import TelemetryStore

T = TypeVar("T")

MAX_BATCH = 2_000
"""The most queued items written in one transaction (a burst is split into several)."""

_log = logging.getLogger("attune.telemetry")


class WriterClosed(RuntimeError):
    """The writer was closed: write through a connection of your own instead."""


@dataclasses.dataclass
class _Work:
    work: Callable[[sqlite3.Connection], Any]
    future: Future[Any]


_STOP = object()


class BatchWriter:
    """Writes queued calls and store works on one thread, many per transaction.

    Usage::

        writer = BatchWriter(paths.telemetry_db)
        executor = ResilientExecutor.from_workspace(workspace, store=writer, ...)
        ...
        writer.close()  # every queued call is written (or spooled) before this returns

    Args:
        path: ``telemetry.db``.
        clock: epoch seconds now; a call without a time is stamped when it is queued.
        max_batch: the most items written in one transaction.

    Attributes:
        spooled: calls that went to the spool because the store could not take them.
        lost: calls that neither the store nor the spool could take (logged).
    """

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = clock_now,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.path = path
        self.name = str(path)  # where, in messages
        self._failing = False  # a submitted write failed, and none has been written since
        self.spooled = 0
        self.lost = 0
        self._clock = clock
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        # Guards ``_closed`` and ``_pending``: whatever is queued before the stop is written
        # by the thread, whatever comes after by its caller (``_write_alone``).
        self._state = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name="attune-telemetry", daemon=True)
        self._thread.start()

    def record(self, call: CallRecord) -> None:
        """Queue one call; it is written with the next batch (the executor's ``Recorder``).

        A call without a time gets the time it was queued, not the time it is written.
        """
        if call.ts is None:
            call = dataclasses.replace(call, ts=self._clock())
        with self._state:
            if not self._closed:
                self._pending += 1
                self._queue.put(call)
                return
        # Recorded after the writer stopped (a call that outlived the shutdown): written here.
        self._write_alone([call])

    def run(self, work: Callable[[sqlite3.Connection], T], *, timeout_s: float | None = None) -> T:
        """Run ``work(conn)`` inside the next batch's transaction and return its result.

        The result comes back once the batch is committed. ``work`` runs in a savepoint of its
        own: when it raises, only its own writes are undone.

        Args:
            work: reads and writes through the connection it is given; must not commit.
            timeout_s: the longest wait for the commit; None waits as long as it takes.

        Raises:
            WriterClosed: the writer is closed (write through another connection).
            OperationError: the batch could not be written, or not within ``timeout_s``.
            Exception: whatever ``work`` raised.
        """
        future: Future[T] = Future()
        with self._state:
            if self._closed or threading.current_thread() is self._thread:
                raise WriterClosed(f"the telemetry writer of {self.path} is closed")
            self._pending += 1
            self._queue.put(_Work(work, future))
        try:
            return future.result(timeout=timeout_s)
        except TimeoutError:
            raise OperationError(
                f"{self.path}: the store's write lock stayed taken past {timeout_s:g} s"
            ) from None

    def submit(self, work: Callable[[sqlite3.Connection], object]) -> None:
        """Queue ``work(conn)`` for the next batch without waiting for it.

        For a write whose caller decides nothing from it (a success counted by a closed
        breaker). An error it raises is logged.

        Raises:
            WriterClosed: the writer is closed (write through another connection).
        """
        future: Future[object] = Future()
        future.add_done_callback(self._log_failure)
        with self._state:
            if self._closed:
                raise WriterClosed(f"the telemetry writer of {self.path} is closed")
            self._pending += 1
            self._queue.put(_Work(work, future))

    def written(self, timeout_s: float | None = None) -> bool:
        """Wait until what this thread queued so far is committed (or spooled).

        The queue is first in, first out, so a no-op queued now is committed with, or after,
        every call this thread recorded before. The gateway answers after this: a client that
        reads telemetry right after its answer finds the row.

        Returns:
            False when the writer is closed, or the wait passed ``timeout_s``.
        """
        try:
            self.run(_nothing, timeout_s=timeout_s)
        except (WriterClosed, OperationError):
            return False
        return True

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until everything queued so far is written; whether it was, within the time."""
        with self._state:
            return self._state.wait_for(lambda: self._pending == 0, timeout=timeout_s)

    def close(self) -> None:
        """Write everything queued, then stop the writer thread (idempotent)."""
        with self._state:
            already = self._closed
            self._closed = True
            if not already:
                self._queue.put(_STOP)
        self._thread.join()

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self) -> None:
        store = self._open_store()
        try:
            stop = False
            while not stop:
                batch = [self._queue.get()]
                while len(batch) < self._max_batch:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if _STOP in batch:
                    stop = True
                    batch.remove(_STOP)
                    # Whatever was queued before the stop is written before the thread ends.
                    with contextlib.suppress(queue.Empty):
                        while True:
                            batch.append(self._queue.get_nowait())
                self._write(store, batch)
                store = self._refresh(store)
        finally:
            store.close()

    def _open_store(self) -> TelemetryStore:
        from attune_cli.core.telemetry.sqlite import TelemetryStore

        try:
            return TelemetryStore(self.path)
        except (AttuneError, sqlite3.Error, OSError) as exc:
            # Calls still happen and their rows wait in the spool (as ``ask`` does).
            reason = exc.message if isinstance(exc, AttuneError) else str(exc)
            return TelemetryStore.unusable(self.path, reason)

    def _log_failure(self, future: Future[object]) -> None:
        """Log the first of a run of failed submitted writes (the store is down: one line)."""
        error = future.exception()
        if error is None:
            self._failing = False
        elif not self._failing:
            self._failing = True
            _log.warning("telemetry write failed: %s", error)

    def _refresh(self, store: TelemetryStore) -> TelemetryStore:
        """The store for the next batch (the same one; a team store reconnects)."""
        return store

    def _errors(self) -> tuple[type[BaseException], ...]:
        """The errors that mean "the store could not take this batch"."""
        return (AttuneError, sqlite3.Error, OSError)

    def _after_commit(self, store: TelemetryStore) -> None:
        """Called after a batch with calls was committed: add what waits in the spool."""
        if store.spool is not None and store.spool.exists():
            with contextlib.suppress(AttuneError, sqlite3.Error, OSError):
                store.drain_spool()

    def _write(self, store: TelemetryStore, batch: list[Any], *, count: bool = True) -> None:
        calls: list[CallRecord] = [item for item in batch if isinstance(item, CallRecord)]
        works: list[_Work] = [item for item in batch if isinstance(item, _Work)]
        try:
            self._commit(store, calls, works)
        finally:
            if count:
                with self._state:
                    self._pending -= len(batch)
                    self._state.notify_all()

    def _commit(self, store: TelemetryStore, calls: list[CallRecord], works: list[_Work]) -> None:
        rows: list[Row] = [store.row_of(call) for call in calls]
        results: list[tuple[_Work, Any, BaseException | None]] = []
        try:
            unusable = getattr(store, "unusable_reason", None)  # a team store has none
            if unusable is not None:
                raise OperationError(unusable)
            with store.transaction() as conn:
                if rows:
                    store.insert_rows(rows)
                    store.add_labels({(c.workflow, c.stage, c.model) for c in calls})
                for item in works:
                    results.append(_savepoint(conn, item))
        except self._errors() as exc:
            message = exc.message if isinstance(exc, AttuneError) else str(exc)
            self._spool(store, rows, message)
            failure = OperationError(f"{self.name}: {message}")
            for item in works:
                item.future.set_exception(failure)
            return
        except BaseException as exc:
            self._spool(store, rows, f"the writer stopped ({type(exc).__name__})")
            for item in works:
                item.future.set_exception(exc)
            raise
        for item, value, error in results:
            if error is None:
                item.future.set_result(value)
            else:
                item.future.set_exception(error)
        if rows:
            self._after_commit(store)

    def _spool(self, store: TelemetryStore, rows: list[Row], reason: str) -> None:
        for row in rows:
            try:
                store.spool_row(row, reason)
            except OperationError as exc:
                self.lost += 1
                _log.warning("telemetry row lost: %s", exc.message)
            else:
                self.spooled += 1

    def _write_alone(self, calls: list[CallRecord]) -> None:
        store = self._open_store()
        try:
            self._write(store, list(calls), count=False)
        finally:
            store.close()


def _nothing(_conn: sqlite3.Connection) -> None:
    return None


def _savepoint(conn: sqlite3.Connection, item: _Work) -> tuple[_Work, Any, BaseException | None]:
    conn.execute("SAVEPOINT attune_work")
    try:
        value = item.work(conn)
    except Exception as exc:
        conn.execute("ROLLBACK TO attune_work")
        conn.execute("RELEASE attune_work")
        return item, None, exc
    conn.execute("RELEASE attune_work")
    return item, value, None
