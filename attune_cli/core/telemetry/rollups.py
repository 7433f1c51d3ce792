"""Hourly rollups: the figures of each (hour, workflow, stage, provider, model), kept with rows.

A read over a window of history adds up a few hundred rollup rows per model instead of
reading every call, so routing costs the same with a thousand calls or a hundred million.

Each rollup counts calls, successes, failures by class (``attune_cli.core.failures``), cost
and token sums, the part of the cost a subscription plan covered (``plan_cost_usd``: calls
with ``billing = 'subscription'``, priced at what the API would have charged), and the newest
outage. Latencies go into a histogram with logarithmic buckets
(each ``BUCKET_RATIO`` wide) that also keeps each bucket's latency total: a percentile is
read as the mean of the bucket it falls in, so it is within ``BUCKET_RATIO - 1`` (4 %) of the
exact nearest-rank value, and exact whenever the bucket holds one distinct latency.

Rollups are written in the same transaction as the rows they count (record, ``ask``, import,
prune), so they cannot disagree with them; ``attune store verify`` recomputes them from the
rows to prove it.

Which hours come from where (see ``WindowPlan``): a window's whole hours come from the
rollups; its first hour (cut by the window's start), the hour cut by outage memory, and the
current hour come from the rows, exactly. So the outage-memory boundary is exact, recent calls
are weighed by their own age, and older whole hours are weighed by the middle of their hour
(half an hour off at most, which a half-life of days does not notice).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass

from attune_cli.core.failures import FailureClass, sql_failure_class

HOUR_S = 3600
DAY_S = 86400
PLAN_COVERED = "subscription"
"""The ``billing`` of calls whose cost a subscription plan covered."""
BUCKET_RATIO = 1.04
# Latencies of zero (or below) share one bucket under every real one.
ZERO_BUCKET = -1000
_LOG_RATIO = math.log(BUCKET_RATIO)

FAILURE_COLUMNS: dict[FailureClass, str] = {
    FailureClass.QUALITY: "quality_failures",
    FailureClass.OUTAGE: "outage_failures",
    FailureClass.RATE_LIMIT: "rate_limited",
    FailureClass.CALLER_ERROR: "caller_errors",
    FailureClass.CANCELLED: "cancelled",
}

# The rollup tables (schema version 3 of the SQLite store). Primary keys lead with workflow,
# stage and model, then the hour: a model's window is one short range of each.
SCHEMA = """
CREATE TABLE rollups (
    workflow         TEXT    NOT NULL,
    stage            TEXT    NOT NULL,
    model            TEXT    NOT NULL,
    hour             INTEGER NOT NULL,   -- epoch seconds of the hour's start, UTC
    provider         TEXT    NOT NULL,   -- '' when the rows carry none
    calls            INTEGER NOT NULL,
    successes        INTEGER NOT NULL,
    quality_failures INTEGER NOT NULL,
    outage_failures  INTEGER NOT NULL,
    rate_limited     INTEGER NOT NULL,
    caller_errors    INTEGER NOT NULL,
    cancelled        INTEGER NOT NULL,
    cost_usd         REAL    NOT NULL,
    costs            INTEGER NOT NULL,   -- calls with a cost
    input_tokens     INTEGER NOT NULL,
    output_tokens    INTEGER NOT NULL,
    latencies        INTEGER NOT NULL,   -- calls with a latency
    newest_outage_ts REAL,
    PRIMARY KEY (workflow, stage, model, hour, provider)
) WITHOUT ROWID;
CREATE TABLE rollup_latency (
    workflow   TEXT    NOT NULL,
    stage      TEXT    NOT NULL,
    model      TEXT    NOT NULL,
    hour       INTEGER NOT NULL,
    provider   TEXT    NOT NULL,
    bucket     INTEGER NOT NULL,        -- floor(ln(latency_ms) / ln(BUCKET_RATIO))
    calls      INTEGER NOT NULL,
    latency_ms REAL    NOT NULL,        -- the bucket's latency total
    PRIMARY KEY (workflow, stage, model, hour, provider, bucket)
) WITHOUT ROWID;
"""

# The latency histogram again by UTC day (schema version 5): a window's whole days read one
# row per bucket a day instead of one per bucket an hour (hourly buckets barely merge: an hour
# of a model's calls mostly falls in distinct buckets), and only the hours at its edges read
# ``rollup_latency``. Kept with the rows like the hourly tables.
DAY_SCHEMA = """
CREATE TABLE rollup_latency_day (
    workflow   TEXT    NOT NULL,
    stage      TEXT    NOT NULL,
    model      TEXT    NOT NULL,
    day        INTEGER NOT NULL,        -- epoch seconds of the UTC day's start
    provider   TEXT    NOT NULL,
    bucket     INTEGER NOT NULL,
    calls      INTEGER NOT NULL,
    latency_ms REAL    NOT NULL,
    PRIMARY KEY (workflow, stage, model, day, provider, bucket)
) WITHOUT ROWID;
"""


# Spend reads (schema version 7 of the SQLite store, 4 of PostgreSQL). A year of rollups is
# some 800,000 rows when a hundred (workflow, stage, model) keys are busy each hour: too many to
# add up in well under a second. Two coarser tables are kept from the rollups by triggers (so
# every writer — record, import, prune, backfill — keeps them right without knowing of them):
# ``spend_hours`` per (hour, model, provider) and ``spend_workflow_hours`` per (workflow, hour,
# model, provider), and the same per UTC day (``spend_days``, ``spend_workflow_days``: their
# ``hour`` is the day's first), which a month's budget reads for its whole days. A report
# filtered or grouped by stage reads the rollups (index ``rollups_hour``); ``store verify`` adds
# the spend tables up again from the rollups (``spend_from_rollups``). Budget reservations
# hold the worst-case price of the calls in flight.
SPEND_TABLES: dict[str, tuple[str, ...]] = {
    "spend_hours": ("hour", "model", "provider"),
    "spend_workflow_hours": ("workflow", "hour", "model", "provider"),
    "spend_days": ("hour", "model", "provider"),
    "spend_workflow_days": ("workflow", "hour", "model", "provider"),
}
SPEND_DAY_TABLES: dict[str, str] = {
    "spend_hours": "spend_days",
    "spend_workflow_hours": "spend_workflow_days",
}
"""Each hourly spend table's daily twin."""


def _key_value(name: str, column: str, row: str) -> str:
    """The value of key ``column`` of spend table ``name`` for rollup ``row``."""
    if column == "hour" and name in SPEND_DAY_TABLES.values():
        return f"({row}.hour - {row}.hour % {DAY_S})"
    return f"{row}.{column}"


SPEND_SUMS: tuple[str, ...] = (
    "calls",
    "cost_usd",
    "costs",
    "unpriced_input_tokens",
    "unpriced_output_tokens",
    "plan_cost_usd",
)
_SPEND_REALS = ("cost_usd", "plan_cost_usd")


def spend_values(row: str) -> tuple[str, ...]:
    """The ``SPEND_SUMS`` of one rollup row (``NEW`` or ``OLD`` in a trigger)."""
    return (
        f"{row}.calls",
        f"{row}.cost_usd",
        f"{row}.costs",
        f"CASE WHEN {row}.costs = 0 THEN {row}.input_tokens ELSE 0 END",
        f"CASE WHEN {row}.costs = 0 THEN {row}.output_tokens ELSE 0 END",
        f"{row}.plan_cost_usd",
    )


def _spend_table(name: str, key: tuple[str, ...], text: str, integer: str, real: str) -> str:
    types = {"hour": integer}
    columns = [f"{c} {types.get(c, text)} NOT NULL" for c in key]
    columns += [f"{c} {real if c in _SPEND_REALS else integer} NOT NULL" for c in SPEND_SUMS]
    values = ", ".join(_key_value(name, c, "r") for c in key)
    return (
        f"CREATE TABLE {name} ({', '.join(columns)}, PRIMARY KEY ({', '.join(key)}));\n"
        f"INSERT INTO {name} ({', '.join(key + SPEND_SUMS)}) SELECT {values}, "
        f"{', '.join(f'SUM({v})' for v in spend_values('r'))} FROM rollups AS r "
        f"GROUP BY {values};\n"
    )


def spend_schema(*, text: str = "TEXT", integer: str = "INTEGER", real: str = "REAL") -> str:
    """The spend tables (filled from the existing rollups) and the reservations table."""
    tables = "".join(_spend_table(n, k, text, integer, real) for n, k in SPEND_TABLES.items())
    return (
        "CREATE INDEX rollups_hour ON rollups(hour, workflow, stage, model, provider, calls, "
        "cost_usd, costs, input_tokens, output_tokens, plan_cost_usd);\n"
        + tables
        + f"""CREATE TABLE budget_reservations (
    id         {text} NOT NULL,
    budget     {text} NOT NULL,
    amount_usd {real} NOT NULL,
    created_ts {real} NOT NULL,
    expires_ts {real} NOT NULL,
    PRIMARY KEY (id, budget)
);
CREATE INDEX budget_reservations_budget ON budget_reservations(budget, expires_ts, amount_usd);
"""
    )


def spend_from_rollups(name: str, *, integer: str = "INTEGER") -> str:
    """A SELECT of what spend table ``name`` should hold: its key, then ``SPEND_SUMS``, added
    up from the rollups as the triggers add them (``store verify`` compares the two).

    Args:
        name: one of ``SPEND_TABLES``.
        integer: the SQL type the counts are cast to (PostgreSQL's SUM of a BIGINT is a
            NUMERIC).
    """
    key = SPEND_TABLES[name]
    values = ", ".join(_key_value(name, c, "r") for c in key)
    sums = ", ".join(
        f"SUM({v})" if c in _SPEND_REALS else f"CAST(SUM({v}) AS {integer})"
        for c, v in zip(SPEND_SUMS, spend_values("r"), strict=True)
    )
    return f"SELECT {values}, {sums} FROM rollups AS r GROUP BY {values}"


def spend_upsert(name: str, row: str = "NEW", *, qualify: bool = False) -> str:
    """Add rollup ``row`` to spend table ``name`` (``qualify``: PostgreSQL's column names)."""
    key = SPEND_TABLES[name]
    prefix = f"{name}." if qualify else ""
    added = ", ".join(f"{c} = {prefix}{c} + excluded.{c}" for c in SPEND_SUMS)
    values = ", ".join((*(_key_value(name, c, row) for c in key), *spend_values(row)))
    return (
        f"INSERT INTO {name} ({', '.join(key + SPEND_SUMS)}) VALUES ({values}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {added}"
    )


def spend_subtract(name: str, row: str = "OLD") -> str:
    """Take rollup ``row`` off spend table ``name``."""
    key = SPEND_TABLES[name]
    taken = ", ".join(
        f"{c} = {c} - {v}" for c, v in zip(SPEND_SUMS, spend_values(row), strict=True)
    )
    where = " AND ".join(f"{c} = {_key_value(name, c, row)}" for c in key)
    return f"UPDATE {name} SET {taken} WHERE {where}"


def spend_forget(name: str, row: str = "OLD") -> str:
    """Delete the row of spend table ``name`` that rollup ``row`` emptied."""
    where = " AND ".join(f"{c} = {_key_value(name, c, row)}" for c in SPEND_TABLES[name])
    return f"DELETE FROM {name} WHERE {where} AND calls <= 0"


def sqlite_spend_triggers() -> str:
    """SQLite triggers keeping the spend tables equal to the sums of the rollups."""
    parts = []
    for event, body in (
        ("INSERT", [spend_upsert(n) for n in SPEND_TABLES]),
        (
            "UPDATE",
            [spend_subtract(n) for n in SPEND_TABLES] + [spend_upsert(n) for n in SPEND_TABLES],
        ),
        (
            "DELETE",
            [spend_subtract(n) for n in SPEND_TABLES] + [spend_forget(n) for n in SPEND_TABLES],
        ),
    ):
        statements = "".join(f"    {b};\n" for b in body)
        parts.append(
            f"CREATE TRIGGER rollups_spend_{event.lower()} AFTER {event} ON rollups BEGIN\n"
            f"{statements}END"
        )
    return ";\n".join(parts) + ";\n"


_COUNTS = (
    "calls",
    "successes",
    "quality_failures",
    "outage_failures",
    "rate_limited",
    "caller_errors",
    "cancelled",
    "cost_usd",
    "costs",
    "input_tokens",
    "output_tokens",
    "latencies",
    "plan_cost_usd",
)
ROLLUP_COLUMNS: tuple[str, ...] = (
    "workflow",
    "stage",
    "model",
    "hour",
    "provider",
    *_COUNTS,
    "newest_outage_ts",
)
# The key of an hourly rollup (and of its histogram rows, before the bucket), and of a daily one.
KEY = "workflow, stage, model, hour, provider"
DAY_KEY = "workflow, stage, model, day, provider"


# A latency the histogram can hold: stores written before attune refused `inf` may have one,
# and SQLite keeps NaN as NULL.
FINITE_LATENCY = "latency_ms BETWEEN -1e300 AND 1e300"


def hour_of(ts: float) -> int:
    """The start of the hour holding ``ts`` (epoch seconds)."""
    return math.floor(ts / HOUR_S) * HOUR_S


def bucket_of(latency_ms: float | None) -> int | None:
    """The histogram bucket of a latency (``ZERO_BUCKET`` for zero or less; None for none)."""
    if latency_ms is None or not math.isfinite(latency_ms):
        return None
    if latency_ms <= 0:
        return ZERO_BUCKET
    return max(math.floor(math.log(latency_ms) / _LOG_RATIO), ZERO_BUCKET + 1)


def day_of(ts: float) -> int:
    """The start of the UTC day holding ``ts`` (epoch seconds)."""
    return math.floor(ts / DAY_S) * DAY_S


def whole_days(first: int, last: int) -> tuple[int, int]:
    """The whole days [start, end) inside the hours [first, last) (start == end: none)."""
    start = -(-first // DAY_S) * DAY_S
    end = last // DAY_S * DAY_S
    return (start, end) if start < end else (last, last)


def hour_sql(ts: str = "ts", width: int = HOUR_S) -> str:
    """``hour_of`` as SQL (floor division that also holds for negative times).

    With ``width=DAY_S``: ``day_of``.
    """
    whole = f"CAST({ts} / {width} AS INTEGER)"
    return f"(({whole} - ({ts} < {whole} * {width})) * {width})"


def aggregate_sql(source: str, *, bucket_function: str = "attune_bucket") -> tuple[str, str, str]:
    """SELECTs that roll up the rows of ``source`` (a table or sub-query of calls).

    Returns:
        (rollups, latency histogram, daily latency histogram) SELECTs whose columns are
        ``ROLLUP_COLUMNS`` and (key…, bucket, calls, latency_ms), the key's hour a day there.
    """
    fc = sql_failure_class()

    def failed(kind: FailureClass) -> str:
        return f"COALESCE(SUM(fc = '{kind}'), 0)"

    rollups = (
        f"SELECT workflow, stage, model, {hour_sql()} AS hour, COALESCE(provider, '') AS provider, "
        "COUNT(*), SUM(success), "
        + ", ".join(failed(kind) for kind in FAILURE_COLUMNS)
        + ", TOTAL(cost_usd), COUNT(cost_usd), COALESCE(SUM(input_tokens), 0), "
        f"COALESCE(SUM(output_tokens), 0), COUNT(CASE WHEN {FINITE_LATENCY} THEN 1 END), "
        f"TOTAL(CASE WHEN billing = '{PLAN_COVERED}' THEN cost_usd END), "
        f"MAX(CASE WHEN fc = '{FailureClass.OUTAGE}' THEN ts END) "
        f"FROM (SELECT *, ({fc}) AS fc FROM {source}) AS r WHERE true GROUP BY 1, 2, 3, 4, 5"
    )
    histogram = (
        f"SELECT workflow, stage, model, {hour_sql()} AS hour, COALESCE(provider, '') AS provider, "
        f"{bucket_function}(latency_ms) AS bucket, COUNT(*), TOTAL(latency_ms) "
        f"FROM {source} AS r WHERE {FINITE_LATENCY} GROUP BY 1, 2, 3, 4, 5, 6"
    )
    daily = histogram.replace(f"{hour_sql()} AS hour", f"{hour_sql(width=DAY_S)} AS day")
    return rollups, histogram, daily


def daily_from_hourly_sql(condition: str = "true") -> str:
    """A SELECT adding ``rollup_latency``'s hours (those matching ``condition``) up by day."""
    return (
        f"SELECT workflow, stage, model, {hour_sql('hour', DAY_S)} AS day, provider, bucket, "
        f"SUM(calls), TOTAL(latency_ms) FROM rollup_latency WHERE {condition} "
        "GROUP BY 1, 2, 3, 4, 5, 6"
    )


_NEW_HISTOGRAM = "temp.attune_new_latency"


@functools.lru_cache(maxsize=32)
def upsert_sql(source: str, *, bucket_function: str = "attune_bucket") -> tuple[str, ...]:
    """Statements that add the rollups of ``source``'s rows to the rollup tables.

    Cached: every recorded call asks for the same statements (building them took a third
    of a ms).

    The rows' hourly histogram is worked out once, into a temporary table, and added to both
    the hourly and the daily histogram from there (each row's bucket is a function call).
    """
    rollups, histogram, _ = aggregate_sql(source, bucket_function=bucket_function)
    added = ", ".join(f"{c} = {c} + excluded.{c}" for c in _COUNTS)
    newest = (
        "newest_outage_ts = CASE WHEN excluded.newest_outage_ts IS NULL THEN newest_outage_ts "
        "WHEN newest_outage_ts IS NULL OR excluded.newest_outage_ts > newest_outage_ts "
        "THEN excluded.newest_outage_ts ELSE newest_outage_ts END"
    )
    day = hour_sql("hour", DAY_S)
    return (
        f"INSERT INTO rollups ({', '.join(ROLLUP_COLUMNS)}) {rollups} "
        f"ON CONFLICT ({KEY}) DO UPDATE SET {added}, {newest}",
        f"CREATE TEMP TABLE IF NOT EXISTS {_NEW_HISTOGRAM.removeprefix('temp.')} "
        f"({KEY}, bucket, calls, latency_ms)",
        f"DELETE FROM {_NEW_HISTOGRAM}",
        f"INSERT INTO {_NEW_HISTOGRAM} {histogram}",
        f"INSERT INTO rollup_latency ({KEY}, bucket, calls, latency_ms) "
        f"SELECT * FROM {_NEW_HISTOGRAM} WHERE true "
        f"ON CONFLICT ({KEY}, bucket) DO UPDATE SET calls = calls + excluded.calls, "
        "latency_ms = latency_ms + excluded.latency_ms",
        f"INSERT INTO rollup_latency_day ({DAY_KEY}, bucket, calls, latency_ms) "
        f"SELECT workflow, stage, model, {day}, provider, bucket, SUM(calls), TOTAL(latency_ms) "
        f"FROM {_NEW_HISTOGRAM} WHERE true GROUP BY 1, 2, 3, 4, 5, 6 "
        f"ON CONFLICT ({DAY_KEY}, bucket) DO UPDATE SET calls = calls + excluded.calls, "
        "latency_ms = latency_ms + excluded.latency_ms",
    )


@dataclass(frozen=True)
class WindowPlan:
    """Which part of a window ``[since, ∞)`` is read from rollups and which from rows.

    Attributes:
        rollup_ranges: [first, last) hour ranges read from rollups.
        row_ranges: [start, end) time ranges read from rows, exactly.
    """

    rollup_ranges: tuple[tuple[int, int], ...]
    row_ranges: tuple[tuple[float, float], ...]

    @classmethod
    def of(cls, since: float, now: float, outage_since: float) -> WindowPlan:
        """Plan a window: exact rows at its edges, rollups for the whole hours between.

        The rows cover the first hour (when ``since`` cuts it), the hour ``outage_since`` cuts,
        and everything from the current hour on.
        """
        current = hour_of(now)
        if since >= current:
            return cls((), ((since, math.inf),))
        first = UNBOUNDED_HOUR if since == -math.inf else hour_of(since)
        row_hours = {current}
        if since > first:
            row_hours.add(first)
        if outage_since != -math.inf and hour_of(outage_since) != outage_since:
            row_hours.add(hour_of(outage_since))
        ordered = sorted(hour for hour in row_hours if first <= hour <= current)
        rows = tuple(
            (max(float(hour), since), math.inf if hour == current else float(hour + HOUR_S))
            for hour in ordered
        )
        ranges: list[tuple[int, int]] = []
        start = first
        for hour in ordered:
            if hour > start:
                ranges.append((start, hour))
            start = hour + HOUR_S
        return cls(tuple(ranges), rows)


UNBOUNDED_HOUR = -(2**62)


def percentile(
    exact: list[float], buckets: Iterable[tuple[int, float]], count: int, percent: int
) -> float | None:
    """Nearest-rank percentile over exact latencies and (calls, latency total) buckets.

    A bucket stands for ``calls`` latencies at its mean; the result is exact for the exact
    values and within one bucket's width (``BUCKET_RATIO``) for the rest.

    Args:
        exact: latencies read from rows.
        buckets: (calls, latency total) of histogram buckets read from rollups.
        count: how many latencies there are in all.
        percent: 50 for the median, 95 for p95.
    """
    if count <= 0:
        return None
    points = [(value, 1) for value in exact]
    points.extend((total / calls, calls) for calls, total in buckets if calls)
    points.sort()
    rank = (count * percent + 99) // 100
    seen = 0
    for value, weight in points:
        seen += weight
        if seen >= rank:
            return value
    return points[-1][0] if points else None


@dataclass(frozen=True)
class RollupDifference:
    """One rollup that differs from what its rows add up to.

    Attributes:
        table: ``rollups``, ``rollup_latency`` or ``rollup_latency_day`` (recomputed from the
            rows), or one of ``SPEND_TABLES`` (recomputed from the rollups).
        key: (workflow, stage, model, hour, provider[, bucket]) for the rollups; the spend
            table's key (``SPEND_TABLES``) for a spend table.
        stored: the stored figures (None: missing).
        expected: the figures recomputed (None: there should be none).
    """

    table: str
    key: tuple[object, ...]
    stored: tuple[object, ...] | None
    expected: tuple[object, ...] | None


@dataclass(frozen=True)
class VerifyReport:
    """What ``store verify`` found.

    Attributes:
        rollups: rollup rows checked (recomputed from the rows).
        differences: every difference found (at most ``limit`` of them listed).
        total_differences: how many there were in all.
        spend_rows: spend table rows checked (recomputed from the rollups).
    """

    rollups: int
    differences: tuple[RollupDifference, ...]
    total_differences: int
    spend_rows: int = 0

    @property
    def ok(self) -> bool:
        """Whether the rollups and spend tables equal their recomputation."""
        return self.total_differences == 0


def postgres_spend_triggers() -> str:
    """The PostgreSQL trigger (one function, row level) doing what ``sqlite_spend_triggers``
    does."""
    subtract = "".join(f"        {spend_subtract(n)};\n" for n in SPEND_TABLES)
    forget = "".join(f"        {spend_forget(n)};\n" for n in SPEND_TABLES)
    add = "".join(f"        {spend_upsert(n, qualify=True)};\n" for n in SPEND_TABLES)
    return f"""CREATE FUNCTION attune_spend_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
{subtract}    END IF;
    IF TG_OP = 'DELETE' THEN
{forget}    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
{add}    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER rollups_spend AFTER INSERT OR UPDATE OR DELETE ON rollups
    FOR EACH ROW EXECUTE FUNCTION attune_spend_rollup();
"""


def _spend_delta(name: str, sources: tuple[tuple[str, str], ...]) -> str:
    """A SELECT of what ``sources`` (transition tables, each with a sign) add to spend ``name``.

    Grouped and sorted by the spend table's key, so a writer touches its rows in key order.
    """
    key = SPEND_TABLES[name]
    keys = ", ".join(f"{_key_value(name, c, 'r')} AS {c}" for c in key)
    arms = " UNION ALL ".join(
        f"SELECT {keys}, "
        + ", ".join(
            f"{sign}{value} AS {column}"
            for column, value in zip(SPEND_SUMS, spend_values("r"), strict=True)
        )
        + f" FROM {table} AS r"
        for table, sign in sources
    )
    columns = ", ".join(key)
    return (
        f"SELECT {columns}, {', '.join(f'SUM({c})' for c in SPEND_SUMS)} FROM ({arms}) AS d "
        f"GROUP BY {columns} ORDER BY {columns}"
    )


def postgres_spend_statement_triggers() -> str:
    """PostgreSQL triggers, one per statement, keeping the spend tables equal to the rollups.

    What ``postgres_spend_triggers`` does row by row (a PL/pgSQL call and four upserts per
    rollup row: 60 % of an import's time), done once per statement from its transition tables:
    each spend table gets one upsert of the statement's rows added up by its key (the new rows
    minus the old), and a delete forgets the spend rows it emptied.
    """
    body = {
        "INSERT": (("attune_new", ""),),
        "UPDATE": (("attune_new", ""), ("attune_old", "-")),
        "DELETE": (("attune_old", "-"),),
    }
    parts = []
    for event, sources in body.items():
        statements = []
        for name, key in SPEND_TABLES.items():
            added = ", ".join(f"{c} = {name}.{c} + excluded.{c}" for c in SPEND_SUMS)
            statements.append(
                f"INSERT INTO {name} ({', '.join(key + SPEND_SUMS)}) "
                f"{_spend_delta(name, sources)} "
                f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {added}"
            )
            if event == "DELETE":
                emptied = " AND ".join(f"s.{c} = d.{c}" for c in key)
                keys = ", ".join(f"{_key_value(name, c, 'r')} AS {c}" for c in key)
                statements.append(
                    f"DELETE FROM {name} AS s USING (SELECT DISTINCT {keys} FROM attune_old "
                    f"AS r) AS d WHERE {emptied} AND s.calls <= 0"
                )
        # A statement that changed no rollup (a record of a call already there) adds nothing.
        lines = f"    IF NOT EXISTS (SELECT FROM {sources[0][0]}) THEN RETURN NULL; END IF;\n"
        lines += "".join(f"    {s};\n" for s in statements)
        tables = " ".join(
            f"{'NEW' if table == 'attune_new' else 'OLD'} TABLE AS {table}" for table, _ in sources
        )
        function = f"attune_spend_{event.lower()}"
        parts.append(
            f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
            f"{lines}    RETURN NULL;\nEND $$;\n"
            f"CREATE TRIGGER rollups_spend_{event.lower()} AFTER {event} ON rollups "
            f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION {function}();\n"
        )
    return (
        "DROP TRIGGER rollups_spend ON rollups;\nDROP FUNCTION attune_spend_rollup();\n"
        + "".join(parts)
    )
