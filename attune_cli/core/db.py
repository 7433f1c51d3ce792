"""The SQLite file behind telemetry and the circuit breakers.

One file (``telemetry.db``) in WAL mode with a busy timeout, so many attune processes read and
write at once. The schema is versioned with ``PRAGMA user_version``: each entry of
``MIGRATIONS`` moves the file up one version inside one transaction. A file whose version is
newer than this code knows is refused untouched.

Connections are in autocommit mode (``isolation_level=None``); callers open transactions
explicitly (``BEGIN IMMEDIATE`` for a read-decide-write).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from attune_cli.core import interrupts, rollups
from attune_cli.core.errors import OperationError, StoreVersionError
from attune_cli.core.paths import ensure_private_dir

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

# Version 3: hourly rollups (``attune_cli.core.rollups``) built from the existing rows; window
# figures read them, so the index led by latency goes, and the time index of a stage also
# carries latency and cost: the exact hours at a window's edges read that index alone.
_ROLLUPS = (
    rollups.SCHEMA
    + f"""
INSERT INTO rollups ({", ".join(rollups.ROLLUP_COLUMNS)}) {rollups.aggregate_sql("calls")[0]};
INSERT INTO rollup_latency (workflow, stage, model, hour, provider, bucket, calls, latency_ms)
    {rollups.aggregate_sql("calls")[1]};
DROP INDEX calls_performance;
DROP INDEX calls_workflow_stage_ts;
CREATE INDEX calls_workflow_stage_ts
    ON calls(workflow, stage, ts, model, success, status, error_kind, latency_ms, cost_usd);
-- A model's newest calls in a stage (demotion): a short range walked backwards.
CREATE INDEX calls_model_ts
    ON calls(workflow, stage, model, ts, success, status, error_kind, provider, tier);
"""
)

MIGRATIONS: tuple[str, ...] = (_CALLS_SCHEMA + _BREAKER_SCHEMA, _FAILURE_CLASS, _ROLLUPS)
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path, *, create: bool = True) -> sqlite3.Connection:
    """Open the store at ``path``, creating and migrating it as needed.

    The file is created with mode 0600 in a 0700 folder before SQLite touches it.

    Args:
        path: the database file, or ``Path(MEMORY)`` for an empty store held in memory.
        create: when False, a missing file raises ``FileNotFoundError`` instead of being made
            (read-only callers such as shell completion must not create files).

    Raises:
        StoreVersionError: the file's schema is newer than this attune.
        OperationError: the file is not a SQLite database or cannot be opened.
        FileNotFoundError: ``create`` is False and the file does not exist.
    """
    # ":memory:" is an empty store that lives as long as the connection (no file at all).
    if str(path) != MEMORY:
        _open_no_follow(path, create=create)
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        # Ctrl-C can stop even a query that runs for ever (see ``attune_cli.core.interrupts``).
        conn.set_progress_handler(interrupts.requested, PROGRESS_STEPS)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.create_function("attune_bucket", 1, rollups.bucket_of, deterministic=True)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            conn.close()
            raise StoreVersionError(
                f"{path} was written by a newer attune (schema {version}, this attune knows "
                f"{SCHEMA_VERSION}); it was left untouched",
                hint="upgrade attune (pip install -U attune-cli)",
            )
        _enable_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        if version < SCHEMA_VERSION:
            _migrate(conn)
    except sqlite3.DatabaseError as exc:
        refused = write_failure(path, exc)
        if refused is not None:
            raise refused from None
        read_only = read_only_folder(path)
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
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back when the block raises.

    Raises:
        sqlite3.OperationalError: the write lock stayed taken past the busy timeout.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


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
