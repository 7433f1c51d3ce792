"""The breakers' state in SQLite (``telemetry.db``): ``CircuitBreaker``, one transaction per
read-decide-write, shared by every process on this machine."""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

from attune_cli.core.breaker.state import (
    CLOSED,
    ENDPOINT_PREFIX,
    HALF_OPEN,
    OPEN,
    BreakerKind,
    BreakerSettings,
    BreakerState,
    Permit,
    breaker_key,
    counts_as_failure,
    endpoint_key,
    kind_of_key,
)
from attune_cli.core.errors import AttuneError, BreakerOpenError, OperationError
from attune_cli.core.notices import Caution
from attune_cli.core.telemetry import db

if TYPE_CHECKING:
    from collections.abc import Iterator

    from attune_cli.core.telemetry.writer import BatchWriter
    from attune_cli.core.workspace import Workspace

T = TypeVar("T")

__all__ = [
    "ENDPOINT_PREFIX",
    "BreakerKind",
    "BreakerSettings",
    "BreakerState",
    "CircuitBreaker",
    "Permit",
    "breaker_key",
    "counts_as_failure",
    "endpoint_key",
    "kind_of_key",
]


# The store can fail in these ways; each one means "go ahead without the breaker".
_STORE_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, OSError, AttuneError)


@dataclass(frozen=True)
class _Row:
    key: str
    state: str
    consecutive_failures: int
    opened_at: float | None
    open_until: float | None
    reopen_count: int
    probe_lease_until: float | None
    probe_owner: str | None
    generation: int

    def wait_s(self, now: float) -> float:
        """Seconds until a call may pass an open breaker (0: a probe may go now)."""
        if self.open_until is not None and now < self.open_until:
            return self.open_until - now
        if self.probe_lease_until is not None and now < self.probe_lease_until:
            return self.probe_lease_until - now
        return 0.0


_ROW_COLUMNS = (
    "key, state, consecutive_failures, opened_at, open_until, reopen_count, "
    "probe_lease_until, probe_owner, generation"
)


def _read_row(conn: sqlite3.Connection, key: str) -> _Row | None:
    found = conn.execute(f"SELECT {_ROW_COLUMNS} FROM breakers WHERE key = ?", (key,)).fetchone()
    return _Row(*found) if found else None


class CircuitBreaker:
    """Per provider/model and per endpoint circuit breakers whose state lives in ``telemetry.db``.

    Usage::

        breaker = CircuitBreaker(paths.telemetry_db, BreakerSettings.from_config(cfg, file))
        permit = breaker.before_call(breaker_key("openai", "gpt-4o-mini"))  # may raise
        ...  # make the call
        breaker.after_call(permit, failure=counts_as_failure(kind, status),
                           retry_after_s=server_hint_s)

    One instance may be shared by the threads of a process (each thread gets its own SQLite
    connection); any number of processes may use the same file at once.
    """

    def __init__(
        self,
        path: Path,
        settings: BreakerSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        on_warning: Callable[[str], None] | None = None,
        writer: BatchWriter | None = None,
    ) -> None:
        """Create a breaker set over the store at ``path`` (nothing is opened yet).

        Args:
            path: ``telemetry.db``; created on the first recorded outcome.
            settings: thresholds and periods; defaults when None.
            clock: wall-clock epoch seconds (inject a fake one in tests).
            owner: who holds probe leases taken by this instance; host:pid:random by default.
            on_warning: told (once per run of failures) when the store is unusable and calls go
                ahead unprotected; logged to ``attune.breaker`` when None.
            writer: the process's telemetry writer: decisions that write are made in its
                transactions (one connection for the whole process, committed in batches)
                instead of each thread's own; reads still use each thread's connection.
        """
        self.path = path
        self.settings = settings or BreakerSettings()
        self.owner = owner or f"{os.uname().nodename}:{os.getpid()}:{os.urandom(4).hex()}"
        self._clock = clock
        self._on_warning = on_warning
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[tuple[int, sqlite3.Connection]] = []
        self._warned = False
        self.writer = writer

    @classmethod
    def from_workspace(cls, workspace: Workspace, **options: Any) -> CircuitBreaker:
        """The breakers of ``workspace``: its ``telemetry.db`` and its ``[breaker]`` settings.

        Args:
            workspace: the loaded workspace.
            **options: passed to the constructor (``clock``, ``owner``, ``on_warning``).

        Raises:
            ConfigError: an invalid ``[breaker]`` value.
        """
        settings = BreakerSettings.from_config(workspace.config, workspace.paths.config_file)
        return cls(workspace.paths.telemetry_db, settings, **options)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # The call path

    def before_call(self, key: str) -> Permit:
        """Ask leave to call ``key``.

        Returns:
            A permit to hand back to ``after_call``. ``permit.probe`` is True when this call is
            the half-open probe; ``permit.degraded`` when the store was unusable.

        Raises:
            BreakerOpenError: the breaker is open, or half-open with another caller's probe in
                flight; ``retry_after_s`` says when to try again. Nothing was sent.
        """
        now = self._clock()
        try:
            row = self._peek(key)
            if row is None or row.state == CLOSED:
                return Permit(key, row.generation if row else 0, probe=False, started_at=now)
            wait_s = row.wait_s(now)
            if wait_s <= 0:
                decision = self._take_probe(key)
                if isinstance(decision, Permit):
                    return decision
                wait_s = decision
        except self._store_errors as exc:
            return self._degraded(key, now, exc)
        raise BreakerOpenError(key, wait_s)

    def after_call(
        self, permit: Permit, *, failure: bool | None, retry_after_s: float | None = None
    ) -> None:
        """Record the outcome of a call made under ``permit``.

        Args:
            permit: what ``before_call`` returned.
            failure: True for an outage signal, False for a success, None for a neutral outcome
                (see ``counts_as_failure``); neutral outcomes change nothing.
            retry_after_s: the server's Retry-After, which the next open period will honour.
        """
        if permit.degraded or (failure is None and not permit.probe):
            return
        endpoint = kind_of_key(permit.key) is BreakerKind.ENDPOINT
        if endpoint and failure is False and not permit.probe:
            # A closed endpoint trips on its first failure whatever came before: a success
            # there would be a write on every call that changes nothing.
            return
        try:
            work = functools.partial(
                self._settle, permit=permit, failure=failure, retry_after_s=retry_after_s
            )
            if failure is False and not permit.probe and self.writer is not None:
                # A success counted by a closed breaker decides nothing now: not waited for.
                from attune_cli.core.telemetry.writer import WriterClosed

                with suppress(WriterClosed):
                    self.writer.submit(work)
                    return
            self._write(work)
            self._warned = False
        except self._store_errors as exc:
            self._store_failed(exc, "its outcome was not recorded")

    # Reporting and maintenance

    def states(self) -> list[BreakerState]:
        """Every breaker in the store: endpoints, then models, each sorted by key.

        Empty when there is no store yet.

        Raises:
            OperationError: the store cannot be opened or read.
        """
        try:
            conn = self._connection(create=False)
            if conn is None:
                return []
            now = self._clock()
            conn.execute("BEGIN")
            try:
                rows = [
                    _Row(*found)
                    for found in conn.execute(
                        f"SELECT {_ROW_COLUMNS} FROM breakers ORDER BY key"
                    ).fetchall()
                ]
                counts = {
                    key: (calls, failures or 0)
                    for key, calls, failures in conn.execute(
                        "SELECT key, COUNT(*), SUM(failure) FROM breaker_events "
                        "WHERE ts >= ? GROUP BY key",
                        (now - self.settings.window_s,),
                    )
                }
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._forget_connection()
            raise OperationError(
                f"{self.path}: cannot read circuit breakers ({exc})",
                hint=f"move {self.path} aside to start a new store",
            ) from None
        described = [self._describe(row, counts.get(row.key, (0, 0)), now) for row in rows]
        # Endpoints first: one of them open explains every model behind it.
        return sorted(described, key=lambda state: state.kind is not BreakerKind.ENDPOINT)

    def reset(self, key: str | None = None) -> int:
        """Close one breaker (``key``) or all of them, forgetting their recent outcomes.

        A call already in flight when the reset happens is not counted afterwards.

        Returns:
            How many breakers were reset (0 when ``key`` is unknown or there is no store).

        Raises:
            OperationError: the store cannot be opened or written.
        """
        try:
            if self._connection(create=False) is None:
                return 0
            with self._transaction() as conn:
                now = self._clock()
                where, args = ("WHERE key = ?", (key,)) if key is not None else ("", ())
                changed = conn.execute(
                    "UPDATE breakers SET state = ?, consecutive_failures = 0, opened_at = NULL, "
                    "open_until = NULL, reopen_count = 0, probe_lease_until = NULL, "
                    f"probe_owner = NULL, generation = generation + 1, updated_at = ? {where}",
                    (CLOSED, now, *args),
                ).rowcount
                conn.execute(f"DELETE FROM breaker_events {where}", args)
        except sqlite3.Error as exc:
            self._forget_connection()
            raise OperationError(
                f"{self.path}: cannot reset circuit breakers ({exc})",
                hint=f"check that {self.path} is writable",
            ) from None
        return changed

    def close(self) -> None:
        """Close the store connections this instance opened (it may be used again later)."""
        with self._lock:
            connections, self._connections = self._connections, []
        self._local = threading.local()
        for _pid, conn in connections:
            # One opened by another thread refuses; it is closed when collected.
            with suppress(sqlite3.Error):
                conn.close()

    # Decisions inside the store

    # What "the store failed" looks like (a subclass over another database adds its errors).
    _store_errors: tuple[type[BaseException], ...] = _STORE_ERRORS

    def _read_for_update(self, conn: Any, key: str) -> _Row | None:
        """The breaker's row, held until the transaction ends (``BEGIN IMMEDIATE`` holds it)."""
        return _read_row(conn, key)

    def _peek(self, key: str) -> _Row | None:
        """The breaker's row read without the write lock (the common, no-write path)."""
        conn = self._connection(create=False)
        return _read_row(conn, key) if conn is not None else None

    def _take_probe(self, key: str) -> Permit | float:
        """Take the half-open probe lease, or say how long to wait if someone was first."""

        def take(conn: Any) -> Permit | float:
            now = self._clock()
            row = self._read_for_update(conn, key)
            if row is None or row.state == CLOSED:
                # Closed by another process since we looked.
                return Permit(key, row.generation if row else 0, probe=False, started_at=now)
            wait_s = row.wait_s(now)
            if wait_s > 0:
                return wait_s
            conn.execute(
                "UPDATE breakers SET probe_owner = ?, probe_lease_until = ?, updated_at = ? "
                "WHERE key = ?",
                (self.owner, now + self.settings.probe_lease_s, now, key),
            )
            return Permit(key, row.generation, probe=True, started_at=now)

        decision = self._write(take)
        if isinstance(decision, Permit) and decision.probe:
            self._warned = False
        return decision

    def _write(self, work: Callable[[Any], T]) -> T:
        """``work(conn)`` in one write transaction: the writer's when there is one."""
        if self.writer is not None:
            from attune_cli.core.telemetry.writer import WriterClosed

            try:
                return self.writer.run(work, timeout_s=self.settings.lock_timeout_s)
            except WriterClosed:
                pass  # the process is shutting down: a connection of this thread's own
        with self._transaction() as conn:
            return work(conn)

    def _settle(
        self,
        conn: sqlite3.Connection,
        permit: Permit,
        failure: bool | None,
        retry_after_s: float | None,
    ) -> None:
        """Apply one outcome; runs inside the caller's ``BEGIN IMMEDIATE`` transaction."""
        key = permit.key
        now = self._clock()
        row = self._read_for_update(conn, key)
        if row is None:
            conn.execute("INSERT INTO breakers (key, updated_at) VALUES (?, ?)", (key, now))
            row = _read_row(conn, key)
            assert row is not None
        if permit.generation != row.generation:
            # Issued before a trip, re-open, close or reset: it says nothing about the present.
            return
        if failure is None:
            # Only this very lease: the owner names the instance, the expiry names the permit.
            ours = (self.owner, permit.started_at + self.settings.probe_lease_s)
            if permit.probe and (row.probe_owner, row.probe_lease_until) == ours:
                # The probe learnt nothing; let the next caller probe instead of waiting.
                conn.execute(
                    "UPDATE breakers SET probe_owner = NULL, probe_lease_until = NULL, "
                    "updated_at = ? WHERE key = ?",
                    (now, key),
                )
            return
        if row.state == CLOSED:
            self._count(conn, row, failure, retry_after_s, now)
        elif permit.probe:
            if failure:
                reopen_count = row.reopen_count + 1
                self._open(conn, key, now, reopen_count, retry_after_s, row.consecutive_failures)
            else:
                conn.execute(
                    "UPDATE breakers SET state = ?, consecutive_failures = 0, opened_at = NULL, "
                    "open_until = NULL, reopen_count = 0, probe_lease_until = NULL, "
                    "probe_owner = NULL, generation = generation + 1, updated_at = ? "
                    "WHERE key = ?",
                    (CLOSED, now, key),
                )
                # A fresh start: the failures that tripped it must not count against recovery.
                conn.execute("DELETE FROM breaker_events WHERE key = ?", (key,))

    def _count(
        self,
        conn: sqlite3.Connection,
        row: _Row,
        failure: bool,
        retry_after_s: float | None,
        now: float,
    ) -> None:
        """Record an outcome of a closed breaker and trip it when the rules say so."""
        settings = self.settings
        key = row.key
        since = now - settings.window_s
        # Pruning on every write keeps the table at one window of events per key; the
        # (key, ts) index makes it a range delete.
        conn.execute("DELETE FROM breaker_events WHERE key = ? AND ts < ?", (key, since))
        conn.execute(
            "INSERT INTO breaker_events (key, ts, failure) VALUES (?, ?, ?)",
            (key, now, int(failure)),
        )
        consecutive = row.consecutive_failures + 1 if failure else 0
        if failure:
            calls, failures = conn.execute(
                "SELECT COUNT(*), SUM(failure) FROM breaker_events WHERE key = ? AND ts >= ?",
                (key, since),
            ).fetchone()
            rate_trips = (
                calls >= settings.min_calls
                # A small tolerance so 0.3 x 10 calls trips at 3 failures despite float error.
                and failures / calls >= settings.failure_rate_threshold - 1e-9
            )
            # A connection that cannot be made fails the same way for every model behind it:
            # one failure is the whole evidence there is.
            run_trips = consecutive >= settings.consecutive_failures or (
                kind_of_key(key) is BreakerKind.ENDPOINT
            )
            if rate_trips or run_trips:
                self._open(conn, key, now, 0, retry_after_s, consecutive)
                return
        if consecutive != row.consecutive_failures:
            conn.execute(
                "UPDATE breakers SET consecutive_failures = ?, updated_at = ? WHERE key = ?",
                (consecutive, now, key),
            )

    def _open(
        self,
        conn: sqlite3.Connection,
        key: str,
        now: float,
        reopen_count: int,
        retry_after_s: float | None,
        consecutive: int,
    ) -> None:
        open_s = self.settings.open_period_s(reopen_count, retry_after_s)
        conn.execute(
            "UPDATE breakers SET state = ?, consecutive_failures = ?, opened_at = ?, "
            "open_until = ?, reopen_count = ?, probe_lease_until = NULL, probe_owner = NULL, "
            "generation = generation + 1, updated_at = ? WHERE key = ?",
            (OPEN, consecutive, now, now + open_s, reopen_count, now, key),
        )

    def _describe(self, row: _Row, counts: tuple[int, int], now: float) -> BreakerState:
        calls, failures = counts
        if row.state == CLOSED:
            state, retry_after_s = CLOSED, None
        else:
            open_now = row.open_until is not None and now < row.open_until
            state = OPEN if open_now else HALF_OPEN
            retry_after_s = row.wait_s(now)
        lease_live = row.probe_lease_until is not None and now < row.probe_lease_until
        return BreakerState(
            key=row.key,
            state=state,
            failures=int(failures),
            calls=int(calls),
            opened_at=row.opened_at if row.state != CLOSED else None,
            retry_after_s=retry_after_s,
            consecutive_failures=row.consecutive_failures,
            open_until=row.open_until if row.state != CLOSED else None,
            reopen_count=row.reopen_count,
            probe_in_flight=row.state != CLOSED and lease_live,
        )

    # Connections and failure handling

    def _connection(self, *, create: bool) -> sqlite3.Connection | None:
        """This thread's connection, opened on first use (None: no store and not ``create``)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        # A connection must not cross fork(); the child opens its own.
        if conn is not None and self._local.pid == os.getpid():
            return conn
        if not create and not self.path.exists():
            return None
        conn = db.connect(self.path)
        try:
            timeout_ms = int(self.settings.lock_timeout_s * 1000)
            conn.execute(f"PRAGMA busy_timeout = {timeout_ms}")
        except sqlite3.Error:
            conn.close()
            raise
        self._local.conn = conn
        self._local.pid = os.getpid()
        with self._lock:
            self._connections.append((os.getpid(), conn))
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any error."""
        conn = self._connection(create=True)
        assert conn is not None
        with db.write_transaction(conn):
            yield conn

    def _forget_connection(self) -> None:
        """Drop this thread's connection so the next use reopens the (maybe repaired) file."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            return
        del self._local.conn
        with self._lock:
            self._connections = [item for item in self._connections if item[1] is not conn]
        with suppress(sqlite3.Error):
            conn.close()

    def _degraded(self, key: str, now: float, exc: BaseException) -> Permit:
        self._store_failed(exc, "calls go ahead without circuit-breaker protection")
        return Permit(key, -1, probe=False, started_at=now, degraded=True)

    def _store_failed(self, exc: BaseException, consequence: str) -> None:
        self._forget_connection()
        if self._warned:
            return
        self._warned = True
        text = f"circuit-breaker store {self.path} is unusable ({exc}); {consequence}"
        if self._on_warning is not None:
            self._on_warning(Caution(text))
        else:
            import logging

            logging.getLogger("attune.breaker").warning(text)
