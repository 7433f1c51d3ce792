"""The team store: calls, rollups and breakers in PostgreSQL (``[store] url``/``ATTUNE_STORE_URL``).

psycopg 3 is an optional extra (``pip install 'attune-cli[postgres]'``) imported only here, and
this module is imported only when a ``postgresql://`` URL is configured.

* The schema mirrors the SQLite store (``telemetry.db``): ``calls`` with the same columns
  and identity ``(ts, import_key)``, ``labels``, the hourly ``rollups`` and the
  ``breakers``/``breaker_events`` tables. The latency histograms keep a row per key and hour
  (``latency_hours``) or day (``latency_days``) with the buckets in arrays; the views
  ``rollup_latency``/``rollup_latency_day`` show them as SQLite keeps them, a row per bucket.
  Text columns use the ``"C"`` collation so names sort and compare by code point, as in SQLite.
* Versioned migrations (``MIGRATIONS``) are applied on first use inside one transaction that
  holds an advisory lock, so one process migrates and the others wait; a database whose schema
  is newer than this attune is refused (``StoreVersionError``, exit 2) and left untouched.
* Every write adds its rows and their rollups in one statement (``INSERT … ON CONFLICT DO
  NOTHING RETURNING`` feeding the rollup upserts), so rollups count exactly the rows that were
  new, whatever other machines write at the same time. Bulk writes go through ``COPY`` into a
  temporary table first; a chunk of rows all new is inserted plainly and rolled up from that
  table (``_INSERT_NEW_STAGED``), one holding a stored row falls back to the above.
* Reads reuse the SQLite store's planning (``TelemetryStore``): the few SQL spellings that
  differ are translated by ``_dialect``. A routing decision's reads are one statement
  (``_decision_sql``), so one round trip.

Passwords come from the URL or libpq's own places (``PGPASSWORD``, ``~/.pgpass``); no message
shows one (``attune_cli.core.telemetry.store.mask_url``).
"""

from __future__ import annotations

import functools
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from attune_cli.core.clock import now as clock_now
from attune_cli.core.errors import OperationError, StoreVersionError
from attune_cli.core.failures import FailureClass, sql_failure_class
from attune_cli.core.telemetry import rollups
from attune_cli.core.telemetry.records import COLUMNS, LABEL_KINDS, Row
from attune_cli.core.telemetry.sqlite import (
    _SUMMED_REALS,
    FAILURE_CLASS_SQL,
    TelemetryStore,
    _decays,
    _Recent,
    _Totals,
)
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

# Version 2: the latency histogram by day as well (``rollups.DAY_SCHEMA``), from the hourly one.
_V2 = f"""
CREATE TABLE rollup_latency_day (
    workflow   {_TEXT} NOT NULL,
    stage      {_TEXT} NOT NULL,
    model      {_TEXT} NOT NULL,
    day        BIGINT  NOT NULL,
    provider   {_TEXT} NOT NULL,
    bucket     INTEGER NOT NULL,
    calls      BIGINT  NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (workflow, stage, model, day, provider, bucket)
);
INSERT INTO rollup_latency_day
SELECT workflow, stage, model,
       CAST(floor(hour / {float(rollups.DAY_S)}) AS BIGINT) * {rollups.DAY_S}, provider, bucket,
       CAST(SUM(calls) AS BIGINT), SUM(latency_ms)
FROM rollup_latency GROUP BY 1, 2, 3, 4, 5, 6;
"""

# Version 3: how each call was paid and the plan-covered cost per rollup (SQLite's schema 6).
_V3 = """
ALTER TABLE calls ADD COLUMN billing TEXT COLLATE "C";
ALTER TABLE rollups ADD COLUMN plan_cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
"""


# Version 4: spend tables kept by a trigger, and budget reservations (as SQLite's schema 7).
_V4 = (
    rollups.spend_schema(text=_TEXT, integer="BIGINT", real="DOUBLE PRECISION")
    + rollups.postgres_spend_triggers()
)

# Version 5: the spend tables kept by one trigger per statement instead of one per rollup row
# (``rollups.postgres_spend_statement_triggers``), so an import's batch adds its spend at once;
# no ``calls.id``: nothing reads it here (the spool's push walks the local store's ids), and its
# sequence and index cost every inserted row; and the keys of ``rollups`` and
# ``rollup_latency_day`` carry the figures a window reads, so it reads them from the key alone
# (an index-only scan). A key's rows lie scattered over the table's pages (each upsert writes a
# new version wherever there is room: a model's month of daily buckets sat on as many pages as
# rows), where SQLite keeps them together (``WITHOUT ROWID``).
_V5 = (
    rollups.postgres_spend_statement_triggers()
    + "ALTER TABLE calls DROP COLUMN id;\n"
    + "ALTER TABLE rollups DROP CONSTRAINT rollups_pkey, ADD CONSTRAINT rollups_pkey "
    "PRIMARY KEY (workflow, stage, model, hour, provider) "
    f"INCLUDE ({', '.join(rollups.ROLLUP_COLUMNS[5:])});\n"
    "ALTER TABLE rollup_latency_day DROP CONSTRAINT rollup_latency_day_pkey, "
    "ADD CONSTRAINT rollup_latency_day_pkey "
    "PRIMARY KEY (workflow, stage, model, day, provider, bucket) INCLUDE (calls, latency_ms);\n"
)


def _as_arrays(key: str, rows: str) -> str:
    """A SELECT of histogram ``rows`` (``key``, bucket, calls, latency_ms: a row per key and
    bucket) as a row per key holding its buckets in arrays, in bucket order."""
    return (
        f"SELECT {key}, array_agg(bucket ORDER BY bucket), array_agg(calls ORDER BY bucket), "
        f"array_agg(latency_ms ORDER BY bucket) FROM ({rows}) AS b ({key}, bucket, calls, "
        f"latency_ms) GROUP BY {key}"
    )


def _histogram_table(name: str, key: str, source: str) -> str:
    """A latency histogram kept as one row per ``key`` with the buckets in arrays, filled from
    ``source``, the same histogram as one row per bucket (schemas 1 to 5)."""
    period = key.split(", ")[3]
    return f"""
CREATE TABLE {name} (
    workflow   {_TEXT} NOT NULL,
    stage      {_TEXT} NOT NULL,
    model      {_TEXT} NOT NULL,
    {period:<10} BIGINT  NOT NULL,
    provider   {_TEXT} NOT NULL,
    buckets    INTEGER[] NOT NULL,
    calls      BIGINT[] NOT NULL,
    latency_ms DOUBLE PRECISION[] NOT NULL,
    PRIMARY KEY ({key})
);
INSERT INTO {name} {_as_arrays(key, f"SELECT {key}, bucket, calls, latency_ms FROM {source}")};
"""


# A histogram row's buckets as rows, one per bucket. (``unnest`` in the SELECT list, where
# PostgreSQL walks the three arrays together, costs half what ``unnest(a, b, c)`` in FROM does.)
_UNNESTED = (
    "unnest(l.buckets) AS bucket, unnest(l.calls) AS calls, unnest(l.latency_ms) AS latency_ms"
)


def _histogram_view(name: str, table: str, period: str) -> str:
    """The histogram rows (one per key, ``period`` and bucket) of ``table``'s arrays."""
    return (
        f"CREATE VIEW {name} AS SELECT l.workflow, l.stage, l.model, l.{period}, l.provider, "
        f"{_UNNESTED} FROM {table} AS l;\n"
    )


# Version 6: the latency histograms keep one row per key and hour (and per key and day) with
# the buckets in arrays, where they kept one row per bucket: an import's histogram upserts
# wrote 0.92 rows per call and cost more than inserting the calls (536 of a 50,000-row chunk's
# 1,171 ms), and a decision read a 30-day window's histogram as 11,445 rows. ``rollup_latency``
# and ``rollup_latency_day`` stay as views of the same rows, for the readers SQLite shares and
# for ``store verify``. ``attune_merge`` adds two histograms' arrays bucket by bucket. And
# ``calls_workflow_stage_ts`` keeps only its key: the reads it serves (a window's edge rows,
# the newest calls of a stage) fetch columns it never held (``billing``, ``tier``), so they
# read the table anyway, and its seven other columns cost every inserted row (a fifth of an
# import's insert into ``calls``).
_V6 = (
    "DROP INDEX calls_workflow_stage_ts;\n"
    "CREATE INDEX calls_workflow_stage_ts ON calls(workflow, stage, ts);\n"
    + _histogram_table("latency_hours", rollups.KEY, "rollup_latency")
    + _histogram_table("latency_days", rollups.DAY_KEY, "rollup_latency_day")
    + "DROP TABLE rollup_latency, rollup_latency_day;\n"
    + _histogram_view("rollup_latency", "latency_hours", "hour")
    + _histogram_view("rollup_latency_day", "latency_days", "day")
    + """
CREATE FUNCTION attune_merge(
    b1 INTEGER[], c1 BIGINT[], l1 DOUBLE PRECISION[],
    b2 INTEGER[], c2 BIGINT[], l2 DOUBLE PRECISION[]
) RETURNS TABLE (buckets INTEGER[], calls BIGINT[], latency_ms DOUBLE PRECISION[])
    IMMUTABLE LANGUAGE sql AS $$
    SELECT array_agg(b ORDER BY b), array_agg(c ORDER BY b), array_agg(l ORDER BY b)
    FROM (SELECT b, CAST(SUM(c) AS BIGINT) AS c, SUM(l) AS l FROM (
        SELECT unnest(b1), unnest(c1), unnest(l1)
        UNION ALL SELECT unnest(b2), unnest(c2), unnest(l2)
    ) AS u(b, c, l) GROUP BY b) AS m $$;
"""
)

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6)
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
        "SUM(output_tokens) AS tokens_out, COUNT(latency_ms) AS timed, MAX(ts) AS newest, "
        f"SUM(CASE WHEN billing = '{rollups.PLAN_COVERED}' THEN cost_usd END) AS plan_cost "
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
        "COALESCE(SUM(plan_cost), 0), "
        f"MAX(newest) FILTER (WHERE fc = '{FailureClass.OUTAGE}') "
        f"FROM (SELECT *, ({fc}) AS fc FROM ({grouped}) AS g) AS r GROUP BY 1, 2, 3, 4, 5"
    )
    histogram = (
        f"SELECT {key}, attune_bucket(latency_ms) AS bucket, COUNT(*) AS calls, "
        "SUM(latency_ms) AS latency_ms "
        f"FROM {source} AS r WHERE latency_ms IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6"
    )
    return aggregate, histogram


_COUNTS = rollups.ROLLUP_COLUMNS[5:-1]


def _histogram_upsert(table: str, key: str, rows: str) -> str:
    """An upsert adding histogram ``rows`` (the SELECT of ``key``, bucket, calls, latency_ms,
    one row per key and bucket) to ``table``'s arrays (``latency_hours``/``latency_days``)."""
    return (
        f"INSERT INTO {table} AS t ({key}, buckets, calls, latency_ms) {_as_arrays(key, rows)} "
        f"ON CONFLICT ({key}) DO UPDATE SET (buckets, calls, latency_ms) = (SELECT * FROM "
        "attune_merge(t.buckets, t.calls, t.latency_ms, excluded.buckets, excluded.calls, "
        "excluded.latency_ms))"
    )


def _upserts(source: str) -> tuple[str, str]:
    """(rollups, hourly histogram) upserts adding ``source``'s rows.

    Every writer upserts all its ``rollups`` rows before any ``latency_hours`` row, and a
    ``record`` touches one of each, so a record never deadlocks with an import; two imports
    at once may (PostgreSQL then aborts one, whose transaction leaves nothing behind).
    """
    aggregate, histogram = _aggregate(source)
    added = ", ".join(f"{c} = rollups.{c} + excluded.{c}" for c in _COUNTS)
    return (
        f"INSERT INTO rollups ({', '.join(rollups.ROLLUP_COLUMNS)}) {aggregate} "
        f"ON CONFLICT ({rollups.KEY}) DO UPDATE SET {added}, newest_outage_ts = "
        "GREATEST(rollups.newest_outage_ts, excluded.newest_outage_ts)",
        _histogram_upsert("latency_hours", rollups.KEY, histogram),
    )


def _daily(hourly: str, condition: str = "true") -> str:
    """A SELECT adding hourly histogram rows (of ``hourly``, matching ``condition``) by day."""
    day = f"(CAST(floor(hour / {float(rollups.DAY_S)}) AS BIGINT) * {rollups.DAY_S})"
    return (
        f"SELECT workflow, stage, model, {day} AS day, provider, bucket, "
        f"CAST(SUM(calls) AS BIGINT), SUM(latency_ms) FROM {hourly} AS h WHERE {condition} "
        "GROUP BY 1, 2, 3, 4, 5, 6"
    )


def _daily_upsert(hourly: str, condition: str = "true") -> str:
    """An upsert adding hourly histogram rows (of ``hourly``) to ``latency_days``."""
    return _histogram_upsert("latency_days", rollups.DAY_KEY, _daily(hourly, condition))


def _roll_up(source: str) -> str:
    """The CTEs adding ``source``'s rows to the rollups and both latency histograms.

    The hourly histogram is worked out once and feeds both the hourly and the daily upsert.
    """
    rollup_upsert, _ = _upserts(source)
    _, histogram = _aggregate(source)
    return (
        f"r AS ({rollup_upsert} RETURNING 1), "
        f"h AS MATERIALIZED ({histogram}), "
        f"l AS ({_histogram_upsert('latency_hours', rollups.KEY, 'SELECT * FROM h')} RETURNING 1), "
        f"d AS ({_daily_upsert('h')} RETURNING 1)"
    )


def _insert_with_rollups(values: str) -> str:
    """One statement: insert ``values`` (a SELECT/VALUES in ``COLUMNS`` order), roll up the new.

    Returns the number of new rows as its single result.
    """
    return (
        f"WITH new AS (INSERT INTO calls ({', '.join(COLUMNS)}) {values} "
        f"ON CONFLICT (ts, import_key) DO NOTHING RETURNING {', '.join(COLUMNS)}), "
        f"{_roll_up('new')} SELECT COUNT(*) FROM new"
    )


# ``record``: the row, its rollups and the call's names for completion in one statement, so
# one round trip (autocommit) and row locks held only while it runs and commits. The names go
# last, as in an import (rows, rollups, then labels), so the two never wait on each other in
# opposite orders.
_RECORD = (
    _insert_with_rollups("VALUES (" + ", ".join(["@P"] * len(COLUMNS)) + ")")
    .replace("%", "%%")
    .replace(
        " SELECT COUNT(*) FROM new",
        ", names AS (INSERT INTO labels (kind, value) SELECT * FROM unnest(@P::text[], "
        "@P::text[]) ON CONFLICT DO NOTHING RETURNING 1) SELECT COUNT(*) FROM new",
    )
    .replace("@P", "%s")
)
_INSERT_STAGED = _insert_with_rollups(f"SELECT {', '.join(COLUMNS)} FROM attune_staging")
# An import's usual chunk: none of its rows is stored yet. A plain INSERT (no ON CONFLICT: no
# speculative insertion, no RETURNING of every row) and rollups of the staged rows themselves
# cost the server about a sixth less than ``_INSERT_STAGED``; a row already stored (a re-run,
# a push racing another) makes it fail on the unique identity, and the chunk is then moved by
# ``_INSERT_STAGED`` instead (``PostgresCallStore._move_staged``).
_INSERT_NEW_STAGED = (
    f"INSERT INTO calls ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM attune_staging; "
    f"WITH {_roll_up('attune_staging')} SELECT 1"
)
_BULK_WORK_MEM = "64MB"
_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS attune_staging "
    "(LIKE calls INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)


@functools.cache
def _pairs_sql(workflow: bool, stage: bool, since: bool) -> str:
    """The (workflow, stage) pairs: a skip scan of the rollups' key, one index probe per pair."""
    if workflow and stage:
        found = (
            "SELECT workflow, stage FROM (SELECT workflow, stage FROM rollups "
            "WHERE workflow = %(workflow)s AND stage = %(stage)s LIMIT 1) AS p"
        )
    else:
        same = "workflow = %(workflow)s AND " if workflow else ""
        found = (
            "WITH RECURSIVE p AS ("
            f"(SELECT workflow, stage FROM rollups WHERE {same}true "
            "ORDER BY workflow, stage LIMIT 1) UNION ALL "
            "SELECT n.workflow, n.stage FROM p CROSS JOIN LATERAL ("
            f"SELECT workflow, stage FROM rollups WHERE {same}"
            "(workflow, stage) > (p.workflow, p.stage) "
            "ORDER BY workflow, stage LIMIT 1) AS n) SELECT workflow, stage FROM p"
        )
    terms = ["true"]
    if stage and not workflow:
        terms.append("stage = %(stage)s")
    if since:
        terms.append(
            "EXISTS (SELECT 1 FROM calls AS c WHERE c.workflow = p.workflow "
            "AND c.stage = p.stage AND c.ts >= %(since)s)"
        )
    return f"{found} WHERE {' AND '.join(terms)} ORDER BY workflow, stage"


# The failure class inside SQL that also carries %(name)s parameters.
_FC = _PG_FAILURE_CLASS.replace("%", "%%")

# What a decision reads (``TelemetryStore._window_reads``), in one statement and so one round
# trip: ``p`` the (workflow, stage) pairs matching the filters (``_decision_pairs``), ``pm``
# each pair's models (a skip scan of the rollups' key); then kind 0 rows add up the rollups of
# whole hours (each weighed by its middle), kind 1 rows the calls at the window's edges (each
# weighed by its own age, with their exact latencies), kind 2 rows the latency histogram of the
# whole hours, one row per model holding its buckets as (bucket, calls, latency_ms) triples
# (one array rather than a row per bucket: a decision 6 % quicker, mostly in reading fewer
# rows); and kind 3 rows each model's newest counted calls (the newest few of each (pair,
# model) range of ``calls_model_ts``, merged), for the models found.
# (In float8 throughout: ``hour + 1800.0`` would be numeric, and its arithmetic costs a
# decision more than reading the rollups does.)
_WEIGHT = "exp(GREATEST(LEAST({ts} - %(now)s, 0) * %({decay})s, -700))"
_HOUR_MIDDLE = f"CAST(r.hour AS float8) + {rollups.HOUR_S / 2}"
_WINDOW = f"""pm AS (
    SELECT p.workflow, p.stage, f.model FROM p CROSS JOIN LATERAL (
        SELECT model FROM rollups AS r WHERE r.workflow = p.workflow AND r.stage = p.stage
        ORDER BY model LIMIT 1) AS f
    UNION ALL
    SELECT pm.workflow, pm.stage, n.model FROM pm CROSS JOIN LATERAL (
        SELECT model FROM rollups AS r
        WHERE r.workflow = pm.workflow AND r.stage = pm.stage AND r.model > pm.model
        ORDER BY model LIMIT 1) AS n
),
g AS (SELECT * FROM unnest(%(firsts)s::bigint[], %(lasts)s::bigint[]) AS g(first, last)),
e AS (SELECT * FROM unnest(%(starts)s::float8[], %(stops)s::float8[]) AS e(start, stop)),
hourly AS (
    SELECT pm.model, r.* FROM pm CROSS JOIN g CROSS JOIN LATERAL (
        SELECT SUM(calls) AS calls, SUM(successes) AS successes,
               SUM(quality_failures) AS quality_failures, SUM(outage_failures) AS outage_failures,
               SUM(since) AS since, SUM(rate_limited) AS rate_limited,
               SUM(caller_errors) AS caller_errors, MAX(newest_outage_ts) AS newest_outage_ts,
               SUM(cost_usd) AS cost_usd, SUM(costs) AS costs, SUM(latencies) AS latencies,
               SUM((successes + quality_failures + since) * w) AS weighted,
               SUM(successes * w) AS weighted_successes, SUM(plan_cost_usd) AS plan_cost_usd,
               SUM((successes + quality_failures + since) * xw) AS explore_weighted,
               SUM(successes * xw) AS explore_successes
        FROM (
            SELECT r.*, {_WEIGHT.format(ts=_HOUR_MIDDLE, decay="decay")} AS w,
                   {_WEIGHT.format(ts=_HOUR_MIDDLE, decay="explore_decay")} AS xw,
                   CASE WHEN r.hour >= %(outage_since)s THEN r.outage_failures ELSE 0 END AS since
            FROM rollups AS r
            WHERE r.workflow = pm.workflow AND r.stage = pm.stage AND r.model = pm.model
              AND r.hour >= g.first AND r.hour < g.last) AS r
        HAVING COUNT(*) > 0) AS r
),
edge AS (
    SELECT c.model, c.ts, c.success, c.cost_usd, c.latency_ms, c.billing,
           ({_FC}) AS fc, {_WEIGHT.format(ts="c.ts", decay="decay")} AS w,
           {_WEIGHT.format(ts="c.ts", decay="explore_decay")} AS xw
    FROM p CROSS JOIN e CROSS JOIN LATERAL (
        SELECT * FROM calls AS c
        WHERE c.workflow = p.workflow AND c.stage = p.stage AND c.ts >= e.start AND c.ts < e.stop
        OFFSET 0) AS c
)"""
_WINDOW_ROWS = f"""
SELECT 0, model, SUM(calls), SUM(successes), SUM(quality_failures), SUM(outage_failures),
       SUM(since), SUM(rate_limited), SUM(caller_errors), MAX(newest_outage_ts),
       COALESCE(SUM(cost_usd), 0), SUM(costs), SUM(latencies), COALESCE(SUM(weighted), 0),
       COALESCE(SUM(weighted_successes), 0), COALESCE(SUM(plan_cost_usd), 0),
       COALESCE(SUM(explore_weighted), 0), COALESCE(SUM(explore_successes), 0), NULL::float8[]
FROM hourly GROUP BY model
UNION ALL
SELECT 1, model, COUNT(*), COUNT(*) FILTER (WHERE success <> 0),
       COUNT(*) FILTER (WHERE success = 0 AND fc = '{FailureClass.QUALITY}'),
       COUNT(*) FILTER (WHERE success = 0 AND fc = '{FailureClass.OUTAGE}'),
       COUNT(*) FILTER (WHERE success = 0 AND fc = '{FailureClass.OUTAGE}'
                        AND ts >= %(outage_since)s),
       COUNT(*) FILTER (WHERE success = 0 AND fc = '{FailureClass.RATE_LIMIT}'),
       COUNT(*) FILTER (WHERE success = 0 AND fc = '{FailureClass.CALLER_ERROR}'),
       MAX(ts) FILTER (WHERE success = 0 AND fc = '{FailureClass.OUTAGE}'),
       COALESCE(SUM(cost_usd), 0), COUNT(cost_usd), COUNT(latency_ms),
       COALESCE(SUM(w) FILTER (WHERE success <> 0 OR fc = '{FailureClass.QUALITY}'
                               OR (fc = '{FailureClass.OUTAGE}' AND ts >= %(outage_since)s)), 0),
       COALESCE(SUM(w) FILTER (WHERE success <> 0), 0),
       COALESCE(SUM(cost_usd) FILTER (WHERE billing = '{rollups.PLAN_COVERED}'), 0),
       COALESCE(SUM(xw) FILTER (WHERE success <> 0 OR fc = '{FailureClass.QUALITY}'
                                OR (fc = '{FailureClass.OUTAGE}' AND ts >= %(outage_since)s)), 0),
       COALESCE(SUM(xw) FILTER (WHERE success <> 0), 0),
       array_agg(latency_ms) FILTER (WHERE latency_ms IS NOT NULL)
FROM edge GROUP BY model
UNION ALL
SELECT 2, model, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       array_agg(ARRAY[bucket, calls, latency_ms])
FROM (SELECT model, bucket, CAST(SUM(calls) AS float8) AS calls, SUM(latency_ms) AS latency_ms
FROM (
    SELECT l.model, {_UNNESTED}
    FROM pm CROSS JOIN unnest(%(day_firsts)s::bigint[], %(day_lasts)s::bigint[]) AS d(first, last)
    CROSS JOIN LATERAL (
        SELECT * FROM latency_days AS l
        WHERE l.workflow = pm.workflow AND l.stage = pm.stage AND l.model = pm.model
          AND l.day >= d.first AND l.day < d.last OFFSET 0) AS l
    UNION ALL
    SELECT l.model, {_UNNESTED}
    FROM pm CROSS JOIN unnest(%(hour_firsts)s::bigint[], %(hour_lasts)s::bigint[]) AS h(first, last)
    CROSS JOIN LATERAL (
        SELECT * FROM latency_hours AS l
        WHERE l.workflow = pm.workflow AND l.stage = pm.stage AND l.model = pm.model
          AND l.hour >= h.first AND l.hour < h.last OFFSET 0) AS l
) AS x
GROUP BY model, bucket) AS b
GROUP BY model
"""
_RECENT_COLUMNS = "x.ts, x.success, x.provider, x.tier, x.fc"
_RECENT = f"""
SELECT 3, m.model, {", ".join(["NULL"] * 16)}, NULL::float8[], {_RECENT_COLUMNS}
FROM (SELECT DISTINCT model FROM w) AS m CROSS JOIN LATERAL (
    SELECT y.* FROM p CROSS JOIN LATERAL (
        SELECT c.ts, c.success, c.provider, c.tier, ({_FC}) AS fc
        FROM calls AS c
        WHERE c.workflow = p.workflow AND c.stage = p.stage AND c.model = m.model
          AND c.ts >= %(since)s
          AND (c.success <> 0 OR ({_FC}) = '{FailureClass.QUALITY}'
               OR (({_FC}) = '{FailureClass.OUTAGE}' AND c.ts >= %(outage_since)s))
        ORDER BY c.ts DESC LIMIT %(n)s) AS y
    ORDER BY y.ts DESC LIMIT %(n)s) AS x
"""


@functools.cache
def _decision_pairs(workflow: bool, stage: bool) -> str:
    """The CTEs naming ``p``, the pairs ``TelemetryStore.pairs(workflow, stage)`` returns."""
    if workflow and stage:
        return (
            "p AS (SELECT workflow, stage FROM rollups "
            "WHERE workflow = %(workflow)s AND stage = %(stage)s LIMIT 1)"
        )
    same = "workflow = %(workflow)s AND " if workflow else ""
    return (
        "ps AS ("
        f"(SELECT workflow, stage FROM rollups WHERE {same}true "
        "ORDER BY workflow, stage LIMIT 1) UNION ALL "
        "SELECT n.workflow, n.stage FROM ps CROSS JOIN LATERAL ("
        f"SELECT workflow, stage FROM rollups WHERE {same}"
        "(workflow, stage) > (ps.workflow, ps.stage) "
        "ORDER BY workflow, stage LIMIT 1) AS n), "
        "p AS (SELECT workflow, stage FROM ps" + (" WHERE stage = %(stage)s" if stage else "") + ")"
    )


@functools.cache
def _decision_sql(workflow: bool, stage: bool) -> str:
    """One statement reading a decision's window and newest calls (see ``_WINDOW``)."""
    sums = ", ".join(f"s{i}" for i in range(16))
    return (
        f"WITH RECURSIVE {_decision_pairs(workflow, stage)},\n{_WINDOW},\n"
        f"w (kind, model, {sums}, latencies) AS MATERIALIZED ({_WINDOW_ROWS})\n"
        "SELECT *, NULL::float8, NULL::integer, NULL::text, NULL::text, NULL::text FROM w\n"
        f"UNION ALL {_RECENT}"
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


def connect(url: str, *, migrate: bool = True, settings: dict[str, str] | None = None) -> Any:
    """An autocommit connection to ``url``, migrated to this attune's schema.

    ``settings`` (server settings, name → value) are set for the session at connection.

    Raises:
        StoreUnreachableError: the server cannot be reached (message masked).
        StoreVersionError: the database's schema is newer than this attune (exit 2).
        OperationError: psycopg is missing.
    """
    psycopg = _driver()
    try:
        conn = psycopg.connect(url, **_connect_options(url, settings))
    except psycopg.Error as exc:
        raise StoreUnreachableError(
            f"cannot reach the team store {mask_url(url)}: {_masked(exc, url)}"
        ) from None
    try:
        version = _first_schema_version(conn)
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


def _connect_options(url: str, settings: dict[str, str] | None = None) -> dict[str, Any]:
    """psycopg's ``connect`` options for ``url``: autocommit, a timeout, and ``jit=off``.

    attune's queries are short index walks and batch upserts: compiling them (JIT, on above a
    planner cost any import batch or window over many pairs reaches) takes longer than running
    them. The setting travels in the start-up packet (``options``, after those of the URL or
    ``PGOPTIONS``), so it costs no round trip of its own.
    """
    from psycopg.conninfo import conninfo_to_dict

    given = conninfo_to_dict(url).get("options") or os.environ.get("PGOPTIONS")
    wanted = " ".join(
        f"-c {name}={value}" for name, value in {"jit": "off", **(settings or {})}.items()
    )
    options: dict[str, Any] = {
        "autocommit": True,
        "options": f"{given} {wanted}" if given else wanted,
    }
    if "connect_timeout" not in url:
        options["connect_timeout"] = CONNECT_TIMEOUT_S
    return options


def _first_schema_version(conn: Any) -> int:
    """``schema_version_of`` in one round trip where attune's schema exists (autocommit)."""
    try:
        row = conn.execute("SELECT max(version) FROM attune_schema").fetchone()
    except _driver().errors.UndefinedTable:
        return 0
    return int(row[0] or 0)


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


class _Serialized:
    """A psycopg connection that threads take turns at, one statement or transaction each.

    psycopg runs one statement at a time on a connection, but a transaction opened by one
    thread would take in the statements of every other thread until it ends. Here a statement
    holds the connection's lock while it runs (its rows are read into memory by then), and a
    transaction (``transaction``, ``cursor``) holds it until it ends; the lock is re-entrant,
    so the statements of a transaction go in it. A long-lived process (``attune serve``) can
    then share one connection per purpose among its threads instead of opening one per thread
    (64 worker threads would take two connections each, past PostgreSQL's 100). Anything
    else (``info``, ``closed``, ``broken``, ``close`` …) is the connection's own.
    """

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.lock = threading.RLock()

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return self._raw.execute(*args, **kwargs)

    @contextmanager
    def transaction(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with self.lock, self._raw.transaction(*args, **kwargs) as tx:
            yield tx

    @contextmanager
    def cursor(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with self.lock, self._raw.cursor(*args, **kwargs) as cursor:
            yield cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


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
        # Threads may share this store (the gateway's): see ``_Serialized``.
        self.raw = _Serialized(connect(url))
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
    def transaction(self) -> Iterator[Any]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self.raw.lock:  # no other thread is in a transaction here while this one holds it
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
        params = (*row, [kind for kind, _ in labels], [value for _, value in labels])
        for attempt in range(5):
            try:
                self.raw.execute(_RECORD, params, prepare=True)
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
            # The batch's rollups are hash aggregates of tens of thousands of groups: in memory,
            # not spilled to disk at the default 4 MB.
            self.raw.execute(f"SET LOCAL work_mem = '{_BULK_WORK_MEM}'")
            chunk: list[Row] = []

            def flush() -> int:
                with self.raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
                    write = copy.write_row
                    for row in chunk:
                        write(shape(row) if shape else row)
                staged = len(chunk)
                chunk.clear()
                return self._move_staged(staged)

            for row in rows:
                chunk.append(row)
                if len(chunk) >= batch:
                    inserted += flush()
            if chunk:
                inserted += flush()
        return inserted

    def _move_staged(self, staged: int) -> int:
        """Move the ``staged`` rows of ``attune_staging`` into ``calls`` with their rollups.

        First as rows all new (``_INSERT_NEW_STAGED``), inside a savepoint; if one is stored
        already, that is undone and only the new ones are added (``_INSERT_STAGED``).
        """
        try:
            with self.raw.transaction():
                self.raw.execute(_INSERT_NEW_STAGED)
            count = staged
        except _driver().errors.UniqueViolation:
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
                for table in ("rollups", "latency_hours"):
                    self.raw.execute(f"DELETE FROM {table} WHERE hour < %s", (cut,))
                if cut < before_ts:
                    for table in ("rollups", "latency_hours"):
                        self.raw.execute(f"DELETE FROM {table} WHERE hour = %s", (cut,))
                    source = f"(SELECT * FROM calls WHERE ts >= {cut} AND ts < {cut + 3600})"
                    for upsert in _upserts("cut"):
                        self.raw.execute(f"WITH cut AS {source} {upsert}")
                # Whole days before the cut go; the day it cuts is added up again by hour.
                day = rollups.day_of(cut)
                self.raw.execute("DELETE FROM latency_days WHERE day <= %s", (day,))
                self.raw.execute(
                    _daily_upsert(
                        "rollup_latency", f"hour >= {day} AND hour < {day + rollups.DAY_S}"
                    )
                )
                self.raw.execute("DELETE FROM labels")
                for kind in LABEL_KINDS:
                    self.raw.execute(
                        f"INSERT INTO labels (kind, value) SELECT DISTINCT '{kind}', {kind} "
                        "FROM rollups ON CONFLICT DO NOTHING"
                    )
        self._known_labels.clear()
        if progress is not None:
            progress(max(deleted, 0))
        return max(int(deleted), 0)

    def pairs(
        self, workflow: str | None, stage: str | None, *, since_ts: float | None = None
    ) -> list[tuple[str, str]]:
        """The (workflow, stage) pairs with calls that match the filters, sorted: one query.

        A recursive skip scan of the rollups' key (one index probe per pair) rather than
        ``SELECT DISTINCT``; with ``since_ts``, only pairs with a call at or after it.
        """
        params = {"workflow": workflow, "stage": stage, "since": since_ts}
        sql = _pairs_sql(workflow is not None, stage is not None, since_ts is not None)
        rows = self.raw.execute(sql, params).fetchall()
        return [(str(found_workflow), str(found_stage)) for found_workflow, found_stage in rows]

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
        """The pairs, their window and each model's newest counted calls in one statement
        (``_decision_sql``), so one round trip: rollups for whole hours, rows at the edges.

        ``half_lives_s`` are (ranking's, exploring's): the weighted sums' half-lives.
        """
        decay, explore_decay = _decays(half_lives_s)
        params: dict[str, Any] = {
            "workflow": workflow,
            "stage": stage,
            "firsts": [max(first, -(2**62)) for first, _ in plan.rollup_ranges],
            "lasts": [last for _, last in plan.rollup_ranges],
            "starts": [start for start, _ in plan.row_ranges],
            "stops": [stop for _, stop in plan.row_ranges],
            "now": now,
            "decay": decay,
            "explore_decay": explore_decay,
            "outage_since": outage_since,
            "since": since,
            "n": max(recent_n, 1),
            "day_firsts": [],
            "day_lasts": [],
            "hour_firsts": [],
            "hour_lasts": [],
        }
        for first, last in plan.rollup_ranges:
            # The histogram's whole days from the daily table, the hours around them hourly.
            day_first, day_last = rollups.whole_days(max(first, -(2**62)), last)
            params["day_firsts"].append(day_first)
            params["day_lasts"].append(day_last)
            params["hour_firsts"] += [max(first, -(2**62)), day_last]
            params["hour_lasts"] += [min(day_first, last), last]
        totals: dict[str, _Totals] = {}
        newest: dict[str, list[tuple[Any, ...]]] = {}
        sql = _decision_sql(workflow is not None, stage is not None)
        for kind, model, *row in self.raw.execute(sql, params, prepare=True):
            if kind == 3:
                newest.setdefault(model, []).append(tuple(row[17:]))
                continue
            total = totals.setdefault(model, _Totals())
            if kind == 2:
                for bucket, calls, latency_ms in row[16]:
                    total.add_bucket(int(bucket), int(calls), latency_ms)
                continue
            total.add_sums(row[:16])
            if row[16]:
                total.exact_latencies.extend(float(value) for value in row[16])
        recents = {}
        for model in totals:
            rows = sorted(newest.get(model, ()), key=lambda found: -found[0])
            recents[model] = _Recent.of(rows, recent_n)
        return totals, recents

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

    def verify(
        self, *, limit: int = 20, progress: Callable[[int, int], None] | None = None
    ) -> rollups.VerifyReport:
        """Recompute the rollups from the rows, and the spend tables from the rollups, and
        compare them with the stored ones (as ``TelemetryStore.verify``).

        Each table is compared on the server (``_verify_sql``): only the differences travel,
        so a history of millions of calls is verified in the server's memory, not this
        process's. ``progress(done, total)`` is called before each table and at the end.
        """
        aggregate, histogram = _aggregate("calls")
        key = ("workflow", "stage", "model", "hour", "provider")
        checks = (
            ("rollups", aggregate, key, rollups.ROLLUP_COLUMNS[len(key) :]),
            ("rollup_latency", histogram, (*key, "bucket"), ("calls", "latency_ms")),
            (
                "rollup_latency_day",
                _daily(f"({histogram})"),
                ("workflow", "stage", "model", "day", "provider", "bucket"),
                ("calls", "latency_ms"),
            ),
            *(
                (
                    name,
                    rollups.spend_from_rollups(name, integer="BIGINT"),
                    spend_key,
                    rollups.SPEND_SUMS,
                )
                for name, spend_key in rollups.SPEND_TABLES.items()
            ),
        )
        differences: list[rollups.RollupDifference] = []
        total = 0
        checked = 0
        spend_rows = 0
        with self.raw.transaction(force_rollback=True):
            self.raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            # The recomputations are hash aggregates of every row: in memory, not spilled.
            self.raw.execute(f"SET LOCAL work_mem = '{_BULK_WORK_MEM}'")
            for done, (table, select, columns, values) in enumerate(checks):
                if progress is not None:
                    progress(done, len(checks))
                found = self.raw.execute(
                    _verify_sql(table, select, columns, values), {"limit": max(limit, 1)}
                ).fetchall()
                expected_rows, differing = int(found[0][0]), int(found[0][1])
                total += differing
                if table == "rollups":
                    checked = expected_rows
                elif table in rollups.SPEND_TABLES:
                    spend_rows += expected_rows
                at = 2 + len(columns)  # after the counts and the key
                width = len(columns) + len(values)
                for row in found:
                    if row[2] is None or len(differences) >= limit:
                        continue  # no difference on this row (the counts alone)
                    stored = tuple(row[at : 2 + width]) if row[-2] else None
                    expected = tuple(row[2 + width : -2]) if row[-1] else None
                    differences.append(
                        rollups.RollupDifference(table, tuple(row[2:at]), stored, expected)
                    )
        if progress is not None:
            progress(len(checks), len(checks))
        return rollups.VerifyReport(checked, tuple(differences), total, spend_rows)

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


def _verify_sql(table: str, select: str, key: tuple[str, ...], values: tuple[str, ...]) -> str:
    """One table's comparison with its recomputation ``select``, on the server.

    The first row carries (rows recomputed, rows that differ); it and up to ``%(limit)s`` more
    list the differences, in key order: the key, the stored values, the recomputed ones, and
    whether each side has the key (NULLs after the counts when nothing differs). Sums of
    costs and latencies are equal within a relative 1e-9 (they were added in another order),
    as on SQLite; everything else exactly.
    """

    def differs(column: str) -> str:
        if column in _SUMMED_REALS:
            return (
                f"(s.{column} IS NULL) <> (e.{column} IS NULL) OR abs(s.{column} - e.{column}) "
                f"> 1e-9 * GREATEST(1.0, abs(e.{column}))"
            )
        return f"s.{column} IS DISTINCT FROM e.{column}"

    names = ", ".join((*key, *values))
    first = key[0]
    return (
        # The recomputation's own % signs (LIKE patterns) are literal: this SQL has parameters.
        f"WITH e ({names}) AS MATERIALIZED ({select.replace('%', '%%')}), "
        f"s AS (SELECT {names} FROM {table}), "
        "d AS MATERIALIZED (SELECT "
        + ", ".join(f"COALESCE(s.{c}, e.{c}) AS {c}" for c in key)
        + ", "
        + ", ".join(f"s.{c} AS stored_{c}" for c in values)
        + ", "
        + ", ".join(f"e.{c} AS expected_{c}" for c in values)
        + f", s.{first} IS NOT NULL AS has_stored, e.{first} IS NOT NULL AS has_expected "
        f"FROM s FULL JOIN e ON {' AND '.join(f's.{c} = e.{c}' for c in key)} "
        f"WHERE s.{first} IS NULL OR e.{first} IS NULL OR "
        + " OR ".join(f"({differs(c)})" for c in values)
        + ") SELECT (SELECT COUNT(*) FROM e), (SELECT COUNT(*) FROM d), l.* FROM (SELECT 1) AS one "
        f"LEFT JOIN LATERAL (SELECT * FROM d ORDER BY {', '.join(key)} LIMIT %(limit)s) AS l "
        "ON true"
    )


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
