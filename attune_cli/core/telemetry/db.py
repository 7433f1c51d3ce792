"""The SQLite file behind telemetry and the circuit breakers.

One file (``telemetry.db``) in WAL mode with a busy timeout, so many attune processes read and
write at once. The schema is versioned with ``PRAGMA user_version``: each entry of
``MIGRATIONS`` moves the file up one version inside one transaction. A file whose version is
newer than this code knows is refused untouched.

Connections are in autocommit mode (``isolation_level=None``); callers open transactions
explicitly (``BEGIN IMMEDIATE`` for a read-decide-write).

No writer starves. SQLite's busy handler is not a queue: a writer waiting for the lock sleeps
(up to 100 ms at a time) and retries, and a bulk writer that commits and begins again at once
takes the lock back before any waiting writer wakes. So every short writer
(``write_transaction``) holds a shared ``flock`` on ``telemetry.db-writers`` while it writes,
and a bulk writer holds it exclusively for each chunk (``bulk_turn``): a short writer blocks in
the kernel, which wakes it the moment the chunk commits, and the next chunk waits until the
writers that queued meanwhile are through. (Short writers share it: queueing them one by one
in the kernel too made ``record``'s p95 with 8 writers 17 ms instead of 4 ms.)
A door (``telemetry.db-writers-gate``) that short writers pass on their way to the queue, and
that the bulk writer closes while it waits for its turn, keeps a stream of newcomers from
holding off the next chunk for ever. These two empty lock files stay beside the store (as does
``telemetry.db-maintenance``, the lock of imports, prunes and rollup builds).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

from attune_cli.core import hooks, interrupts
from attune_cli.core.errors import OperationError, StoreVersionError
from attune_cli.core.paths import ensure_private_dir
from attune_cli.core.telemetry import rollups

BUSY_TIMEOUT_MS = 10_000
# SQLite virtual-machine steps between two looks at Ctrl-C (a few microseconds of work).
PROGRESS_STEPS = 10_000
MEMORY = ":memory:"

_CALLS_SCHEMA = """
CREATE TABLE calls (
    id            INTEGER PRIMARY KEY,
    ts            REAL    NOT NULL,            -- epoch seconds, UTC
    workflow      TEXT    NOT NULL,
    stage         TEXT    NOT NULL,
    provider      TEXT,
    model         TEXT    NOT NULL,
    tier          TEXT,
    success       INTEGER NOT NULL,            -- 1 or 0
    error_kind    TEXT,
    status        INTEGER,                     -- HTTP status when a response arrived
    latency_ms    REAL,
    input_tokens  INTEGER,
    output_tokens INTEGER,
    cost_usd      REAL,
    attempt       INTEGER NOT NULL DEFAULT 1,
    source        TEXT    NOT NULL DEFAULT 'recorded',
    import_key    TEXT                         -- identity of the call: content hash or random
);
-- A call's identity (ts, import_key) makes imports idempotent. Led by ts, so a bulk import of
-- time-ordered history appends to this index instead of scattering writes, and so it also
-- serves every "by time" query (show, prune, export).
CREATE UNIQUE INDEX calls_identity ON calls(ts, import_key);
-- Covers the router's per-model figures: counts and sums read only this index, and a
-- latency percentile is the k-th entry of a (workflow, stage, model) range, with no sort.
CREATE INDEX calls_performance
    ON calls(workflow, stage, model, latency_ms, ts, success, cost_usd);
-- By workflow, stage and time (and, merged across stages, by model and time): the newest
-- calls of a stage or of a model are ranges of this index walked backwards, never sorted.
CREATE INDEX calls_workflow_stage_ts ON calls(workflow, stage, ts, model, success);
-- Distinct names (kind: workflow, stage, model) for instant shell completion.
CREATE TABLE labels (
    kind  TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (kind, value)
) WITHOUT ROWID;
"""

_BREAKER_SCHEMA = """
-- One row per provider/model breaker (attune_cli.core.breaker), times in epoch seconds.
-- state is 'closed' or 'open', half-open is derived: open with open_until passed.
CREATE TABLE breakers (
    key                  TEXT PRIMARY KEY,     -- provider/model
    state                TEXT NOT NULL DEFAULT 'closed',
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    opened_at            REAL,                 -- latest (re-)open
    open_until           REAL,
    reopen_count         INTEGER NOT NULL DEFAULT 0,  -- re-opens since it last closed
    probe_lease_until    REAL,                 -- the half-open probe's lease
    probe_owner          TEXT,
    generation           INTEGER NOT NULL DEFAULT 0,  -- bumped on every transition
    updated_at           REAL
);
-- Counted outcomes (1 failure, 0 success) of closed breakers, pruned to one window per key.
CREATE TABLE breaker_events (
    key     TEXT    NOT NULL,
    ts      REAL    NOT NULL,
    failure INTEGER NOT NULL
);
CREATE INDEX breaker_events_key_ts ON breaker_events(key, ts, failure);
"""

# Version 2: the two router indexes also carry each row's status and error kind, from which a
# read derives the failure class (``attune_cli.core.failures.sql_failure_class``) without
# leaving the index. (A generated column would be neater, but SQLite does not read one from a
# covering index: every query would visit the table.)
_FAILURE_CLASS = """
DROP INDEX calls_performance;
CREATE INDEX calls_performance
    ON calls(workflow, stage, model, latency_ms, ts, success, cost_usd, status, error_kind);
DROP INDEX calls_workflow_stage_ts;
CREATE INDEX calls_workflow_stage_ts
    ON calls(workflow, stage, ts, model, success, status, error_kind);
"""

# Version 3: hourly rollups (``telemetry.rollups``) built from the existing rows; window
# figures read them, so the index led by latency goes, and the time index of a stage also
# carries latency and cost: the exact hours at a window's edges read that index alone.
#
# The rows already there are rolled up afterwards, in chunks (``backfill_rollups``): the
# migration itself only makes tables and indexes, and notes in ``rollup_backfill`` which ids
# are still to be added.
_ROLLUPS = (
    rollups.SCHEMA
    + """
CREATE TABLE rollup_backfill (
    next_id  INTEGER NOT NULL,   -- the rows with ids from first_id to next_id - 1 are left
    first_id INTEGER NOT NULL
);
INSERT INTO rollup_backfill SELECT COALESCE(MAX(id), 0) + 1, COALESCE(MIN(id), 1) FROM calls;
DROP INDEX calls_performance;
DROP INDEX calls_workflow_stage_ts;
CREATE INDEX calls_workflow_stage_ts
    ON calls(workflow, stage, ts, model, success, status, error_kind, latency_ms, cost_usd);
-- A model's newest calls in a stage (demotion): a short range walked backwards.
CREATE INDEX calls_model_ts
    ON calls(workflow, stage, model, ts, success, status, error_kind, provider, tier);
"""
)

# Version 4: the undo log of a bulk import that commits in chunks (``telemetry.BulkImport``):
# the id range each committed chunk added, kept until the import ends; an interrupted import's
# rows are deleted again by these ranges.
_IMPORT_CHUNKS = """
CREATE TABLE import_chunks (
    run      TEXT    NOT NULL,
    first_id INTEGER NOT NULL,
    last_id  INTEGER NOT NULL,
    PRIMARY KEY (run, first_id)
) WITHOUT ROWID;
"""

# Version 5: the latency histogram by day as well (``rollups.DAY_SCHEMA``), added up from the
# hourly one (rows not rolled up yet add themselves to both as the backfill reaches them).
_DAILY_LATENCY = (
    rollups.DAY_SCHEMA + "INSERT INTO rollup_latency_day " + rollups.daily_from_hourly_sql() + ";"
)

# Version 6: how each call was paid (``billing``: 'subscription' through Claude Code, 'api'
# per token, NULL unknown), and per rollup the cost a subscription plan covered, so reports
# show plan-covered and pay-per-token amounts apart. Older rows have no billing: nothing of
# theirs was plan-covered, so the new rollup column starts at 0 and stays exact.
_BILLING = """
ALTER TABLE calls ADD COLUMN billing TEXT;
ALTER TABLE rollups ADD COLUMN plan_cost_usd REAL NOT NULL DEFAULT 0;
"""

# Version 7: spend and budgets (``rollups.spend_schema``): the spend tables kept from the
# rollups by triggers, an index of the rollups led by the hour, and the budget reservations
# (``attune_cli.core.spend.budgets``) written in the transaction that checked the budget.
_SPEND = rollups.spend_schema() + rollups.sqlite_spend_triggers()

MIGRATIONS: tuple[str, ...] = (
    _CALLS_SCHEMA + _BREAKER_SCHEMA,
    _FAILURE_CLASS,
    _ROLLUPS,
    _IMPORT_CHUNKS,
    _DAILY_LATENCY,
    _BILLING,
    _SPEND,
)
SCHEMA_VERSION = len(MIGRATIONS)


WRITERS_SUFFIX = "-writers"
GATE_SUFFIX = "-gate"


class Connection(sqlite3.Connection):
    """A store connection that knows its file's writers lock (None: in memory, or read-only).

    Attributes:
        writers_lock: ``telemetry.db-writers``, the lock short writers share while they wait.
        read_only: opened read-only (a read-only file or folder): never written.
    """

    writers_lock: Path | None = None
    read_only: bool = False
    bulk_holding: bool = False
    _lock_fds: tuple[int, int] | None = None


def connect(path: Path, *, create: bool = True, read_only: bool = False) -> sqlite3.Connection:
    """Open the store at ``path``, creating and migrating it as needed.

    The file is created with mode 0600 in a 0700 folder before SQLite touches it. When the
    file or its folder cannot be written (a read-only file system, a read-only file) and
    ``read_only`` allows it, the store is opened read-only instead of failing: reads work,
    and a write fails saying the folder is read-only.

    Args:
        path: the database file, or ``Path(MEMORY)`` for an empty store held in memory.
        create: when False, a missing file raises ``FileNotFoundError`` instead of being made
            (read-only callers such as shell completion must not create files).
        read_only: a reader: fall back to a read-only connection when the file cannot be
            written.

    Raises:
        StoreVersionError: the file's schema is newer than this attune.
        OperationError: the file is not a SQLite database or cannot be opened.
        FileNotFoundError: ``create`` is False and the file does not exist.
    """
    # ":memory:" is an empty store that lives as long as the connection (no file at all).
    if str(path) != MEMORY:
        _open_no_follow(path, create=create)
    try:
        return _connect(path)
    except OperationError as exc:
        if not (read_only and str(path) != MEMORY and not writable(path)):
            raise
        try:
            return _connect_read_only(path)
        except sqlite3.DatabaseError:
            raise exc from None


def writable(path: Path) -> bool:
    """Whether ``path`` and its folder can be written (False on a read-only file system)."""
    return read_only_folder(path) is None


def read_only_reason(path: Path) -> str:
    """Why ``path`` cannot be written: the file system, the folder or the file is read-only."""
    return read_only_folder(path) or f"{path} is read-only"


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, factory=Connection
        )
        if str(path) != MEMORY:
            conn.writers_lock = path.with_name(path.name + WRITERS_SUFFIX)
        # Ctrl-C can stop even a query that runs for ever (see ``attune_cli.core.interrupts``).
        conn.set_progress_handler(interrupts.requested, PROGRESS_STEPS)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.create_function("attune_bucket", 1, rollups.bucket_of, deterministic=True)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            conn.close()
            raise _newer(path, version)
        _enable_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        if version < SCHEMA_VERSION:
            _migrate(conn)
        if backfill_pending(conn):
            backfill_rollups(conn, path)
    except sqlite3.DatabaseError as exc:
        refused = write_failure(path, exc)
        if refused is not None:
            raise refused from None
        read_only = read_only_folder(path) if str(path) != MEMORY else None
        if read_only is not None:
            # A permissions problem, not a damaged file: moving the store aside would not help.
            raise OperationError(
                f"cannot open the telemetry store {path}: {read_only}",
                hint="make that folder writable, or point ATTUNE_HOME at a writable folder",
            ) from None
        raise OperationError(
            f"{path}: cannot open the telemetry store ({exc})",
            hint=f"move {path} aside to start a new one",
        ) from None
    return conn


def read_only_folder(path: Path) -> str | None:
    """Why SQLite cannot write beside ``path`` (its folder or the file is read-only), or None.

    SQLite needs to write the store and its ``-wal`` and ``-shm`` files next to it, even to
    read a store in WAL mode.
    """
    folder = path.parent
    with contextlib.suppress(OSError):
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"its folder {folder} is on a read-only file system"
    if not os.access(folder, os.W_OK):
        return f"its folder {folder} is read-only for you"
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is read-only for you"
    return None


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection: ``mode=ro`` when SQLite can use the WAL files, else immutable.

    Raises:
        sqlite3.DatabaseError: the file cannot be read either.
        StoreVersionError: the file's schema is newer than this attune.
    """
    from urllib.parse import quote

    last: sqlite3.DatabaseError | None = None
    for flags in ("mode=ro", "immutable=1"):
        uri = f"file:{quote(str(path.resolve()))}?{flags}"
        try:
            conn = sqlite3.connect(
                uri,
                uri=True,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                factory=Connection,
            )
            conn.read_only = True
            conn.set_progress_handler(interrupts.requested, PROGRESS_STEPS)
            conn.create_function("attune_bucket", 1, rollups.bucket_of, deterministic=True)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            last = exc
            continue
        if version > SCHEMA_VERSION:
            conn.close()
            raise _newer(path, version)
        if version < _OLDEST_READABLE:
            conn.close()
            raise OperationError(
                f"cannot upgrade {path}: {read_only_reason(path)}",
                hint="run attune once where it can write the file",
            )
        return conn
    assert last is not None
    raise last


# A read-only store of an older schema can be read without migrating from this version on
# (window reads need the daily latency histogram of version 5).
_OLDEST_READABLE = 5


def _newer(path: Path, version: int) -> StoreVersionError:
    return StoreVersionError(
        f"{path} was written by a newer attune (schema {version}, this attune knows "
        f"{SCHEMA_VERSION}); it was left untouched",
        hint="upgrade attune (pip install -U attune-cli)",
    )


def write_failure(path: Path, exc: sqlite3.Error) -> OperationError | None:
    """``cannot write FILE: No space left on device`` for a write SQLite could not make.

    Returns None when ``exc`` is not about the disk (the caller re-raises it).
    """
    text = str(exc).lower()
    if "disk is full" in text:
        reason = os.strerror(errno.ENOSPC)
    elif "readonly" in text or "read-only" in text:
        reason = os.strerror(errno.EACCES)
        with contextlib.suppress(OSError):
            if os.statvfs(path.parent).f_flag & os.ST_RDONLY:
                reason = os.strerror(errno.EROFS)
        if not writable(path):
            reason = read_only_reason(path)
    elif "disk i/o error" in text:
        reason = os.strerror(errno.EIO)
    else:
        return None
    return OperationError(f"cannot write {path}: {reason}")


def _open_no_follow(path: Path, *, create: bool) -> None:
    """Check ``path`` is a regular file, not a link (creating it 0600 in a 0700 folder).

    SQLite follows links; a link planted where the store lives must not make attune write
    someone else's file.
    """
    from attune_cli.core.files import symlink_refused, write_error

    if path.is_symlink():
        raise symlink_refused(path)
    if path.exists():
        return
    if not create:
        raise FileNotFoundError(path)
    ensure_private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise symlink_refused(path) from None
        raise write_error(path, exc) from None


def _enable_wal(conn: sqlite3.Connection) -> None:
    # Switching a new file to WAL needs an exclusive lock, and SQLite reports "database is
    # locked" at once instead of waiting for the busy timeout when several processes open the
    # same fresh file together; so wait here. Once the file is in WAL mode, reading the mode
    # needs no lock at all.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay_s = 0.001
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 0.05)


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have migrated while we waited for the write lock.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number in range(version, SCHEMA_VERSION):
            for statement in _statements(MIGRATIONS[number]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")
        if backfill_pending(conn):
            marker = conn.execute("SELECT next_id, first_id FROM rollup_backfill").fetchone()
            if marker is None or marker[0] <= marker[1]:
                conn.execute("DROP TABLE rollup_backfill")  # no rows: nothing to build
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> Iterator[str]:
    """The statements of ``script`` (a trigger's body holds ``;`` too)."""
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n\t;"):
                yield buffer
            buffer = ""


# Rows rolled up per transaction when an existing store gets its rollups (schema 3).
BACKFILL_ROWS = 10_000
MAINTENANCE_SUFFIX = "-maintenance"


def backfill_pending(conn: sqlite3.Connection) -> bool:
    """Whether rows written before schema 3 are still to be added to the rollups."""
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rollup_backfill'"
        ).fetchone()
        is not None
    )


def backfill_rollups(conn: sqlite3.Connection, path: Path) -> None:
    """Add the rows from before schema 3 to the rollups, newest first, in short transactions.

    Each chunk of ``BACKFILL_ROWS`` ids is added to the rollups and crossed off
    ``rollup_backfill`` in one transaction (so a killed backfill goes on where it stopped and
    never adds a row twice), and waiting writers get in between chunks. Calls recorded
    meanwhile have higher ids and add themselves, as always. Newest first: the windows
    routing reads are whole first. Done by one process at a time (the maintenance lock);
    others go on with the rollups as far as they are built.
    """
    with maintenance_lock(path, wait=False) as held:
        if held:
            backfill_rollups_locked(conn)


def backfill_rollups_locked(conn: sqlite3.Connection) -> None:
    """``backfill_rollups`` by a caller that holds the maintenance lock already."""
    if backfill_pending(conn):
        found = conn.execute("SELECT next_id, first_id FROM rollup_backfill").fetchone()
        top, total = (found[0], found[0] - found[1]) if found else (0, 0)
        while True:
            with bulk_turn(conn), write_transaction(conn):
                marker = conn.execute("SELECT next_id, first_id FROM rollup_backfill").fetchone()
                if marker is None or marker[0] <= marker[1]:
                    conn.execute("DROP TABLE rollup_backfill")
                    done = True
                else:
                    next_id, first_id = marker
                    start = max(next_id - BACKFILL_ROWS, first_id)
                    for statement in rollups.upsert_sql(
                        "(SELECT * FROM calls WHERE id >= :start AND id < :end)"
                    ):
                        conn.execute(statement, {"start": start, "end": next_id})
                    conn.execute("UPDATE rollup_backfill SET next_id = ?", (start,))
                    done = False
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            if done:
                return
            if hooks.backfill_progress is not None:
                hooks.backfill_progress(top - start, total)


@contextlib.contextmanager
def maintenance_lock(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """One import, prune or rollup backfill at a time on ``path``.

    Yields:
        Whether the lock is held (always True when ``wait``; False when another process
        holds it, or there is no file to lock: a store in memory).
    """
    if str(path) == MEMORY:
        yield True
        return
    lock = path.with_name(path.name + MAINTENANCE_SUFFIX)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back when the block raises.

    The writers lock is shared while this waits and writes, so a bulk writer lets it in
    between two chunks (``bulk_turn``).

    Raises:
        sqlite3.OperationalError: the write lock stayed taken past the busy timeout.
    """
    with _writer_turn(conn):
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise


@contextlib.contextmanager
def _writer_turn(conn: sqlite3.Connection) -> Iterator[None]:
    """Pass the gate, then hold the writers lock shared (nothing when there are no locks)."""
    fds = _lock_fds(conn)
    if fds is None or getattr(conn, "bulk_holding", False):
        yield
        return
    gate, writers = fds
    held: set[Path] = _held.__dict__.setdefault("paths", set())
    path = getattr(conn, "writers_lock", None)
    if path is None or path in held:
        yield  # this thread already writes to this file through another connection
        return
    try:
        # Through the door (closed while a bulk writer waits for its turn), then the queue.
        fcntl.flock(gate, fcntl.LOCK_SH)
        fcntl.flock(gate, fcntl.LOCK_UN)
        fcntl.flock(writers, fcntl.LOCK_SH)
    except OSError:
        yield
        return
    held.add(path)
    try:
        yield
    finally:
        held.discard(path)
        with contextlib.suppress(OSError):
            fcntl.flock(writers, fcntl.LOCK_UN)


# The writers locks this thread holds (a nested write through a second connection to the
# same file must not wait for itself).
_held = threading.local()


def _lock_fds(conn: sqlite3.Connection) -> tuple[int, int] | None:
    """(gate, writers) lock descriptors of ``conn``'s file, opened on first use."""
    if not isinstance(conn, Connection) or conn.writers_lock is None or conn.read_only:
        return None
    if conn._lock_fds is None:
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        gate_path = conn.writers_lock.with_name(conn.writers_lock.name + GATE_SUFFIX)
        try:
            gate = os.open(gate_path, flags, 0o600)
        except OSError:
            conn.writers_lock = None  # a read-only folder: nobody writes here anyway
            return None
        try:
            writers = os.open(conn.writers_lock, flags, 0o600)
        except OSError:
            os.close(gate)
            conn.writers_lock = None
            return None
        conn._lock_fds = (gate, writers)
        weakref.finalize(conn, _close_fds, conn._lock_fds)
    return conn._lock_fds


def _close_fds(fds: tuple[int, ...]) -> None:
    for fd in fds:
        _close_fd(fd)


def _close_fd(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


@contextlib.contextmanager
def bulk_turn(conn: sqlite3.Connection, *, max_wait_s: float = 5.0) -> Iterator[float]:
    """One chunk of a bulk write, taken when the short writers already waiting are through.

    Closes the gate to newcomers, waits until the writers lock can be held exclusively (the
    writers that were waiting have committed), opens the gate again and holds the writers lock
    for the chunk: short writers arriving meanwhile block on it in the kernel, which wakes
    them the moment the chunk commits, and the next chunk waits for them. So each short
    writer waits at most about one chunk. A writer stuck for longer than ``max_wait_s`` (a
    stopped process) is not waited for: the chunk goes ahead and SQLite's busy timeout
    queues the two as it would without these locks.

    Yields:
        How long this waited for its turn, in seconds.
    """
    fds = _lock_fds(conn)
    if fds is None or not isinstance(conn, Connection):
        yield 0.0
        return
    gate, writers = fds
    started = time.monotonic()
    gated = _flock_within(gate, started + max_wait_s)
    held = _flock_within(writers, started + max_wait_s)
    if gated:
        fcntl.flock(gate, fcntl.LOCK_UN)
    conn.bulk_holding = True
    try:
        yield time.monotonic() - started
    finally:
        conn.bulk_holding = False
        if held:
            with contextlib.suppress(OSError):
                fcntl.flock(writers, fcntl.LOCK_UN)


def _flock_within(fd: int, deadline: float) -> bool:
    """Take ``fd`` exclusively, polling until ``deadline`` (monotonic); whether it was taken."""
    delay_s = 0.0002
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 0.002)
        except OSError:
            return False


def raise_if_interrupted() -> None:
    """Turn a query error that Ctrl-C caused into the ``KeyboardInterrupt`` it stands for."""
    if interrupts.requested():
        raise KeyboardInterrupt


@contextlib.contextmanager
def interruptible(*conns: sqlite3.Connection) -> Iterator[None]:
    """Let Ctrl-C stop any query of ``conns``, however long, as ``KeyboardInterrupt``.

    Connections from ``connect`` already stop on Ctrl-C when the process runs the attune
    CLI (which installs ``interrupts.on_sigint``); this also covers any other connection (an
    imported file) and a caller that did not install the handler. Only the main thread
    receives signals; elsewhere this changes nothing.

    Raises:
        KeyboardInterrupt: Ctrl-C arrived while inside (a query it aborted included).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    installed = previous is not interrupts.on_sigint
    if installed:
        interrupts.reset()
        signal.signal(signal.SIGINT, interrupts.on_sigint)
    for conn in conns:
        conn.set_progress_handler(interrupts.requested, PROGRESS_STEPS)
    try:
        yield
    except sqlite3.OperationalError:
        raise_if_interrupted()
        raise
    finally:
        if installed:
            signal.signal(signal.SIGINT, previous)
