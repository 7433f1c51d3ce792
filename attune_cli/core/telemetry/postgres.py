"""The team store: calls, rollups and breakers in PostgreSQL (``[store] url``/``ATTUNE_STORE_URL``).

psycopg 3 is an optional extra (``pip install 'attune-cli[postgres]'``) imported only here, and
this module is imported only when a ``postgresql://`` URL is configured.

* The schema mirrors the SQLite store (``telemetry.db``): ``calls`` with the same columns
  and identity ``(ts, import_key)``, ``labels``, the hourly ``rollups``/``rollup_latency`` and
  the ``breakers``/``breaker_events`` tables. Text columns use the ``"C"`` collation so names
  sort and compare by code point, as in SQLite.
* Versioned migrations (``MIGRATIONS``) are applied on first use inside one transaction that
  holds an advisory lock, so one process migrates and the others wait; a database whose schema
  is newer than this attune is refused (``StoreVersionError``, exit 2) and left untouched.
* Every write adds its rows and their rollups in one statement (``INSERT … ON CONFLICT DO
  NOTHING RETURNING`` feeding the rollup upserts), so rollups count exactly the rows that were
  new, whatever other machines write at the same time. Bulk writes go through ``COPY`` into a
  temporary table first.
* Reads reuse the SQLite store's planning (``TelemetryStore``): the few SQL spellings that
  differ are translated by ``_dialect``.

Passwords come from the URL or libpq's own places (``PGPASSWORD``, ``~/.pgpass``); no message
shows one (``attune_cli.core.telemetry.store.mask_url``).
"""

from __future__ import annotations

import functools
import math
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from attune_cli.core.breaker.sqlite import _ROW_COLUMNS, CircuitBreaker, _Row
from attune_cli.core.breaker.state import BreakerSettings
from attune_cli.core.clock import now as clock_now
from attune_cli.core.errors import OperationError, StoreVersionError
from attune_cli.core.failures import FailureClass, sql_failure_class
from attune_cli.core.telemetry import rollups
from attune_cli.core.telemetry.records import COLUMNS, LABEL_KINDS, Row
from attune_cli.core.telemetry.sqlite import FAILURE_CLASS_SQL, TelemetryStore
from attune_cli.core.telemetry.store import mask_url

CONNECT_TIMEOUT_S = 3
_TEXT = 'TEXT COLLATE "C"'

_V1 = f"""
CREATE TABLE calls (
    id            BIGSERIAL PRIMARY KEY,
    ts            DOUBLE PRECISION NOT NULL,
    workflow      {_TEXT} NOT NULL,
    stage         {_TEXT} NOT NULL,
    provider      {_TEXT},
    model         {_TEXT} NOT NULL,
    tier          {_TEXT},
    success       INTEGER NOT NULL,
    error_kind    {_TEXT},
    status        INTEGER,
    latency_ms    DOUBLE PRECISION,
    input_tokens  BIGINT,
    output_tokens BIGINT,
    cost_usd      DOUBLE PRECISION,
    attempt       INTEGER NOT NULL DEFAULT 1,
    source        {_TEXT} NOT NULL DEFAULT 'recorded',
    import_key    {_TEXT} NOT NULL
);
CREATE UNIQUE INDEX calls_identity ON calls(ts, import_key);
CREATE INDEX calls_workflow_stage_ts
    ON calls(workflow, stage, ts, model, success, status, error_kind, latency_ms, cost_usd);
CREATE INDEX calls_model_ts
    ON calls(workflow, stage, model, ts, success, status, error_kind, provider, tier);
CREATE TABLE labels (
    kind  {_TEXT} NOT NULL,
    value {_TEXT} NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE TABLE rollups (
    workflow         {_TEXT} NOT NULL,
    stage            {_TEXT} NOT NULL,
    model            {_TEXT} NOT NULL,
    hour             BIGINT  NOT NULL,
    provider         {_TEXT} NOT NULL,
    calls            BIGINT  NOT NULL,
    successes        BIGINT  NOT NULL,
    quality_failures BIGINT  NOT NULL,
    outage_failures  BIGINT  NOT NULL,
    rate_limited     BIGINT  NOT NULL,
    caller_errors    BIGINT  NOT NULL,
    cancelled        BIGINT  NOT NULL,
    cost_usd         DOUBLE PRECISION NOT NULL,
    costs            BIGINT  NOT NULL,
    input_tokens     BIGINT  NOT NULL,
    output_tokens    BIGINT  NOT NULL,
    latencies        BIGINT  NOT NULL,
    newest_outage_ts DOUBLE PRECISION,
    PRIMARY KEY (workflow, stage, model, hour, provider)
);
CREATE TABLE rollup_latency (
    workflow   {_TEXT} NOT NULL,
    stage      {_TEXT} NOT NULL,
    model      {_TEXT} NOT NULL,
    hour       BIGINT  NOT NULL,
    provider   {_TEXT} NOT NULL,
    bucket     INTEGER NOT NULL,
    calls      BIGINT  NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (workflow, stage, model, hour, provider, bucket)
);
CREATE FUNCTION attune_bucket(v DOUBLE PRECISION) RETURNS INTEGER
    IMMUTABLE LANGUAGE sql AS $$
    SELECT CASE WHEN v IS NULL THEN NULL WHEN v <= 0 THEN {rollups.ZERO_BUCKET}
    ELSE GREATEST(CAST(floor(ln(v) / ln({rollups.BUCKET_RATIO})) AS INTEGER),
                  {rollups.ZERO_BUCKET + 1}) END $$;
CREATE TABLE breakers (
    key                  {_TEXT} PRIMARY KEY,
    state                TEXT NOT NULL DEFAULT 'closed',
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    opened_at            DOUBLE PRECISION,
    open_until           DOUBLE PRECISION,
    reopen_count         INTEGER NOT NULL DEFAULT 0,
    probe_lease_until    DOUBLE PRECISION,
    probe_owner          TEXT,
    generation           BIGINT NOT NULL DEFAULT 0,
    updated_at           DOUBLE PRECISION
);
CREATE TABLE breaker_events (
    key     {_TEXT} NOT NULL,
    ts      DOUBLE PRECISION NOT NULL,
    failure INTEGER NOT NULL
);
CREATE INDEX breaker_events_key_ts ON breaker_events(key, ts, failure);
"""

# Version 2: spend tables kept by a trigger, and budget reservations (as SQLite's schema 5).
_V2 = (
    rollups.spend_schema(text=_TEXT, integer="BIGINT", real="DOUBLE PRECISION")
    + rollups.postgres_spend_triggers()
)

MIGRATIONS: tuple[str, ...] = (_V1, _V2)
SCHEMA_VERSION = len(MIGRATIONS)

# The failure class with an INTEGER success column (PostgreSQL has no integer truth).
_PG_FAILURE_CLASS = sql_failure_class(success="success <> 0")
_REWRITES: tuple[tuple[str, str], ...] = (
    (FAILURE_CLASS_SQL, _PG_FAILURE_CLASS),
    ("(success OR (", "(success <> 0 OR ("),
)
_NAMED = re.compile(r"(?<![:\w]):([a-z_]+)")
_WHERE_ANY = re.compile(r" WHERE 1(?=\s|$)")


@functools.cache
def _dialect(sql: str) -> str:
    """SQLite SQL of the shared read paths → PostgreSQL (placeholders, integer truth)."""
    for sqlite_text, pg_text in _REWRITES:
        sql = sql.replace(sqlite_text, pg_text)
    sql = _WHERE_ANY.sub(" WHERE true", sql)
    sql = sql.replace("%", "%%").replace("?", "%s")
    return _NAMED.sub(r"%(\1)s", sql)


def _hour(ts: str = "ts") -> str:
    return f"(CAST(floor({ts} / {rollups.HOUR_S}) AS BIGINT) * {rollups.HOUR_S})"


def _aggregate(source: str) -> tuple[str, str]:
    """SELECTs rolling up ``source``'s rows: ``rollups.ROLLUP_COLUMNS`` and the histogram.

    Rows are first grouped by key and (success, status, error kind), so the failure class,
    a string expression, is worked out once per group instead of once per row.
    """
    fc = _PG_FAILURE_CLASS
    key = f"workflow, stage, model, {_hour()} AS hour, COALESCE(provider, '') AS provider"
    grouped = (
        f"SELECT {key}, success, status, error_kind, COUNT(*) AS n, SUM(cost_usd) AS cost, "
        "COUNT(cost_usd) AS costs, SUM(input_tokens) AS tokens_in, "
        "SUM(output_tokens) AS tokens_out, COUNT(latency_ms) AS timed, MAX(ts) AS newest "
        f"FROM {source} AS s GROUP BY 1, 2, 3, 4, 5, 6, 7, 8"
    )

    def failed(kind: FailureClass) -> str:
        return f"CAST(COALESCE(SUM(n) FILTER (WHERE fc = '{kind}'), 0) AS BIGINT)"

    aggregate = (
        "SELECT workflow, stage, model, hour, provider, CAST(SUM(n) AS BIGINT), "
        "CAST(SUM(success * n) AS BIGINT), "
        + ", ".join(failed(kind) for kind in rollups.FAILURE_COLUMNS)
        + ", COALESCE(SUM(cost), 0), CAST(SUM(costs) AS BIGINT), "
        "CAST(COALESCE(SUM(tokens_in), 0) AS BIGINT), "
        "CAST(COALESCE(SUM(tokens_out), 0) AS BIGINT), CAST(SUM(timed) AS BIGINT), "
        f"MAX(newest) FILTER (WHERE fc = '{FailureClass.OUTAGE}') "
        f"FROM (SELECT *, ({fc}) AS fc FROM ({grouped}) AS g) AS r GROUP BY 1, 2, 3, 4, 5"
    )
    histogram = (
        f"SELECT {key}, attune_bucket(latency_ms) AS bucket, COUNT(*), SUM(latency_ms) "
        f"FROM {source} AS r WHERE latency_ms IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6"
    )
    return aggregate, histogram


_COUNTS = rollups.ROLLUP_COLUMNS[5:-1]
_KEY = "workflow, stage, model, hour, provider"


def _upserts(source: str) -> tuple[str, str]:
    """(rollups, histogram) upserts adding ``source``'s rows.

    Every writer upserts all its ``rollups`` rows before any ``rollup_latency`` row, and a
    ``record`` touches one of each, so a record never deadlocks with an import; two imports
    at once may (PostgreSQL then aborts one, whose transaction leaves nothing behind).
    """
    aggregate, histogram = _aggregate(source)
    added = ", ".join(f"{c} = rollups.{c} + excluded.{c}" for c in _COUNTS)
    return (
        f"INSERT INTO rollups ({', '.join(rollups.ROLLUP_COLUMNS)}) {aggregate} "
        f"ON CONFLICT ({_KEY}) DO UPDATE SET {added}, newest_outage_ts = "
        "GREATEST(rollups.newest_outage_ts, excluded.newest_outage_ts)",
        f"INSERT INTO rollup_latency ({_KEY}, bucket, calls, latency_ms) {histogram} "
        f"ON CONFLICT ({_KEY}, bucket) DO UPDATE SET calls = rollup_latency.calls + "
        "excluded.calls, latency_ms = rollup_latency.latency_ms + excluded.latency_ms",
    )


def _insert_with_rollups(values: str) -> str:
    """One statement: insert ``values`` (a SELECT/VALUES in ``COLUMNS`` order), roll up the new.

    Returns the number of new rows as its single result.
    """
    rollup_upsert, latency_upsert = _upserts("new")
    return (
        f"WITH new AS (INSERT INTO calls ({', '.join(COLUMNS)}) {values} "
        f"ON CONFLICT (ts, import_key) DO NOTHING RETURNING {', '.join(COLUMNS)}), "
        f"r AS ({rollup_upsert} RETURNING 1), l AS ({latency_upsert} RETURNING 1) "
        "SELECT COUNT(*) FROM new"
    )


_INSERT_ONE = (
    _insert_with_rollups("VALUES (" + ", ".join(["@P"] * len(COLUMNS)) + ")")
    .replace("%", "%%")
    .replace("@P", "%s")
)
_INSERT_STAGED = _insert_with_rollups(f"SELECT {', '.join(COLUMNS)} FROM attune_staging")
_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS attune_staging "
    "(LIKE calls INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)


def _driver() -> Any:
    try:
        import psycopg
    except ImportError:
        raise OperationError(
            "a postgresql:// store needs psycopg, which is not installed",
            hint="pip install 'attune-cli[postgres]'",
        ) from None
    return psycopg


def unreachable_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean "the server cannot be reached or lost the connection"."""
    psycopg = _driver()
    return (psycopg.OperationalError, psycopg.InterfaceError, OSError)


class StoreUnreachableError(OperationError):
    """The PostgreSQL server could not be reached (its calls go to the local spool)."""


def connect(url: str, *, migrate: bool = True) -> Any:
    """An autocommit connection to ``url``, migrated to this attune's schema.

    Raises:
        StoreUnreachableError: the server cannot be reached (message masked).
        StoreVersionError: the database's schema is newer than this attune (exit 2).
        OperationError: psycopg is missing.
    """
    psycopg = _driver()
    options: dict[str, Any] = {"autocommit": True}
    if "connect_timeout" not in url:
        options["connect_timeout"] = CONNECT_TIMEOUT_S
    try:
        conn = psycopg.connect(url, **options)
    except psycopg.Error as exc:
        raise StoreUnreachableError(
            f"cannot reach the team store {mask_url(url)}: {_masked(exc, url)}"
        ) from None
    try:
        version = schema_version_of(conn)
        if version > SCHEMA_VERSION:
            raise StoreVersionError(
                f"{mask_url(url)} was written by a newer attune (schema {version}, this attune "
                f"knows {SCHEMA_VERSION}); it was left untouched",
                hint="upgrade attune (pip install -U 'attune-cli[postgres]')",
            )
        if version < SCHEMA_VERSION and migrate:
            apply_migrations(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _masked(exc: BaseException, url: str) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    from urllib.parse import urlsplit

    password = urlsplit(url).password
    if password:
        text = text.replace(password, "***")
    return mask_url(text)


def schema_version_of(conn: Any) -> int:
    """The schema version of the database (0: nothing of attune's there yet)."""
    found = conn.execute("SELECT to_regclass('attune_schema')").fetchone()[0]
    if found is None:
        return 0
    row = conn.execute("SELECT max(version) FROM attune_schema").fetchone()
    return int(row[0] or 0)


def apply_migrations(conn: Any) -> tuple[int, int]:
    """Bring the schema up to date; one process at a time (an advisory lock).

    Returns:
        (version before, version after).
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('attune:' || current_schema()))")
        conn.execute("CREATE TABLE IF NOT EXISTS attune_schema (version INTEGER NOT NULL)")
        before = schema_version_of(conn)
        if before > SCHEMA_VERSION:
            raise StoreVersionError(
                f"the team store's schema ({before}) is newer than this attune's "
                f"({SCHEMA_VERSION}); it was left untouched",
                hint="upgrade attune (pip install -U 'attune-cli[postgres]')",
            )
        for number in range(before, SCHEMA_VERSION):
            conn.execute(MIGRATIONS[number])
            conn.execute("INSERT INTO attune_schema (version) VALUES (%s)", (number + 1,))
    return before, max(before, SCHEMA_VERSION)


class _Connection:
    """psycopg's connection with the ``execute`` the shared read paths expect."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self.raw.execute(_dialect(sql), params if params else None)

    def close(self) -> None:
        self.raw.close()


class PostgresCallStore(TelemetryStore):
    """Calls in PostgreSQL: the ``CallStore`` of a team.

    Reads are the SQLite store's (``TelemetryStore``) over a translating connection; every
    write is one transaction that adds rows and rollups together.

    Attributes:
        url: the database URL (with its password: show ``location``).
    """

    def __init__(self, url: str, *, clock: Callable[[], float] = clock_now) -> None:
        """Connect to ``url`` (migrating on first use).

        Raises:
            StoreUnreachableError: the server cannot be reached.
            StoreVersionError: the database's schema is newer than this attune.
        """
        self.url = url
        self.raw = connect(url)
        self.conn = _Connection(self.raw)  # type: ignore[assignment]
        self._clock = clock
        self._rng = random.Random(os.urandom(16))
        self._known_labels = set()
        self.unreachable = unreachable_errors()
        self.on_unreachable: Callable[[Any, BaseException], None] | None = None

    @property
    def location(self) -> str:
        """Where, password masked."""
        return mask_url(self.url)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.raw.close()

    @contextmanager
    def transaction(self) -> Iterator[Any]:  # type: ignore[override]
        """One transaction: committed when the block ends, rolled back if it raises."""
        if self.raw.info.transaction_status != 0:  # already inside one (bulk)
            yield self.conn
            return
        with self.raw.transaction():
            yield self.conn

    @contextmanager
    def bulk_transaction(self) -> Iterator[None]:
        """One transaction for a bulk import (rows go in through ``COPY``)."""
        with self.raw.transaction():
            yield

    def record(self, call: Any) -> None:
        """Store one call and its rollups in one statement (and its names for completion)."""
        row = self.row_of(call)
        labels = self._new_labels(((call.workflow, call.stage, call.model),))
        for attempt in range(5):
            try:
                with self.raw.transaction():
                    self.raw.execute(_INSERT_ONE, row)
                    if labels:
                        self._insert_labels(labels)
                break
            except self.unreachable as exc:
                # The server went away mid-run: the call goes to the local spool.
                if self.on_unreachable is None or (not self.raw.closed and _alive(self.raw)):
                    raise
                self.on_unreachable(call, exc)
                return
            except _retryable() as exc:
                if attempt == 4:
                    raise OperationError(f"{self.location}: {_masked(exc, self.url)}") from None
                time.sleep(0.01 * (attempt + 1))
        self._known_labels.update(labels)

    def insert_rows(
        self, rows: Iterable[Row], *, batch: int = 50_000, statement: str | None = None
    ) -> int:
        """COPY rows into a staging table, then add the new ones and their rollups.

        Args:
            rows: tuples in ``COLUMNS`` order, or in the order ``statement`` expects.
            batch: rows copied before they are moved into ``calls``.
            statement: a SQLite ``insert_statement`` naming the row's columns and constants.
        """
        shape = _row_shape(statement)
        inserted = 0
        copy_sql = f"COPY attune_staging ({', '.join(COLUMNS)}) FROM STDIN"
        with self.transaction():
            self.raw.execute(_STAGING)
            chunk: list[Row] = []

            def flush() -> int:
                with self.raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
                    write = copy.write_row
                    for row in chunk:
                        write(shape(row) if shape else row)
                chunk.clear()
                return self._move_staged()

            for row in rows:
                chunk.append(row)
                if len(chunk) >= batch:
                    inserted += flush()
            if chunk:
                inserted += flush()
        return inserted

    def _move_staged(self) -> int:
        count = int(self.raw.execute(_INSERT_STAGED).fetchone()[0])
        self.raw.execute("TRUNCATE attune_staging")
        return count

    def add_labels(self, names: Iterable[tuple[str, str, str]]) -> None:
        """Make (workflow, stage, model) names known to completion."""
        labels = self._new_labels(names)
        if labels:
            with self.transaction():
                self._insert_labels(labels)
        self._known_labels.update(labels)

    def _insert_labels(self, labels: list[tuple[str, str]]) -> None:
        with self.raw.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO labels (kind, value) VALUES (%s, %s) ON CONFLICT DO NOTHING", labels
            )

    def prune(self, before_ts: float, *, progress: Callable[[int], None] | None = None) -> int:
        """Delete the calls older than ``before_ts`` and their rollups; returns how many went.

        One transaction: PostgreSQL's row locks keep other writers going meanwhile, so there is
        no need for SQLite's chunks; ``progress`` is told the count once, at the end.
        """
        cut = rollups.hour_of(before_ts)
        with self.raw.transaction():
            deleted = self.raw.execute("DELETE FROM calls WHERE ts < %s", (before_ts,)).rowcount
            if deleted:
                for table in ("rollups", "rollup_latency"):
                    self.raw.execute(f"DELETE FROM {table} WHERE hour < %s", (cut,))
                if cut < before_ts:
                    for table in ("rollups", "rollup_latency"):
                        self.raw.execute(f"DELETE FROM {table} WHERE hour = %s", (cut,))
                    source = f"(SELECT * FROM calls WHERE ts >= {cut} AND ts < {cut + 3600})"
                    for upsert in _upserts("cut"):
                        self.raw.execute(f"WITH cut AS {source} {upsert}")
                self.raw.execute("DELETE FROM labels")
                for kind in LABEL_KINDS:
                    self.raw.execute(
                        f"INSERT INTO labels (kind, value) SELECT DISTINCT '{kind}', {kind} "
                        "FROM rollups ON CONFLICT DO NOTHING"
                    )
        self._known_labels.clear()
        if progress is not None:
            progress(max(deleted, 0))
        return max(deleted, 0)

    def _add_rollup_range(
        self,
        totals: dict[str, Any],
        pair: tuple[str, str],
        first: int,
        last: int,
        now: float,
        decay_per_s: float,
        outage_since: float,
    ) -> None:
        """Add the rollups of hours [first, last); each hour weighed by its middle."""
        middle = rollups.HOUR_S / 2
        weight = f"exp(LEAST(hour + {middle} - %(now)s, 0) * %(decay)s)"
        since = "(CASE WHEN hour >= %(outage_since)s THEN outage_failures ELSE 0 END)"
        counted = f"successes + quality_failures + {since}"
        sql = (
            "SELECT model, SUM(calls), SUM(successes), SUM(quality_failures), "
            f"SUM(outage_failures), SUM({since}), SUM(rate_limited), SUM(caller_errors), "
            "MAX(newest_outage_ts), COALESCE(SUM(cost_usd), 0), SUM(costs), SUM(latencies), "
            f"COALESCE(SUM(({counted}) * {weight}), 0), COALESCE(SUM(successes * {weight}), 0) "
            "FROM rollups WHERE workflow = %(workflow)s AND stage = %(stage)s "
            "AND hour >= %(first)s AND hour < %(last)s GROUP BY model"
        )
        params = {
            "workflow": pair[0],
            "stage": pair[1],
            "first": max(first, -(2**62)),
            "last": last,
            "now": now,
            "decay": decay_per_s,
            "outage_since": -1e300 if outage_since == -math.inf else outage_since,
        }
        from attune_cli.core.telemetry.sqlite import _Totals

        for row in self.raw.execute(sql, params).fetchall():
            total = totals.setdefault(row[0], _Totals())
            total.calls += int(row[1])
            total.successes += int(row[2])
            total.quality_failures += int(row[3])
            total.outage_failures += int(row[4])
            total.outage_failures_counted += int(row[5])
            total.rate_limited += int(row[6])
            total.caller_errors += int(row[7])
            total.note_outage(row[8])
            total.cost_usd += float(row[9])
            total.costs += int(row[10])
            total.latencies += int(row[11])
            total.weighted_calls += float(row[12])
            total.weighted_successes += float(row[13])
            if row[11]:
                for bucket, calls, latency_ms in self.raw.execute(
                    "SELECT bucket, SUM(calls), SUM(latency_ms) FROM rollup_latency "
                    "WHERE workflow = %s AND stage = %s AND model = %s AND hour >= %s "
                    "AND hour < %s GROUP BY bucket",
                    (pair[0], pair[1], row[0], params["first"], last),
                ):
                    found = total.buckets.get(bucket, (0, 0.0))
                    total.buckets[bucket] = (found[0] + int(calls), found[1] + float(latency_ms))

    def _newest(
        self,
        columns: str,
        pairs: list[tuple[str, str]] | None,
        model: str | None,
        since: float | None,
        limit: int,
        condition: tuple[str, tuple[Any, ...]] = ("", ()),
    ) -> list[tuple[Any, ...]]:
        # PostgreSQL wants each arm of a UNION that has its own ORDER BY/LIMIT in parentheses;
        # the shared plan (newest of each (workflow, stage) range) is otherwise the same.
        if pairs is None or not pairs or len(pairs) == 1:
            return super()._newest(columns, pairs, model, since, limit, condition)
        merged: list[tuple[Any, ...]] = []
        for pair in pairs:
            merged.extend(super()._newest(columns, [pair], model, since, limit, condition))
        merged.sort(key=lambda row: row[0], reverse=True)
        return merged[:limit]

    _calls_by_time = "calls"

    @contextmanager
    def budget_transaction(self) -> Iterator[None]:
        """One transaction holding the budgets' advisory lock: checks and reservations of all
        machines take turns, so two cannot both spend the last dollars."""
        with self.transaction():
            self.raw.execute("SELECT pg_advisory_xact_lock(hashtext('attune:budgets'))")
            yield

    def verify(self, *, limit: int = 20) -> rollups.VerifyReport:
        """Recompute the rollups from the rows and compare them with the stored ones."""
        aggregate, histogram = _aggregate("calls")
        key = ("workflow", "stage", "model", "hour", "provider")
        checks = (
            ("rollups", aggregate, key, rollups.ROLLUP_COLUMNS[len(key) :]),
            ("rollup_latency", histogram, (*key, "bucket"), ("calls", "latency_ms")),
        )
        differences: list[rollups.RollupDifference] = []
        total = 0
        checked = 0
        with self.raw.transaction(force_rollback=True):
            self.raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            for table, select, columns, values in checks:
                expected = {
                    tuple(row[: len(columns)]): tuple(row[len(columns) :])
                    for row in self.raw.execute(select)
                }
                stored = {
                    tuple(row[: len(columns)]): tuple(row[len(columns) :])
                    for row in self.raw.execute(
                        f"SELECT {', '.join((*columns, *values))} FROM {table}"
                    )
                }
                if table == "rollups":
                    checked = len(expected)
                for found_key in sorted(set(expected) | set(stored), key=repr):
                    want, have = expected.get(found_key), stored.get(found_key)
                    if want is not None and have is not None and _same(want, have):
                        continue
                    total += 1
                    if len(differences) < limit:
                        differences.append(rollups.RollupDifference(table, found_key, have, want))
        return rollups.VerifyReport(checked, tuple(differences), total)

    def rollup_hours(self) -> int:
        """How many distinct hours the rollups cover."""
        return int(self.raw.execute("SELECT COUNT(DISTINCT hour) FROM rollups").fetchone()[0])

    def schema_version(self) -> int:
        """The database's attune schema version."""
        return schema_version_of(self.raw)

    def round_trip_ms(self) -> float:
        """How long one trivial query takes, in milliseconds."""
        started = time.perf_counter()
        self.raw.execute("SELECT 1").fetchone()
        return (time.perf_counter() - started) * 1000

    def has_keys(self, keys: list[tuple[float, str]]) -> set[tuple[float, str]]:
        """Which of these call identities (ts, key) the store already holds."""
        if not keys:
            return set()
        found = self.raw.execute(
            "SELECT c.ts, c.import_key FROM calls AS c JOIN unnest(%s::float8[], %s::text[]) "
            "AS k(ts, import_key) ON c.ts = k.ts AND c.import_key = k.import_key",
            ([k[0] for k in keys], [k[1] for k in keys]),
        )
        return {(float(ts), key) for ts, key in found}


def _alive(raw: Any) -> bool:
    try:
        raw.execute("SELECT 1")
    except Exception:
        return False
    return True


class PostgresBreaker(CircuitBreaker):
    """Circuit breakers in the team store: every machine sees every open circuit at once.

    Each read-decide-write is one transaction holding the breaker's row (``SELECT … FOR
    UPDATE``), so the half-open probe lease and the generation counter hold across machines.
    """

    def __init__(self, url: str, settings: BreakerSettings | None = None, **options: Any) -> None:
        """Connect to ``url`` now (``StoreUnreachableError`` lets the caller fall back)."""
        super().__init__(Path("."), settings, **options)
        self.path = mask_url(url)  # type: ignore[assignment]
        self.url = url
        self._store_errors = (*self._store_errors, _driver().Error)
        self._connection(create=True)

    def _connection(self, *, create: bool) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        raw = connect(self.url)
        timeout_ms = max(int(self.settings.lock_timeout_s * 1000), 1)
        raw.execute(f"SET lock_timeout = {timeout_ms}")
        conn = _Connection(raw)
        self._local.conn = conn
        self._local.pid = os.getpid()
        with self._lock:
            self._connections.append((os.getpid(), conn))  # type: ignore[arg-type]
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        conn = self._connection(create=True)
        with conn.raw.transaction():
            yield conn

    def _read_for_update(self, conn: Any, key: str) -> Any:
        conn.execute(
            "INSERT INTO breakers (key, updated_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (key, self._clock()),
        )
        found = conn.execute(
            f"SELECT {_ROW_COLUMNS} FROM breakers WHERE key = ? FOR UPDATE", (key,)
        ).fetchone()
        return _Row(*found) if found else None


def _same(want: tuple[Any, ...], have: tuple[Any, ...]) -> bool:
    if len(want) != len(have):
        return False
    for a, b in zip(want, have, strict=True):
        if isinstance(a, float) or isinstance(b, float):
            if a is None or b is None:
                if a is not b:
                    return False
            elif abs(float(a) - float(b)) > 1e-9 * max(1.0, abs(float(a))):
                return False
        elif a != b:
            return False
    return True


def _retryable() -> tuple[type[BaseException], ...]:
    psycopg = _driver()
    return (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


_LITERAL = re.compile(r"\s*(NULL|-?\d+|'(?:[^']|'')*'|\?)\s*(?:,|$)")


@functools.cache
def _shape_of(statement: str) -> tuple[tuple[int | None, Any], ...]:
    head, _, values = statement.partition(" VALUES ")
    names = [c.strip() for c in head[head.index("(") + 1 : head.rindex(")")].split(",")]
    body = values.strip()[1:-1]
    parsed: list[Any] = []
    for match in _LITERAL.finditer(body):
        text = match.group(1)
        if text == "?":
            parsed.append(None)
        elif text == "NULL":
            parsed.append(("const", None))
        elif text.startswith("'"):
            parsed.append(("const", text[1:-1].replace("''", "'")))
        else:
            parsed.append(("const", int(text)))
    place: dict[str, tuple[int | None, Any]] = {}
    bound = 0
    for name, value in zip(names, parsed, strict=True):
        if value is None:
            place[name] = (bound, None)
            bound += 1
        else:
            place[name] = (None, value[1])
    return tuple(place[name] for name in COLUMNS)


def _row_shape(statement: str | None) -> Callable[[Row], Row] | None:
    """A function putting rows of ``statement``'s order (and its constants) in ``COLUMNS``."""
    if statement is None or statement.startswith("INSERT OR IGNORE INTO calls (ts, workflow"):
        if statement is None:
            return None
        shape = _shape_of(statement)
        if all(index == position for position, (index, _) in enumerate(shape)):
            return None
    shape = _shape_of(statement)

    def reorder(row: Row) -> Row:
        return tuple(row[index] if index is not None else value for index, value in shape)

    return reorder
