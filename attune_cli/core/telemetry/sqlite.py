"""The telemetry store: every LLM call attune made or imported, and the figures the router reads.

One row per call attempt in the ``calls`` table of ``telemetry.db`` (see ``telemetry.db``
for the schema): when, which workflow and stage, which provider/model/tier, whether it worked,
HTTP status, latency, tokens, cost, attempt number and where the row came from. Never a
prompt, a response or a key.

Reads are SQL over indexes, never Python loops over the history: per-model figures over a
window add up hourly rollups (``telemetry.rollups``), kept in the same transaction as
the rows, and read rows only at the window's edges (the current hour, the hour the window's
start cuts, the hour outage memory cuts); "the newest N calls" is a short range of an index
walked backwards.

Times are epoch seconds (UTC) rounded to the millisecond, so that a call written out as
ISO-8601 text and read back in is the same call to the bit (export → import round-trips).
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from attune_cli.core import interrupts
from attune_cli.core.clock import now as clock_now
from attune_cli.core.errors import AttuneError, OperationError
from attune_cli.core.failures import FailureClass, sql_failure_class
from attune_cli.core.performance import ModelPerformance, ScoreWeights
from attune_cli.core.telemetry import db, rollups, spool
from attune_cli.core.telemetry.records import (
    COLUMNS,
    LABEL_KINDS,
    SPEND_GROUPS,
    BillingTotal,
    CallFilter,
    CallRecord,
    Row,
    SpendCell,
    Spooled,
    StageHour,
    quantise_ts,
)
from attune_cli.core.telemetry.spool import spool_path

if TYPE_CHECKING:
    from attune_cli.core.workspace import Workspace


_INSERT = (
    f"INSERT OR IGNORE INTO calls ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
)
_SELECT_COLUMNS = ", ".join(COLUMNS)


def insert_statement(constants: dict[str, str | int | None]) -> str:
    """An INSERT for rows that carry every column but ``constants``, in ``COLUMNS`` order.

    A bulk import whose format has fixed values for some columns (no HTTP status, attempt 1,
    its source name) writes them as literals: each bound parameter costs time a million
    times over.
    """
    bound = [c for c in COLUMNS if c not in constants]
    fixed = [c for c in COLUMNS if c in constants]
    values = ["?"] * len(bound) + [_literal(constants[c]) for c in fixed]
    return f"INSERT OR IGNORE INTO calls ({', '.join(bound + fixed)}) VALUES ({', '.join(values)})"


_ROWS_PER_INSERT = 100


@functools.cache
def _multi_row(statement: str) -> str:
    """``statement`` (one row of VALUES) for ``_ROWS_PER_INSERT`` rows at once."""
    head, _, values = statement.partition(" VALUES ")
    return f"{head} VALUES {', '.join([values] * _ROWS_PER_INSERT)}"


def _literal(value: str | int | None) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


_SELECT = f"SELECT {_SELECT_COLUMNS} FROM calls"
FAILURE_CLASS_SQL = sql_failure_class()
"""A row's failure class (NULL for a success) as SQL over its columns."""
# Columns of sums of real numbers: ``store verify`` compares them within a relative 1e-9, as
# they were added up in another order than their recomputation.
_SUMMED_REALS = ("cost_usd", "latency_ms", "plan_cost_usd")


class TelemetryStore:
    """Calls in SQLite: record them, query them, aggregate them per model.

    Safe for many processes at once: each write is one short ``BEGIN IMMEDIATE`` transaction
    on a WAL database with a busy timeout, so concurrent writers queue instead of losing rows.

    Attributes:
        conn: the connection, public so routers may run read-only SQL of their own.
        path: the database file.
    """

    # An edge hour's rows by their time (SQLite would otherwise walk a whole workflow's index).
    _calls_by_time = "calls INDEXED BY calls_identity"

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = clock_now,
        create: bool = True,
        read_only: bool = False,
    ) -> None:
        """Open (creating and migrating when needed) the store at ``path``.

        Args:
            path: the ``telemetry.db`` file.
            clock: epoch seconds now; tests inject a fake one.
            create: when False a missing file raises ``FileNotFoundError`` (read-only callers).
            read_only: a reader: open the file read-only when it cannot be written (a
                read-only file system) instead of failing.

        Raises:
            StoreVersionError: the file was written by a newer attune; it is left untouched.
            OperationError: the file is not a SQLite database.
        """
        self.path = path
        self.conn: sqlite3.Connection = db.connect(path, create=create, read_only=read_only)
        self._clock = clock
        self._rng = random.Random(os.urandom(16))
        self._known_labels: set[tuple[str, str]] = set()
        self.spool: Path | None = None if str(path) == db.MEMORY else spool_path(path)
        self.unusable_reason: str | None = None
        _ensure_math_functions(self.conn)

    @classmethod
    def unusable(
        cls, path: Path, reason: str, *, clock: Callable[[], float] = clock_now
    ) -> TelemetryStore:
        """An empty store in memory standing in for ``path``, which cannot be used.

        Routing finds no history in it, and every ``record`` goes to the spool beside
        ``path`` (``attune_cli.core.telemetry.spool``): what ``ask`` uses when ``telemetry.db`` is
        corrupt, from a newer attune, or cannot be written, so the call is still made.

        Args:
            path: the ``telemetry.db`` that could not be opened.
            reason: why, as a person reads it.
            clock: epoch seconds now.
        """
        store = cls(Path(db.MEMORY), clock=clock)
        store.path = path
        store.spool = spool_path(path)
        store.unusable_reason = reason
        return store

    @property
    def read_only(self) -> bool:
        """Whether the store was opened read-only (it cannot be written)."""
        return bool(getattr(self.conn, "read_only", False))

    @classmethod
    def open(cls, workspace: Workspace) -> TelemetryStore:
        """The store of this workspace (``telemetry.db`` in its data folder)."""
        return cls(workspace.paths.telemetry_db)

    @classmethod
    def open_for_reading(cls, workspace: Workspace) -> TelemetryStore:
        """The workspace's store, or an empty one in memory when nothing was recorded yet.

        Commands that only read (routing advice, say) must not create ``telemetry.db`` or its
        folder as a side effect; an empty store answers "no history" just the same.
        """
        path = workspace.paths.telemetry_db
        return cls(path if path.exists() else Path(db.MEMORY), read_only=True)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def now(self) -> float:
        """The store's clock."""
        return self._clock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises.

        Raises:
            OperationError: the store stayed locked past the busy timeout (a long import in
                another process), or SQLite could not write (disk full, read-only file).
        """
        self._check_writable()
        try:
            with db.write_transaction(self.conn):
                yield self.conn
        except sqlite3.Error as exc:
            self._known_labels.clear()  # the labels it added were rolled back too
            raise _write_error(self.path, exc) from None
        except BaseException:
            self._known_labels.clear()
            raise

    def _check_writable(self) -> None:
        """Refuse a write to a store opened read-only, saying what is read-only."""
        if self.read_only:
            raise OperationError(
                f"cannot write {self.path}: {db.read_only_reason(self.path)}",
                hint="run attune where it can write, or point ATTUNE_HOME at a writable folder",
            )

    @contextmanager
    def bulk_transaction(self) -> Iterator[None]:
        """One write transaction for a bulk import that Ctrl-C can stop at any query.

        Raises:
            KeyboardInterrupt: Ctrl-C arrived (the transaction was rolled back).
            OperationError: as ``transaction``.
        """
        # A bulk insert dirties a few hundred MB of index pages; a bigger page cache for this
        # connection keeps the indexes hot (RSS stays well under 150 MB).
        self.conn.execute("PRAGMA cache_size = -65536")
        try:
            with db.interruptible(self.conn), self.transaction():
                yield
        finally:
            self.conn.execute("PRAGMA cache_size = -2000")

    # --- writing ---------------------------------------------------------------------------

    def row_of(self, call: CallRecord) -> Row:
        """The row tuple (``COLUMNS`` order) for ``call``, with its time and identity filled."""
        ts = quantise_ts(self._clock() if call.ts is None else call.ts)
        key = call.key if call.key is not None else f"r{self._rng.getrandbits(64):016x}"
        return (
            ts,
            call.workflow,
            call.stage,
            call.provider,
            call.model,
            call.tier,
            1 if call.success else 0,
            call.error_kind,
            call.status,
            call.latency_ms,
            call.input_tokens,
            call.output_tokens,
            call.cost_usd,
            call.attempt,
            call.source,
            call.billing,
            key,
        )

    def record(self, call: CallRecord) -> Spooled | None:
        """Store one call in one short transaction (and make its names known for completion).

        A call that cannot get in (the store stayed locked past the busy timeout, or cannot
        be written) waits in the spool instead, and the next write that gets in adds it; a
        write that gets in first adds whatever the spool holds.

        Returns:
            None when the call was stored; what happened when it was spooled instead.

        Raises:
            OperationError: neither the store nor the spool could take the call.
        """
        row = self.row_of(call)
        if self.unusable_reason is not None:
            return self.spool_row(row, self.unusable_reason)
        labels = self._new_labels(((call.workflow, call.stage, call.model),))
        try:
            with self.transaction() as conn:
                cursor = conn.execute(_INSERT, row)
                if cursor.rowcount == 1:
                    self._add_rollups(cursor.lastrowid - 1 if cursor.lastrowid else 0)
                if labels:
                    conn.executemany(
                        "INSERT OR IGNORE INTO labels (kind, value) VALUES (?, ?)", labels
                    )
        except OperationError as exc:
            return self.spool_row(row, exc.message, exc)
        self._known_labels.update(labels)
        if self.spool is not None and self.spool.exists():
            with suppress(AttuneError, sqlite3.Error, OSError):
                self.drain_spool()
        return None

    def spool_row(self, row: Row, reason: str, error: OperationError | None = None) -> Spooled:
        """Put one row (``row_of``) in the spool beside the store, for the next write to add.

        Args:
            row: the call's row.
            reason: why the store did not take it, as a person reads it.
            error: the store's error, whose hint is kept.

        Raises:
            OperationError: the spool cannot be written either.
        """
        where = self.spool
        try:
            if where is None:
                raise OSError("an in-memory store has no spool")
            spool.append(where, COLUMNS, row)
        except OSError as exc:
            detail = exc.strerror or str(exc)
            raise OperationError(
                f"{reason}; the call could not be spooled either ({detail})",
                hint=error.hint if error is not None else None,
            ) from None
        return Spooled(self.path, where, reason)

    def drain_spool(self) -> int:
        """Add the spooled calls to the store (idempotently); returns how many were read.

        Raises:
            OperationError: the store cannot be written (the spool stays as it was).
        """
        if self.spool is None or self.unusable_reason is not None or self.read_only:
            return 0

        def insert(rows: list[Row]) -> None:
            with self.transaction():
                self.insert_rows(rows)
                self.add_labels({(row[1], row[2], row[4]) for row in rows})

        return spool.drain(self.spool, COLUMNS, insert)

    def spooled_rows(self) -> int:
        """How many calls wait in the spool."""
        return 0 if self.spool is None else spool.waiting(self.spool)

    def record_many(self, calls: Iterable[CallRecord]) -> int:
        """Store many calls in one transaction; returns how many were new.

        A call whose ``key`` and time are already in the store is skipped, not duplicated.
        """
        names: set[tuple[str, str, str]] = set()

        def rows() -> Iterator[Row]:
            for call in calls:
                names.add((call.workflow, call.stage, call.model))
                yield self.row_of(call)

        with self.transaction():
            inserted = self.insert_rows(rows())
            self.add_labels(names)
        return inserted

    def insert_rows(
        self, rows: Iterable[Row], *, batch: int = 5_000, statement: str = _INSERT
    ) -> int:
        """Insert row tuples inside the caller's transaction; returns how many were new.

        Labels are not touched: bulk writers collect the distinct names and call
        ``add_labels`` once, which keeps the per-row path to one index-friendly insert.

        Args:
            rows: tuples in ``COLUMNS`` order, or in the order ``statement`` expects.
            batch: rows gathered before they go to SQLite.
            statement: an ``insert_statement``; the default takes every column.
        """
        before = self.conn.total_changes
        newest_id = self._newest_id()
        if isinstance(rows, list) and len(rows) <= batch:
            self._insert_batch(rows, statement)
        else:
            pending: list[Row] = []
            for row in rows:
                pending.append(row)
                if len(pending) >= batch:
                    self._insert_batch(pending, statement)
                    pending = []
            if pending:
                self._insert_batch(pending, statement)
        inserted = self.conn.total_changes - before
        if inserted:
            self._add_rollups(newest_id)
        return inserted

    def _newest_id(self) -> int:
        return int(self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM calls").fetchone()[0])

    def _add_rollups(self, after_id: int) -> None:
        """Add the rows with an id above ``after_id`` (this transaction's) to the rollups.

        A new row always gets an id above every existing one, so these are exactly the rows
        this transaction inserted, whatever ``INSERT OR IGNORE`` skipped.
        """
        # ORDER BY keeps the new rows a subquery read by rowid: flattened into the aggregate,
        # SQLite scanned a whole index of the calls to group them instead (0.7 s at 10M calls).
        source = "(SELECT * FROM calls WHERE id > :after ORDER BY id)"
        for statement in rollups.upsert_sql(source):
            self.conn.execute(statement, {"after": after_id})

    def _insert_batch(self, rows: list[Row], statement: str) -> None:
        # Rows go in _ROWS_PER_INSERT at a time as one multi-row INSERT: per row, that is a
        # fifth fewer instructions than executemany's bind-step-reset loop (Python's sqlite3
        # overhead, not SQLite's), which a million-row import feels.
        whole = len(rows) - len(rows) % _ROWS_PER_INSERT
        if whole:
            multi = _multi_row(statement)
            flatten = itertools.chain.from_iterable
            execute = self.conn.execute
            for start in range(0, whole, _ROWS_PER_INSERT):
                execute(multi, list(flatten(rows[start : start + _ROWS_PER_INSERT])))
        if whole < len(rows):
            self.conn.executemany(statement, rows[whole:])

    def add_labels(self, names: Iterable[tuple[str, str, str]]) -> None:
        """Make (workflow, stage, model) names known to completion, in the caller's transaction."""
        labels = self._new_labels(names)
        if labels:
            self.conn.executemany(
                "INSERT OR IGNORE INTO labels (kind, value) VALUES (?, ?)", labels
            )
        self._known_labels.update(labels)

    def _new_labels(self, names: Iterable[tuple[str, str, str]]) -> list[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        for triple in names:
            for kind, value in zip(LABEL_KINDS, triple, strict=True):
                if (kind, value) not in self._known_labels:
                    found.add((kind, value))
        return sorted(found)

    def prune(self, before_ts: float, *, progress: Callable[[int], None] | None = None) -> int:
        """Delete the calls older than ``before_ts``; returns how many went.

        Deletes in chunks of about ``PRUNE_CHUNK_ROWS`` oldest calls, each one short transaction
        that also recounts the rollups of the hours it touched, and lets waiting writers in
        between chunks; so a prune of millions of calls never makes another writer wait long,
        and the rollups equal their rows at every commit. An interrupted prune has deleted
        some of the old calls and none of the rest. The labels are rebuilt from what is left,
        so completion stops offering names whose every call was deleted.

        Args:
            before_ts: calls older than this go.
            progress: told the running count of deleted calls after each chunk.
        """
        deleted = 0
        with self._maintenance():
            while True:
                row = self.conn.execute(
                    "SELECT ts FROM calls WHERE ts < ? ORDER BY ts LIMIT 1 OFFSET ?",
                    (before_ts, PRUNE_CHUNK_ROWS - 1),
                ).fetchone()
                with db.bulk_turn(self.conn), self.transaction():
                    if row is None:
                        deleted += self._delete_where("ts < ?", (before_ts,))
                    else:
                        deleted += self._delete_where("ts <= ?", (row[0],))
                self._checkpoint()
                if progress is not None:
                    progress(deleted)
                if row is None:
                    break
            if deleted:
                self._rebuild_labels()
        return deleted

    def _rebuild_labels(self) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM labels")
            for workflow, stage in self.pairs(None, None):
                conn.execute(
                    "INSERT OR IGNORE INTO labels VALUES ('workflow', ?), ('stage', ?)",
                    (workflow, stage),
                )
            conn.executemany(
                "INSERT INTO labels VALUES ('model', ?)",
                ((model,) for model in self._distinct_models()),
            )
        self._known_labels.clear()

    def _delete_where(self, condition: str, params: tuple[Any, ...]) -> int:
        """Delete the calls matching ``condition`` and recount the rollups of their hours.

        Inside the caller's transaction. Each (hour, workflow, stage, model, provider) a
        deleted call belonged to is recomputed from the calls left in it, so the rollups stay
        equal to their rows whatever was deleted (an edge hour, an import's scattered rows).

        Returns:
            How many calls were deleted.
        """
        conn = self.conn
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS doomed_hours (workflow, stage, model, hour, "
            "provider, PRIMARY KEY (workflow, stage, model, hour, provider))"
        )
        conn.execute("DELETE FROM temp.doomed_hours")
        conn.execute(
            "INSERT OR IGNORE INTO temp.doomed_hours SELECT DISTINCT workflow, stage, model, "
            f"{rollups.hour_sql()}, COALESCE(provider, '') FROM calls WHERE {condition}",
            params,
        )
        deleted = conn.execute(f"DELETE FROM calls WHERE {condition}", params).rowcount
        if deleted <= 0:
            return 0
        key = "(workflow, stage, model, hour, provider)"
        for table in ("rollups", "rollup_latency"):
            conn.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT * FROM temp.doomed_hours)")
        remaining = (
            "(SELECT c.* FROM temp.doomed_hours AS k CROSS JOIN calls AS c "
            "ON c.workflow = k.workflow AND c.stage = k.stage AND c.model = k.model "
            f"AND c.ts >= k.hour AND c.ts < k.hour + {rollups.HOUR_S} "
            "AND COALESCE(c.provider, '') = k.provider)"
        )
        aggregate, histogram, _ = rollups.aggregate_sql(remaining)
        conn.execute(f"INSERT INTO rollups ({', '.join(rollups.ROLLUP_COLUMNS)}) {aggregate}")
        conn.execute(
            "INSERT INTO rollup_latency (workflow, stage, model, hour, provider, bucket, calls, "
            f"latency_ms) {histogram}"
        )
        # The days of those hours, added up again from their (recounted) hours.
        day = rollups.hour_sql("hour", rollups.DAY_S)
        doomed_days = (
            f"SELECT DISTINCT workflow, stage, model, {day}, provider FROM temp.doomed_hours"
        )
        conn.execute(
            "DELETE FROM rollup_latency_day WHERE (workflow, stage, model, day, provider) "
            f"IN ({doomed_days})"
        )
        conn.execute(
            "INSERT INTO rollup_latency_day "
            + rollups.daily_from_hourly_sql(
                f"(workflow, stage, model, {day}, provider) IN ({doomed_days})"
            )
        )
        return deleted

    # --- bulk imports in chunks ------------------------------------------------------------

    @contextmanager
    def bulk_import(self) -> Iterator[BulkImport]:
        """An import that commits in chunks and is undone unless it ``finish``-es.

        See ``BulkImport``. Leaving the block by an exception (Ctrl-C included) or without
        ``finish`` deletes again every call the import added, chunk by chunk; an import
        killed outright leaves its undo log behind, and the next import or prune undoes it
        first.

        Raises:
            OperationError: as ``transaction``.
        """
        with self._maintenance():
            bulk = BulkImport(self, f"i{self._rng.getrandbits(64):016x}")
            self.conn.execute("PRAGMA cache_size = -65536")
            try:
                with db.interruptible(self.conn):
                    yield bulk
            finally:
                try:
                    if not bulk.finished:
                        # After Ctrl-C, undo still runs (a second Ctrl-C stops it; the next
                        # import or prune finishes it).
                        interrupts.reset()
                        self._undo_import(bulk.run)
                finally:
                    self.conn.execute("PRAGMA cache_size = -2000")

    @contextmanager
    def _maintenance(self) -> Iterator[None]:
        """One import or prune at a time on this file, after undoing an interrupted import.

        An import's undo log names the id ranges it added; a prune running at the same time
        could free the highest ids for a new call to reuse, so the two never overlap.
        """
        self._check_writable()
        with db.maintenance_lock(self.path):
            # A prune recounts hours from their rows: older rows must be rolled up first.
            db.backfill_rollups_locked(self.conn)
            for (run,) in self.conn.execute("SELECT DISTINCT run FROM import_chunks").fetchall():
                self._undo_import(run)
            yield

    def undo_interrupted_imports(self) -> int:
        """Undo what imports killed mid-way left (what the next import or prune does first).

        Returns:
            How many calls were deleted again.
        """
        before = self.count()
        with self._maintenance():
            pass
        return before - self.count()

    def interrupted_import_rows(self) -> int:
        """Calls of an interrupted import still waiting to be undone (0 when none)."""
        row = self.conn.execute(
            "SELECT COALESCE(SUM(last_id - first_id + 1), 0) FROM import_chunks"
        ).fetchone()
        return int(row[0])

    def _undo_import(self, run: str) -> None:
        """Delete the calls ``run`` added, newest chunk first, one short transaction each."""
        chunks = self.conn.execute(
            "SELECT first_id, last_id FROM import_chunks WHERE run = ? ORDER BY first_id DESC",
            (run,),
        ).fetchall()
        for first_id, last_id in chunks:
            with db.bulk_turn(self.conn), self.transaction() as conn:
                self._delete_where("id BETWEEN ? AND ?", (first_id, last_id))
                conn.execute(
                    "DELETE FROM import_chunks WHERE run = ? AND first_id = ?", (run, first_id)
                )
            self._checkpoint()

    def _insert_chunk(self, run: str, rows: list[Row], statement: str) -> tuple[int, float]:
        """One chunk of an import: its rows, their rollups and its undo entry, committed.

        Returns:
            How many rows were new, and how long the chunk waited for short writers.
        """
        with db.bulk_turn(self.conn) as waited_s, self.transaction() as conn:
            newest_id = self._newest_id()
            inserted = self.insert_rows(rows, batch=len(rows) or 1, statement=statement)
            if inserted:
                conn.execute(
                    "INSERT INTO import_chunks (run, first_id, last_id) VALUES (?, ?, ?)",
                    (run, newest_id + 1, self._newest_id()),
                )
        self._checkpoint()
        return inserted, waited_s

    def _checkpoint(self) -> None:
        """Copy a chunk's pages from the WAL into the file now, outside the write lock.

        Otherwise the short writer whose commit crosses the WAL's auto-checkpoint mark would
        copy (and sync) the bulk writer's pages inside its own ``record``.
        """
        with suppress(sqlite3.Error):
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _finish_import(self, run: str, names: Iterable[tuple[str, str, str]]) -> None:
        """The import's commit point: its names known, its undo log gone, in one transaction."""
        with self.transaction() as conn:
            self.add_labels(names)
            conn.execute("DELETE FROM import_chunks WHERE run = ?", (run,))

    # --- reading ---------------------------------------------------------------------------

    def count_before(self, before_ts: float) -> int:
        """How many calls are older than ``before_ts`` (what ``prune`` would delete)."""
        row = self.conn.execute("SELECT COUNT(*) FROM calls WHERE ts < ?", (before_ts,)).fetchone()
        return int(row[0])

    def count(self, where: CallFilter | None = None) -> int:
        """How many calls match ``where`` (all calls when None)."""
        clause, params = _where(where or CallFilter())
        return int(self.conn.execute(f"SELECT COUNT(*) FROM calls{clause}", params).fetchone()[0])

    def billing_totals(self, since_ts: float) -> list[BillingTotal]:
        """Calls, tokens and cost since ``since_ts``, one total per billing path.

        Reads a range of the time-led identity index: a usage window of hours is a few
        thousand rows at most.
        """
        rows = self.conn.execute(
            "SELECT billing, COUNT(*), COALESCE(SUM(success), 0), "
            "COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), "
            "COALESCE(SUM(cost_usd), 0) FROM calls WHERE ts >= ? GROUP BY billing",
            (since_ts,),
        ).fetchall()
        return [
            BillingTotal(row[0], int(row[1]), int(row[2]), int(row[3]), int(row[4]), float(row[5]))
            for row in rows
        ]

    def recent_calls(
        self,
        *,
        workflow: str | None,
        stage: str | None,
        model: str | None = None,
        limit: int = 50,
    ) -> list[CallRecord]:
        """The newest ``limit`` calls matching the filters, newest first."""
        if limit <= 0:
            return []
        if workflow is None and stage is None and model is None:
            pairs = None  # no filter: the time index alone
        else:
            pairs = self.pairs(workflow, stage)
        rows = self._newest(_SELECT_COLUMNS, pairs, model, None, limit)
        return [CallRecord.from_row(row) for row in rows]

    def _newest(
        self,
        columns: str,
        pairs: list[tuple[str, str]] | None,
        model: str | None,
        since: float | None,
        limit: int,
        condition: tuple[str, tuple[Any, ...]] = ("", ()),
    ) -> list[tuple[Any, ...]]:
        """The newest ``limit`` rows of ``pairs`` (None: any pair) and ``model``.

        ``columns`` must start with ``ts``; ``condition`` is an extra ``AND …`` SQL term over
        the index's columns and its parameters.

        Each (workflow, stage) range of ``calls_workflow_stage_ts`` is already in time order,
        so the newest calls are those ranges walked backwards and merged by a UNION ALL that
        SQLite streams: it reads about ``limit`` entries, however large the store.
        """
        if pairs is not None and not pairs:
            return []
        since_clause = " AND ts >= ?" if since is not None else ""
        model_clause = " AND model = ?" if model is not None else ""
        extra, extra_params = condition
        if pairs is not None and len(pairs) <= _MAX_MERGED_PAIRS:
            arm = (
                f"SELECT {columns} FROM calls "
                f"WHERE workflow = ? AND stage = ?{model_clause}{since_clause}{extra}"
            )
            params: list[Any] = []
            for pair in pairs:
                params.extend(pair)
                if model is not None:
                    params.append(model)
                if since is not None:
                    params.append(since)
                params.extend(extra_params)
            sql = " UNION ALL ".join(arm for _ in pairs)
        else:
            # No filter, or more stages than a compound SELECT may merge: walk the time index.
            allowed = set(pairs) if pairs is not None else None
            clause, found = _where(CallFilter(model=model, since_ts=since))
            sql = f"SELECT {columns}, workflow, stage FROM calls{clause}{extra}"
            cursor = self.conn.execute(f"{sql} ORDER BY ts DESC", (*found, *extra_params))
            rows: list[tuple[Any, ...]] = []
            for row in cursor:
                if allowed is None or (row[-2], row[-1]) in allowed:
                    rows.append(row[:-2])
                    if len(rows) >= limit:
                        break
            cursor.close()
            return rows
        return self.conn.execute(f"{sql} ORDER BY 1 DESC LIMIT ?", (*params, limit)).fetchall()

    def iter_calls(self, where: CallFilter | None = None, *, batch: int = 10_000) -> Iterator[Row]:
        """Every matching row (``COLUMNS`` order), oldest first, streamed in batches."""
        clause, params = _where(where or CallFilter())
        cursor = self.conn.execute(f"{_SELECT}{clause} ORDER BY ts, import_key", params)
        while True:
            rows = cursor.fetchmany(batch)
            if not rows:
                return
            yield from rows

    def rows_after(self, after_id: int, limit: int) -> list[tuple[int, Row]]:
        """Up to ``limit`` rows with an id above ``after_id``, oldest id first, with their ids.

        ``attune store push`` walks the local store with these to copy it to the team store.
        """
        return [
            (row[0], tuple(row[1:]))
            for row in self.conn.execute(
                f"SELECT id, {_SELECT_COLUMNS} FROM calls WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            )
        ]

    def count_after(self, after_id: int) -> int:
        """How many rows have an id above ``after_id`` (rows not pushed yet)."""
        row = self.conn.execute("SELECT COUNT(*) FROM calls WHERE id > ?", (after_id,)).fetchone()
        return int(row[0])

    def labels(self, kind: str, prefix: str = "") -> list[str]:
        """Known names of ``kind`` (workflow, stage or model) starting with ``prefix``, sorted."""
        if kind not in LABEL_KINDS:
            raise ValueError(f"unknown label kind {kind!r}; expected one of {LABEL_KINDS}")
        if prefix:
            rows = self.conn.execute(
                "SELECT value FROM labels WHERE kind = ? AND value >= ? AND value < ? "
                "ORDER BY value",
                (kind, prefix, prefix + "\U0010ffff"),
            )
        else:
            rows = self.conn.execute(
                "SELECT value FROM labels WHERE kind = ? ORDER BY value", (kind,)
            )
        return [value for (value,) in rows]

    def model_performance(
        self,
        *,
        workflow: str | None,
        stage: str | None,
        since_ts: float | None,
        weights: ScoreWeights,
        half_life_s: float | None = None,
        recent_n: int = 20,
        now: float | None = None,
        outage_since_ts: float | None = None,
        explore_half_life_s: float | None = None,
    ) -> list[ModelPerformance]:
        """Per-model figures over every call of a window, best ``quality_score`` first.

        Failures are split by class (``attune_cli.core.failures``): caller errors, rate limits
        and cancellations never count against a model; outage failures count only when they
        happened at or after ``outage_since_ts``; quality failures always count.

        Args:
            workflow: only this workflow's calls (None: every workflow).
            stage: only this stage's calls (None: every stage).
            since_ts: the window's start, epoch seconds (None: all history).
            weights: the score weights the returned entries use.
            half_life_s: when given, ``weighted_calls``/``weighted_successes`` weigh each
                counted call by ``0.5 ** (age / half_life_s)``; None leaves them None.
            recent_n: how many of each model's newest counted calls in the window
                ``recent_calls``/``recent_failures`` look at.
            now: the time ages are measured from (default: the store's clock).
            outage_since_ts: outage failures older than this are not counted (None: all are).
            explore_half_life_s: when given, ``explore_calls``/``explore_successes`` weigh
                each counted call by ``0.5 ** (age / explore_half_life_s)`` (the shorter
                memory exploring judges by); None leaves them None.

        Returns:
            One ``ModelPerformance`` per model with calls in the window, best score first
            (ties by model id).
        """
        since = -math.inf if since_ts is None else since_ts
        outage_since = -math.inf if outage_since_ts is None else outage_since_ts
        reference = self._clock() if now is None else now
        plan = rollups.WindowPlan.of(since, reference, outage_since)
        totals, recents = self._window_reads(
            workflow,
            stage,
            plan,
            reference,
            (half_life_s, explore_half_life_s),
            since,
            recent_n,
            outage_since,
        )
        result: list[ModelPerformance] = []
        for model, total in totals.items():
            p50 = rollups.percentile(
                total.exact_latencies, total.buckets.values(), total.latencies, 50
            )
            p95 = rollups.percentile(
                total.exact_latencies, total.buckets.values(), total.latencies, 95
            )
            recent = recents[model]
            result.append(
                ModelPerformance(
                    model=model,
                    provider=recent.provider,
                    tier=recent.tier,
                    calls=total.calls,
                    successes=total.successes,
                    p50_latency_ms=p50,
                    p95_latency_ms=p95,
                    avg_cost_usd=total.cost_usd / total.costs if total.costs else None,
                    cost_usd=total.cost_usd,
                    plan_covered_usd=total.plan_cost_usd,
                    weighted_calls=total.weighted_calls if half_life_s else None,
                    weighted_successes=total.weighted_successes if half_life_s else None,
                    explore_calls=total.explore_calls if explore_half_life_s else None,
                    explore_successes=total.explore_successes if explore_half_life_s else None,
                    recent_calls=recent.calls,
                    recent_failures=recent.failures,
                    recent_outage_run=recent.outage_run,
                    newest_ts=recent.newest_ts,
                    counted_calls=total.successes
                    + total.quality_failures
                    + total.outage_failures_counted,
                    quality_failures=total.quality_failures,
                    outage_failures=total.outage_failures,
                    outage_failures_counted=total.outage_failures_counted,
                    rate_limited=total.rate_limited,
                    caller_errors=total.caller_errors,
                    newest_outage_ts=total.newest_outage_ts,
                    weights=weights,
                )
            )
        result.sort(key=lambda perf: (-perf.quality_score, perf.model))
        return result

    def _window_reads(
        self,
        workflow: str | None,
        stage: str | None,
        plan: rollups.WindowPlan,
        now: float,
        half_lives_s: tuple[float | None, float | None],
        since: float,
        recent_n: int,
        outage_since: float,
    ) -> tuple[dict[str, _Totals], dict[str, _Recent]]:
        """What ``model_performance`` reads: each model's window totals and newest calls.

        The pairs matching the filters, then their window (``_window_totals``), then the
        newest counted calls of each model found (``_recents``).
        """
        pairs = self.pairs(workflow, stage)
        totals = self._window_totals(pairs, plan, now, half_lives_s, outage_since)
        return totals, self._recents(sorted(totals), pairs, since, recent_n, outage_since)

    def _window_totals(
        self,
        pairs: list[tuple[str, str]],
        plan: rollups.WindowPlan,
        now: float,
        half_lives_s: tuple[float | None, float | None],
        outage_since: float,
    ) -> dict[str, _Totals]:
        """Counts, sums and latencies per model: rollups for whole hours, rows at the edges.

        ``half_lives_s`` are (ranking's, exploring's): the weighted sums' half-lives.
        """
        totals: dict[str, _Totals] = {}
        decay_per_s = _decays(half_lives_s)
        for pair in pairs:
            # One range of the rollups' key per model: (workflow, stage) alone would read the
            # pair's whole history, not the window's hours.
            models = self._next_values("model", pair) if plan.rollup_ranges else []
            for model in models:
                for first, last in plan.rollup_ranges:
                    self._add_rollup_range(
                        totals, (*pair, model), first, last, now, decay_per_s, outage_since
                    )
            for start, end in plan.row_ranges:
                self._add_row_range(totals, pair, start, end, now, decay_per_s, outage_since)
        return totals

    def _add_rollup_range(
        self,
        totals: dict[str, _Totals],
        key: tuple[str, str, str],
        first: int,
        last: int,
        now: float,
        decay_per_s: tuple[float, float],
        outage_since: float,
    ) -> None:
        """Add the rollups of one (workflow, stage, model) ``key`` over hours [first, last).

        Each hour is weighed by its middle.
        """
        middle = rollups.HOUR_S / 2
        weight = f"exp(min(hour + {middle} - :now, 0) * :decay)"
        # An hour read from rollups lies wholly before or wholly after ``outage_since``.
        counted = "successes + quality_failures + (hour >= :outage_since) * outage_failures"
        # Exploring's counts only when asked for (a decision that does not explore skips them).
        if decay_per_s[1]:
            explore_weight = f"exp(min(hour + {middle} - :now, 0) * :explore_decay)"
            explore_sums = (
                f"TOTAL(({counted}) * {explore_weight}), TOTAL(successes * {explore_weight}) "
            )
        else:
            explore_sums = "0.0, 0.0 "
        sql = (
            "SELECT model, SUM(calls), SUM(successes), SUM(quality_failures), "
            "SUM(outage_failures), SUM((hour >= :outage_since) * outage_failures), "
            "SUM(rate_limited), SUM(caller_errors), MAX(newest_outage_ts), TOTAL(cost_usd), "
            f"SUM(costs), SUM(latencies), TOTAL(({counted}) * {weight}), "
            f"TOTAL(successes * {weight}), TOTAL(plan_cost_usd), {explore_sums}"
            "FROM rollups WHERE workflow = :workflow AND stage = :stage AND model = :model "
            "AND hour >= :first AND hour < :last GROUP BY model"
        )
        params = {
            "workflow": key[0],
            "stage": key[1],
            "model": key[2],
            "first": first,
            "last": last,
            "now": now,
            "decay": decay_per_s[0],
            "explore_decay": decay_per_s[1],
            "outage_since": outage_since,
        }
        for row in self.conn.execute(sql, params).fetchall():
            model = row[0]
            total = totals.setdefault(model, _Totals())
            total.add_sums(row[1:17])
            if row[11]:
                for bucket, calls, latency_ms in self.conn.execute(
                    _HISTOGRAM, (*key, *_histogram_ranges(first, last))
                ):
                    total.add_bucket(bucket, calls, latency_ms)

    def _add_row_range(
        self,
        totals: dict[str, _Totals],
        pair: tuple[str, str],
        start: float,
        end: float,
        now: float,
        decay_per_s: tuple[float, float],
        outage_since: float,
    ) -> None:
        """Add the rows of [start, end) one by one (an edge hour: exact times and latencies)."""
        sql = (
            f"SELECT model, ts, success, ({FAILURE_CLASS_SQL}), cost_usd, latency_ms, "
            f"billing = '{rollups.PLAN_COVERED}' FROM calls "
            "WHERE workflow = ? AND stage = ? AND ts >= ?"
        )
        params: tuple[Any, ...] = (pair[0], pair[1], start)
        if end != math.inf:
            sql += " AND ts < ?"
            params = (*params, end)
        for model, ts, success, fc, cost_usd, latency_ms, covered in self.conn.execute(sql, params):
            total = totals.setdefault(model, _Totals())
            total.calls += 1
            counted = bool(success)
            if success:
                total.successes += 1
            elif fc == FailureClass.QUALITY:
                total.quality_failures += 1
                counted = True
            elif fc == FailureClass.OUTAGE:
                total.outage_failures += 1
                total.note_outage(ts)
                if ts >= outage_since:
                    total.outage_failures_counted += 1
                    counted = True
            elif fc == FailureClass.RATE_LIMIT:
                total.rate_limited += 1
            elif fc == FailureClass.CALLER_ERROR:
                total.caller_errors += 1
            if cost_usd is not None:
                total.cost_usd += cost_usd
                total.costs += 1
                if covered:
                    total.plan_cost_usd += cost_usd
            if latency_ms is not None:
                total.latencies += 1
                total.exact_latencies.append(latency_ms)
            if decay_per_s[0]:
                weight = math.exp(min(ts - now, 0) * decay_per_s[0])
                total.weighted_calls += weight if counted else 0.0
                total.weighted_successes += weight if success else 0.0
            if decay_per_s[1]:
                weight = math.exp(min(ts - now, 0) * decay_per_s[1])
                total.explore_calls += weight if counted else 0.0
                total.explore_successes += weight if success else 0.0

    def _recents(
        self,
        models: list[str],
        pairs: list[tuple[str, str]],
        since: float,
        recent_n: int,
        outage_since: float,
    ) -> dict[str, _Recent]:
        """Each model's newest counted calls (``_recent_of``), by model."""
        return {
            model: self._recent_of(model, pairs, since, recent_n, outage_since) for model in models
        }

    def _recent_of(
        self,
        model: str,
        pairs: list[tuple[str, str]],
        since: float,
        recent_n: int,
        outage_since: float = -math.inf,
    ) -> _Recent:
        """The model's newest ``recent_n`` counted calls: failures, the run of outages they
        start with, and the model's provider and tier.

        Counted as in ``model_performance``: rate limits, caller errors, cancellations and
        outages older than ``outage_since`` are passed over.
        """
        counted = (
            f" AND (success OR ({FAILURE_CLASS_SQL}) = '{FailureClass.QUALITY}' "
            f"OR (({FAILURE_CLASS_SQL}) = '{FailureClass.OUTAGE}' AND ts >= ?))"
        )
        rows = self._newest(
            f"ts, success, provider, tier, ({FAILURE_CLASS_SQL})",
            pairs,
            model,
            since,
            max(recent_n, 1),
            (counted, (outage_since,)),
        )
        return _Recent.of(rows, recent_n)

    def pairs(
        self, workflow: str | None, stage: str | None, *, since_ts: float | None = None
    ) -> list[tuple[str, str]]:
        """The (workflow, stage) pairs with calls that match the filters, sorted.

        A loose scan of the rollups' key (one seek per distinct value) rather than
        ``SELECT DISTINCT``; with ``since_ts``, only pairs with a call at or after it (one
        index seek each).
        """
        workflows = [workflow] if workflow is not None else self._next_values("workflow", ())
        pairs: list[tuple[str, str]] = []
        for name in workflows:
            if stage is not None:
                hit = self.conn.execute(
                    "SELECT 1 FROM rollups WHERE workflow = ? AND stage = ? LIMIT 1",
                    (name, stage),
                ).fetchone()
                if hit:
                    pairs.append((name, stage))
            else:
                pairs.extend((name, found) for found in self._next_values("stage", (name,)))
        if since_ts is None:
            return pairs
        return [
            pair
            for pair in pairs
            if self.conn.execute(
                "SELECT 1 FROM calls WHERE workflow = ? AND stage = ? AND ts >= ? LIMIT 1",
                (*pair, since_ts),
            ).fetchone()
        ]

    def _next_values(self, column: str, fixed: tuple[str, ...]) -> list[str]:
        """Distinct values of a leading column of the rollups' key, one seek each.

        ``column`` is ``workflow`` (``fixed`` empty), ``stage`` (``fixed`` = (workflow,)) or
        ``model`` (``fixed`` = (workflow, stage)).
        """
        prefix = "".join(f"{name} = ? AND " for name in ("workflow", "stage")[: len(fixed)])
        first = f"SELECT MIN({column}) FROM rollups WHERE {prefix}"
        found: list[str] = []
        value = self.conn.execute(f"{first}{column} >= ''", fixed).fetchone()[0]
        while value is not None:
            found.append(value)
            value = self.conn.execute(f"{first}{column} > ?", (*fixed, value)).fetchone()[0]
        return found

    # --- spend and budgets ------------------------------------------------------------------

    def spend_cells(
        self,
        since_ts: float,
        until_ts: float,
        *,
        group: str | None = None,
        workflow: str | None = None,
        stage: str | None = None,
        model: str | None = None,
        day_offsets: Sequence[tuple[float, int]] | None = None,
    ) -> list[SpendCell]:
        """What was spent in ``[since_ts, until_ts)`` per model (and ``group``), per local day
        when ``day_offsets`` is given.

        Whole hours come from the spend tables or the rollups; the parts of hours the window's
        ends cut (a time zone half an hour off UTC, a window ending now) from the rows, exactly.
        Each cell is stamped with its first hour (an edge part with the hour it lies in).

        Args:
            since_ts: the window's start, epoch seconds.
            until_ts: its end (exclusive); ``math.inf`` for everything from ``since_ts`` on.
            group: also group by this column (``SPEND_GROUPS``); None: by model alone.
            workflow: only this workflow.
            stage: only this stage.
            model: only this model.
            day_offsets: (from epoch seconds, UTC offset in whole seconds) of the user's zone,
                oldest first, the first from ``-inf``: hours are grouped by the local day in
                which they begin. None: one cell per model (and group) for the whole window.

        Raises:
            ValueError: ``group`` is not one of ``SPEND_GROUPS``.
        """
        if group is not None and group not in SPEND_GROUPS:
            raise ValueError(f"cannot group spend by {group!r}")
        if until_ts <= since_ts:
            return []
        # The whole hours [first, last) come from the rollups.
        first = (
            rollups.UNBOUNDED_HOUR
            if since_ts == -math.inf
            else -(-math.ceil(since_ts) // rollups.HOUR_S) * rollups.HOUR_S
        )
        last = -rollups.UNBOUNDED_HOUR if until_ts == math.inf else rollups.hour_of(until_ts)
        filters = ""
        params: dict[str, Any] = {}
        for column, value in (("workflow", workflow), ("stage", stage), ("model", model)):
            if value is not None:
                filters += f" AND {column} = :{column}"
                params[column] = value
        cells: list[SpendCell] = []
        if first >= last:
            # No whole hour inside: one cut hour, or the ends of two.
            if since_ts < first < until_ts:
                self._spend_rows(cells, since_ts, float(first), group, filters, params)
                self._spend_rows(cells, float(first), until_ts, group, filters, params)
            else:
                self._spend_rows(cells, since_ts, until_ts, group, filters, params)
            return cells
        if since_ts < first:
            self._spend_rows(cells, since_ts, float(first), group, filters, params)
        column, grouped = (group, "2, 3") if group is not None else ("''", "2")
        if day_offsets is not None:
            grouped += f", {_local_day_sql(day_offsets)}"
        if stage is None and group != "stage":
            # The coarser tables the rollups' triggers keep (``rollups.SPEND_TABLES``).
            table = (
                "spend_hours"
                if workflow is None and group != "workflow"
                else "spend_workflow_hours"
            )
            sums = "SUM(unpriced_input_tokens), SUM(unpriced_output_tokens)"
        else:
            table = "rollups"
            sums = (
                "SUM(CASE WHEN costs = 0 THEN input_tokens ELSE 0 END), "
                "SUM(CASE WHEN costs = 0 THEN output_tokens ELSE 0 END)"
            )
        sums += ", COALESCE(SUM(plan_cost_usd), 0)"
        ranges: list[tuple[str, int, int]] = [(table, first, last)]
        daily = rollups.SPEND_DAY_TABLES.get(table)
        if daily is not None and day_offsets is None:
            # Whole UTC days from the daily twin, the hours around them from the hourly table.
            day_first = -(-first // rollups.DAY_S) * rollups.DAY_S
            day_last = last // rollups.DAY_S * rollups.DAY_S
            if day_first < day_last:
                ranges = [
                    (table, first, day_first),
                    (daily, day_first, day_last),
                    (table, day_last, last),
                ]
        for source, low, high in ranges:
            if low >= high:
                continue
            sql = (
                f"SELECT MIN(hour), model, {column}, SUM(calls), COALESCE(SUM(cost_usd), 0), "
                f"SUM(costs), {sums} FROM {source} "
                f"WHERE hour >= :first AND hour < :last{filters} GROUP BY {grouped}"
            )
            for row in self.conn.execute(sql, {**params, "first": low, "last": high}):
                cells.append(
                    SpendCell(
                        int(row[0]),
                        row[1],
                        row[2],
                        int(row[3]),
                        float(row[4]),
                        int(row[5]),
                        int(row[6]),
                        int(row[7]),
                        float(row[8]),
                    )
                )
        if until_ts > last:
            self._spend_rows(cells, float(last), until_ts, group, filters, params)
        return cells

    def _spend_rows(
        self,
        cells: list[SpendCell],
        start: float,
        end: float,
        group: str | None,
        filters: str,
        params: dict[str, Any],
    ) -> None:
        """Add the spend of the rows in ``[start, end)``, which lies within one hour."""
        column, grouped = (f"COALESCE({group}, '')", "1, 2") if group is not None else ("''", "1")
        sql = (
            f"SELECT model, {column}, COUNT(*), COALESCE(SUM(cost_usd), 0), COUNT(cost_usd), "
            "COALESCE(SUM(CASE WHEN cost_usd IS NULL THEN input_tokens END), 0), "
            "COALESCE(SUM(CASE WHEN cost_usd IS NULL THEN output_tokens END), 0), "
            f"COALESCE(SUM(CASE WHEN billing = '{rollups.PLAN_COVERED}' THEN cost_usd END), 0) "
            f"FROM {self._calls_by_time} WHERE ts >= :start AND ts < :end{filters} "
            f"GROUP BY {grouped}"
        )
        hour = rollups.hour_of(start)
        bounded = {**params, "start": start, "end": min(end, 1e300)}
        for row in self.conn.execute(sql, bounded):
            cells.append(
                SpendCell(
                    hour,
                    row[0],
                    row[1],
                    int(row[2]),
                    float(row[3]),
                    int(row[4]),
                    int(row[5]),
                    int(row[6]),
                    float(row[7]),
                )
            )

    def stage_hours(
        self, workflow: str, stage: str, first_hour: int, last_hour: int
    ) -> list[StageHour]:
        """Each model's rollup of one (workflow, stage) per hour in ``[first_hour, last_hour)``,
        with its latency histogram (what ``route simulate`` replays)."""
        # Model by model: each is one range of the rollups' key, so the window's hours are
        # read, not the stage's whole history.
        models = self._next_values("model", (workflow, stage))
        where = (
            "workflow = :workflow AND stage = :stage AND model = :model "
            "AND hour >= :first AND hour < :last"
        )
        histograms: dict[tuple[int, str], list[tuple[int, int, float]]] = {}
        rows = []
        for model in models:
            params = {
                "workflow": workflow,
                "stage": stage,
                "model": model,
                "first": first_hour,
                "last": last_hour,
            }
            for hour, bucket, calls, total in self.conn.execute(
                "SELECT hour, bucket, SUM(calls), SUM(latency_ms) FROM rollup_latency "
                f"WHERE {where} GROUP BY hour, bucket",
                params,
            ):
                histograms.setdefault((int(hour), model), []).append(
                    (int(bucket), int(calls), float(total))
                )
            rows += self.conn.execute(
                "SELECT hour, model, MAX(provider), SUM(calls), SUM(successes), "
                "SUM(quality_failures), SUM(outage_failures), SUM(rate_limited), "
                "SUM(caller_errors), COALESCE(SUM(cost_usd), 0), SUM(costs), SUM(input_tokens), "
                f"SUM(output_tokens) FROM rollups WHERE {where} GROUP BY hour, model",
                params,
            ).fetchall()
        rows.sort(key=lambda row: (row[0], row[1]))
        found = []
        for row in rows:
            hour = int(row[0])
            found.append(
                StageHour(
                    hour=hour,
                    model=row[1],
                    provider=row[2] or "",
                    calls=int(row[3]),
                    successes=int(row[4]),
                    quality_failures=int(row[5]),
                    outage_failures=int(row[6]),
                    rate_limited=int(row[7]),
                    caller_errors=int(row[8]),
                    cost_usd=float(row[9]),
                    costs=int(row[10]),
                    input_tokens=int(row[11]),
                    output_tokens=int(row[12]),
                    buckets=tuple(histograms.get((hour, row[1]), ())),
                )
            )
        return found

    @contextmanager
    def budget_transaction(self) -> Iterator[None]:
        """One transaction in which budgets are checked and reservations written.

        Two processes cannot both be inside one at once (SQLite: ``BEGIN IMMEDIATE`` holds
        the write lock from the start), so the second sees the first's reservation.
        """
        with self.transaction():
            yield

    def reserved_usd(self, budget: str, now: float) -> float:
        """The reservations of ``budget`` that have not expired at ``now``, in dollars."""
        row = self.conn.execute(
            "SELECT COALESCE(SUM(amount_usd), 0) FROM budget_reservations "
            "WHERE budget = ? AND expires_ts > ?",
            (budget, now),
        ).fetchone()
        return float(row[0])

    def add_reservation(
        self, reservation_id: str, budget: str, amount_usd: float, now: float, expires_ts: float
    ) -> None:
        """Reserve ``amount_usd`` of ``budget`` until ``expires_ts`` (inside a transaction).

        Expired reservations are deleted on the way.
        """
        self.conn.execute("DELETE FROM budget_reservations WHERE expires_ts <= ?", (now,))
        self.conn.execute(
            "INSERT INTO budget_reservations (id, budget, amount_usd, created_ts, expires_ts) "
            "VALUES (?, ?, ?, ?, ?)",
            (reservation_id, budget, amount_usd, now, expires_ts),
        )

    def release_reservation(self, reservation_id: str) -> None:
        """Drop a reservation (the call's real cost is recorded by now)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM budget_reservations WHERE id = ?", (reservation_id,))

    # --- upkeep ----------------------------------------------------------------------------

    def verify(
        self, *, limit: int = 20, progress: Callable[[int, int], None] | None = None
    ) -> rollups.VerifyReport:
        """Recompute the rollups from the rows, and the spend tables from the rollups, and
        compare them with the stored ones.

        The spend tables are defined as sums of the rollups (``rollups.SPEND_TABLES``, kept by
        triggers), so they are added up from the rollups, which are themselves checked
        against the rows: a rollup that is wrong is one difference, not one in every table.
        Counts must be equal; sums of costs and latencies equal within a relative 1e-9 (they
        were added up in another order).

        Args:
            limit: how many differences to list (all are counted).
            progress: called with (tables checked, tables) before each table and at the end.
        """
        aggregate, histogram, daily = rollups.aggregate_sql("calls")
        key = ("workflow", "stage", "model", "hour", "provider")
        day_key = ("workflow", "stage", "model", "day", "provider", "bucket")
        checks = (
            ("rollups", aggregate, key, rollups.ROLLUP_COLUMNS[len(key) :]),
            ("rollup_latency", histogram, (*key, "bucket"), ("calls", "latency_ms")),
            ("rollup_latency_day", daily, day_key, ("calls", "latency_ms")),
            *(
                (name, rollups.spend_from_rollups(name), spend_key, rollups.SPEND_SUMS)
                for name, spend_key in rollups.SPEND_TABLES.items()
            ),
        )
        differences: list[rollups.RollupDifference] = []
        total = 0
        checked = 0
        spend_rows = 0
        with db.interruptible(self.conn):
            self.conn.execute("BEGIN")
            try:
                for done, (table, select, columns, values) in enumerate(checks):
                    if progress is not None:
                        progress(done, len(checks))
                    found, listed, count = self._compare(table, select, columns, values, limit)
                    total += found
                    checked += count if table == "rollups" else 0
                    spend_rows += count if table in rollups.SPEND_TABLES else 0
                    differences.extend(listed[: max(limit - len(differences), 0)])
            finally:
                self.conn.execute("ROLLBACK")
        if progress is not None:
            progress(len(checks), len(checks))
        return rollups.VerifyReport(checked, tuple(differences), total, spend_rows)

    def _compare(
        self,
        table: str,
        select: str,
        key: tuple[str, ...],
        values: tuple[str, ...],
        limit: int,
    ) -> tuple[int, list[rollups.RollupDifference], int]:
        expected = f"expected_{table}"
        self.conn.execute(f"DROP TABLE IF EXISTS temp.{expected}")
        # The stored table's column types: a key column without one compares with another
        # affinity, and the joins below could then not look the key up in either index (each
        # row was compared with every row of its workflow: minutes for 200,000 calls).
        types = {row[1]: row[2] for row in self.conn.execute(f"PRAGMA main.table_info({table})")}
        declared = ", ".join(f"{c} {types.get(c, '')}".rstrip() for c in (*key, *values))
        self.conn.execute(
            f"CREATE TEMP TABLE {expected} ({declared}, PRIMARY KEY ({', '.join(key)}))"
        )
        self.conn.execute(f"INSERT INTO temp.{expected} {select}")
        joined = " AND ".join(f"a.{c} IS b.{c}" for c in key)

        def differs(column: str) -> str:
            if column in _SUMMED_REALS:
                return f"abs(a.{column} - b.{column}) > 1e-9 * max(1.0, abs(b.{column}))"
            return f"a.{column} IS NOT b.{column}"

        unequal = " OR ".join(differs(c) for c in values)
        stored_cols = ", ".join(f"a.{c}" for c in (*key, *values))
        expected_cols = ", ".join(f"b.{c}" for c in values)
        sql = (
            f"SELECT {stored_cols}, {expected_cols}, 1 FROM {table} AS a "
            f"LEFT JOIN temp.{expected} AS b ON {joined} WHERE b.{key[0]} IS NULL OR {unequal} "
            f"UNION ALL SELECT {', '.join(f'b.{c}' for c in key)}, "
            f"{', '.join('NULL' for _ in values)}, {expected_cols}, 0 FROM temp.{expected} AS b "
            f"LEFT JOIN {table} AS a ON {joined} WHERE a.{key[0]} IS NULL"
        )
        listed: list[rollups.RollupDifference] = []
        found = 0
        width = len(key) + len(values)
        for row in self.conn.execute(sql):
            found += 1
            if len(listed) < limit:
                stored = tuple(row[len(key) : width]) if row[-1] else None
                missing = row[width] is None and row[-1]
                expected_values = None if missing else tuple(row[width:-1])
                listed.append(
                    rollups.RollupDifference(table, tuple(row[: len(key)]), stored, expected_values)
                )
        count = int(self.conn.execute(f"SELECT COUNT(*) FROM temp.{expected}").fetchone()[0])
        self.conn.execute(f"DROP TABLE temp.{expected}")
        return found, listed, count

    def rollup_hours(self) -> int:
        """How many distinct hours the rollups cover."""
        row = self.conn.execute("SELECT COUNT(DISTINCT hour) FROM rollups").fetchone()
        return int(row[0])

    def schema_version(self) -> int:
        """The store's schema version."""
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def round_trip_ms(self) -> float:
        """How long one trivial query takes, in milliseconds."""
        started = time.perf_counter()
        self.conn.execute("SELECT 1").fetchone()
        return (time.perf_counter() - started) * 1000

    def _distinct_models(self) -> list[str]:
        """Every model with calls: a loose scan of each (workflow, stage) range."""
        return sorted(
            {model for pair in self.pairs(None, None) for model in self._next_values("model", pair)}
        )


class BulkImport:
    """A bulk import that commits every ``CHUNK_ROWS`` rows, undone unless it finishes.

    Why chunks and an undo log rather than one transaction, or a side table: one transaction
    holds the write lock for the whole import (a minute for two million rows), and every
    other writer (``telemetry record``, ``ask``, the breakers) gives up after the busy
    timeout; a side table still needs a final step that moves every row into the indexed
    table, which is as long. So each chunk is one short transaction that adds its rows, adds
    them to the rollups (which thus equal their rows at every commit) and notes the chunk's id
    range in ``import_chunks``; between chunks, writers waiting for the lock get in
    (``db.bulk_turn``). ``finish`` deletes the notes in one short transaction: that is
    the import's commit point. An import that stops before it (a bad line without
    ``--skip-bad``, a dry run, Ctrl-C, an error) deletes its rows again by those id ranges,
    chunk by chunk; one that is killed leaves the notes, and the next import or prune undoes
    it before it starts. Meanwhile other readers may see part of an import, as they would
    see it arrive row by row.
    """

    def __init__(self, store: TelemetryStore, run: str) -> None:
        self._store = store
        self.run = run
        self.finished = False
        self._contended = False

    def insert(self, rows: Iterable[Row], *, statement: str = _INSERT) -> int:
        """Add ``rows`` (in ``statement``'s column order), committing every ``CHUNK_ROWS``.

        Returns:
            How many were new.
        """
        inserted = 0
        batch = rows if isinstance(rows, list) else list(rows)
        start = 0
        while start < len(batch):
            # While short writers keep arriving, smaller chunks keep each one's wait short.
            size = CONTENDED_CHUNK_ROWS if self._contended else CHUNK_ROWS
            added, waited_s = self._store._insert_chunk(
                self.run, batch[start : start + size], statement
            )
            inserted += added
            self._contended = waited_s > _CONTENDED_WAIT_S
            start += size
        return inserted

    def finish(self, names: Iterable[tuple[str, str, str]]) -> None:
        """Keep what was inserted and make its names known (the import's commit point)."""
        self._store._finish_import(self.run, names)
        self.finished = True


# Rows per transaction of a bulk import (one reader batch) and of a prune: about a tenth of a
# second of write lock each. Smaller import chunks cost throughput (each commit writes the
# index pages it touched to the WAL again): 2,000 rows import at 19k rows/s, 5,000 at 30k.
CHUNK_ROWS = 5_000
PRUNE_CHUNK_ROWS = 2_000
# An import chunk after one that had to wait for short writers (they keep arriving) is smaller.
CONTENDED_CHUNK_ROWS = 1_000
_CONTENDED_WAIT_S = 0.0005


def _decays(half_lives_s: tuple[float | None, float | None]) -> tuple[float, float]:
    """Decay rates per second for (ranking's, exploring's) half-lives; 0 for None."""
    ranking, exploring = half_lives_s
    return (
        math.log(2) / ranking if ranking else 0.0,
        math.log(2) / exploring if exploring else 0.0,
    )


# SQLite allows 500 arms in a compound SELECT by default; stay well inside.
_MAX_MERGED_PAIRS = 200


@dataclass
class _Totals:
    """Running sums of one model's window, across (workflow, stage) pairs."""

    calls: int = 0
    successes: int = 0
    cost_usd: float = 0.0
    plan_cost_usd: float = 0.0
    costs: int = 0
    latencies: int = 0
    weighted_calls: float = 0.0
    weighted_successes: float = 0.0
    explore_calls: float = 0.0
    explore_successes: float = 0.0
    quality_failures: int = 0
    outage_failures: int = 0
    outage_failures_counted: int = 0
    rate_limited: int = 0
    caller_errors: int = 0
    newest_outage_ts: float | None = None
    exact_latencies: list[float] = field(default_factory=list)
    buckets: dict[int, tuple[int, float]] = field(default_factory=dict)

    def note_outage(self, ts: float | None) -> None:
        if ts is not None and (self.newest_outage_ts is None or ts > self.newest_outage_ts):
            self.newest_outage_ts = ts

    def add_sums(self, sums: Sequence[Any]) -> None:
        """Add a window read's sums, in this order: calls, successes, quality failures,
        outage failures, counted outage failures, rate limited, caller errors, newest outage,
        cost, priced calls, timed calls, weighted calls, weighted successes, plan-covered cost,
        exploring's weighted calls, exploring's weighted successes.
        """
        self.calls += int(sums[0])
        self.successes += int(sums[1])
        self.quality_failures += int(sums[2])
        self.outage_failures += int(sums[3])
        self.outage_failures_counted += int(sums[4])
        self.rate_limited += int(sums[5])
        self.caller_errors += int(sums[6])
        self.note_outage(sums[7])
        self.cost_usd += float(sums[8])
        self.costs += int(sums[9])
        self.latencies += int(sums[10])
        self.weighted_calls += float(sums[11])
        self.weighted_successes += float(sums[12])
        self.plan_cost_usd += float(sums[13])
        self.explore_calls += float(sums[14])
        self.explore_successes += float(sums[15])

    def add_bucket(self, bucket: int, calls: int, latency_ms: float) -> None:
        """Add ``calls`` latencies totalling ``latency_ms`` to histogram bucket ``bucket``."""
        found = self.buckets.get(bucket, (0, 0.0))
        self.buckets[bucket] = (found[0] + calls, found[1] + latency_ms)


@dataclass(frozen=True)
class _Recent:
    """A model's newest counted calls, as ``TelemetryStore._recent_of`` reads them."""

    calls: int
    failures: int
    outage_run: int
    provider: str | None
    tier: str | None
    newest_ts: float | None = None

    @classmethod
    def of(cls, rows: list[tuple[Any, ...]], recent_n: int) -> _Recent:
        """From the newest ``max(recent_n, 1)`` counted rows (ts, success, provider, tier,
        failure class), newest first."""
        taken = rows[: max(recent_n, 0)]
        outage_run = next(
            (i for i, r in enumerate(taken) if r[4] != FailureClass.OUTAGE), len(taken)
        )
        return cls(
            calls=len(taken),
            failures=sum(1 for r in taken if not r[1]),
            outage_run=outage_run,
            provider=next((r[2] for r in rows if r[2] is not None), None),
            tier=next((r[3] for r in rows if r[3] is not None), None),
            newest_ts=float(rows[0][0]) if rows else None,
        )


# A model's latency histogram over hours [first, last): whole days from the daily histogram,
# the hours before the first whole day and after the last from the hourly one.
_HISTOGRAM = (
    "SELECT bucket, SUM(calls), TOTAL(latency_ms) FROM ("
    "SELECT bucket, calls, latency_ms FROM rollup_latency_day WHERE workflow = ?1 "
    "AND stage = ?2 AND model = ?3 AND day >= ?4 AND day < ?5 UNION ALL "
    "SELECT bucket, calls, latency_ms FROM rollup_latency WHERE workflow = ?1 AND stage = ?2 "
    "AND model = ?3 AND hour >= ?6 AND hour < ?7 UNION ALL "
    "SELECT bucket, calls, latency_ms FROM rollup_latency WHERE workflow = ?1 AND stage = ?2 "
    "AND model = ?3 AND hour >= ?8 AND hour < ?9) GROUP BY bucket"
)


def _histogram_ranges(first: int, last: int) -> tuple[int, int, int, int, int, int]:
    """(days, hours before them, hours after them) of hours [first, last), for ``_HISTOGRAM``."""
    day_start, day_end = rollups.whole_days(first, last)
    if day_start == day_end:
        return (day_start, day_end, first, last, last, last)
    return (day_start, day_end, first, day_start, day_end, last)


def _local_day_sql(day_offsets: Sequence[tuple[float, int]]) -> str:
    """The local day (days since the epoch) in which ``hour`` begins, as SQL."""
    arms = " ".join(
        f"WHEN hour < {int(start)} THEN {int(offset)}"
        for (start, _), (_, offset) in zip(day_offsets[1:], day_offsets, strict=False)
    )
    last = int(day_offsets[-1][1]) if day_offsets else 0
    shift = f"CASE {arms} ELSE {last} END" if arms else str(last)
    # Integer division: both sides are whole numbers (hours after 1970 are positive).
    return f"((hour + {shift}) / 86400)"


def _write_error(path: Path, exc: sqlite3.Error) -> OperationError:
    if "locked" in str(exc) or "busy" in str(exc):
        return OperationError(
            f"{path}: the telemetry store stayed locked for {db.BUSY_TIMEOUT_MS // 1000} s",
            hint="another attune process holds it; try again",
        )
    refused = db.write_failure(path, exc)
    if refused is not None:
        return refused
    return OperationError(f"{path}: cannot write the telemetry store ({exc})")


def _where(where: CallFilter) -> tuple[str, tuple[Any, ...]]:
    terms: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("workflow", where.workflow),
        ("stage", where.stage),
        ("model", where.model),
    ):
        if value is not None:
            terms.append(f"{column} = ?")
            params.append(value)
    if where.since_ts is not None:
        terms.append("ts >= ?")
        params.append(where.since_ts)
    if not terms:
        return " WHERE 1", ()
    return " WHERE " + " AND ".join(terms), tuple(params)


def _ensure_math_functions(conn: sqlite3.Connection) -> None:
    """Provide ``exp`` when this SQLite was built without its math functions."""
    try:
        conn.execute("SELECT exp(0)").fetchone()
    except sqlite3.OperationalError:
        conn.create_function("exp", 1, math.exp, deterministic=True)
