"""The team store on PostgreSQL: COPY import rate, ``record`` p95 under 8 writers, and
``route explain`` / ``telemetry models`` as whole processes, each beside a reference measured
in the same run (on a shared machine the absolute figures move with other work):

* importing ``--rows`` calls (default 1M, 30 days) with their rollups: ≥ 50k rows/s;
  references: a plain ``COPY`` of the same rows into a table without indexes, and into a
  table with the indexes of ``calls`` but no rollups (the most an import can reach while
  ``calls`` keeps the indexes its reads need);
* ``record`` p95 with 8 writing processes at once: ≤ 10 ms; references: the p95 of a
  ``SELECT 1`` round trip and of a one-row ``INSERT`` committed (one WAL flush, the floor of
  any durable write) that each writer times between its records, under the same load;
* the store reads behind a decision (``model_performance`` over 30 days) in-process, for one
  stage and for every pair: the server's share of the commands below;
* ``attune route explain``, ``attune telemetry models`` (every pair, and one workflow's):
  median whole-process wall time ≤ 0.25 s, and the median CPU time of the process; references:
  ``attune --version`` (the start-up every command pays), ``import psycopg`` after the
  modules the same command imports on SQLite (what the driver adds to every command here), and
  the stack alone (typer, Rich, sqlite3 and psycopg imported, a connection, ``SELECT 1``, a
  one-row table printed: the floor under any command before attune's own code runs).

Each run uses a schema of its own in the database at ``--url`` (default: ``ATTUNE_TEST_PG_URL``
or the local server's ``postgres`` database) and drops it. ``--check`` exits 1 when a target is
missed. Measured processes run with bytecode caching on, as an installed attune does.

Usage::

    python benchmarks/postgres.py --rows 1000000 --check
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from history import HistorySpec, history_row, iter_history
from startup import attune_command, time_runs_ms

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

WRITER = """
import json, sys, time
from attune_cli.core.telemetry.postgres import PostgresCallStore
from attune_cli.core.telemetry.records import CallRecord
times, trips, commits = [], [], []
with PostgresCallStore(sys.argv[1]) as store:
    for i in range(int(sys.argv[2])):
        started = time.perf_counter()
        store.record(CallRecord("bench", "write", f"m-{i % 4}", i % 5 != 0, latency_ms=50.0 + i))
        times.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        store.raw.execute("SELECT 1").fetchone()
        trips.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        store.raw.execute("INSERT INTO bench_commit VALUES (%s)", (i,))
        commits.append((time.perf_counter() - started) * 1000)
print(json.dumps([times, trips, commits]))
"""


def history_rows(rows: int) -> list[tuple[object, ...]]:
    """``rows`` generated calls over 30 days, materialised (generation is not the store's cost)."""
    spec = HistorySpec(rows=rows, days=30)
    return [history_row(call, f"g{index:x}") for index, call in enumerate(iter_history(spec))]


def import_rate(url: str, rows: list[tuple[object, ...]]) -> tuple[float, float, float]:
    """Rows/s of ``insert_rows`` with rollups; of a plain COPY of the same rows into a table
    without indexes; and of a COPY into a table with the indexes of ``calls`` (no rollups: the
    most an import that keeps those indexes could reach)."""
    from attune_cli.core.telemetry.postgres import COLUMNS, PostgresCallStore

    with PostgresCallStore(url) as store:
        started = time.perf_counter()
        with store.bulk_transaction():
            added = store.insert_rows(rows)
        elapsed = time.perf_counter() - started
        assert added == len(rows), (added, len(rows))
        assert store.verify().ok
        references = []
        for like in ("", " INCLUDING INDEXES"):
            store.raw.execute(f"CREATE TABLE reference_copy (LIKE calls{like})")
            started = time.perf_counter()
            with (
                store.raw.cursor() as cursor,
                cursor.copy(f"COPY reference_copy ({', '.join(COLUMNS)}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            references.append(len(rows) / (time.perf_counter() - started))
            store.raw.execute("DROP TABLE reference_copy")
        for table in ("calls", "rollups", "latency_hours", "latency_days"):
            store.raw.execute(f"VACUUM ANALYZE {table}")  # as autovacuum would, before reads
    return len(rows) / elapsed, references[0], references[1]


def window_ms(url: str, workflow: str | None, stage: str | None, runs: int) -> float:
    """Median ms of the store reads behind a routing decision (``model_performance``: one
    30-day window, the pairs, rollups, edges and the newest calls) on a connection already open.
    """
    from attune_cli.core.performance import ScoreWeights
    from attune_cli.core.telemetry.postgres import PostgresCallStore

    times: list[float] = []
    with PostgresCallStore(url) as store:
        now = time.time()
        for _ in range(runs + 1):
            started = time.perf_counter()
            store.model_performance(
                workflow=workflow,
                stage=stage,
                since_ts=now - 30 * 86400,
                weights=ScoreWeights(),
                half_life_s=7 * 86400,
                now=now,
                outage_since_ts=now - 86400,
            )
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times[1:])


def record_p95(url: str, writers: int, per_writer: int) -> tuple[float, float, float]:
    """p95s in ms, ``writers`` at once: ``record``, a ``SELECT 1`` round trip, and a one-row
    INSERT committed (the floor of any durable write: one WAL flush)."""
    from attune_cli.core.telemetry.postgres import PostgresCallStore

    with PostgresCallStore(url) as store:
        store.raw.execute("CREATE TABLE IF NOT EXISTS bench_commit (i INTEGER)")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, str(per_writer)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(writers)
    ]
    series: list[list[float]] = [[], [], []]
    for proc in procs:
        for kept, found in zip(series, json.loads(proc.communicate()[0]), strict=True):
            kept += found[20:]  # after warm-up
    times, trips, commits = (sorted(values) for values in series)
    return (
        times[int(len(times) * 0.95)],
        trips[int(len(trips) * 0.95)],
        commits[int(len(commits) * 0.95)],
    )


def process_s(env: dict[str, str], args: list[str], runs: int) -> tuple[float, float]:
    """(median wall, median CPU) seconds of ``attune ARGS`` as a whole process."""
    command = [*attune_command(), *args]
    time_runs_ms(command, 1, env)  # warm-up: file cache, .pyc files, the server's cache
    wall_ms, cpu_ms = time_runs_ms(command, runs, env)
    return statistics.median(wall_ms) / 1000, statistics.median(cpu_ms) / 1000


def process_env(url: str, home: Path) -> dict[str, str]:
    """The environment of a measured process: an empty ``home`` pointed at ``url``."""
    env = {**os.environ, "ATTUNE_HOME": str(home), "ATTUNE_STORE_URL": url, "COLUMNS": "100"}
    for name in ("PYTHONDONTWRITEBYTECODE", "ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        env.pop(name, None)
    return env


# What ``route explain`` imports on SQLite too, so that the reference ``import psycopg`` counts
# only the modules the driver adds (asyncio, ctypes, importlib.metadata, its type adapters ...).
SQLITE_COMMAND_MODULES = (
    "attune_cli.cli.app, attune_cli.cli.route, attune_cli.core.routing.router, "
    "attune_cli.core.telemetry.sqlite, rich.console, rich.table"
)

# The floor of any command on this stack, attune's own code left out: the libraries a command
# imports (typer, Rich, sqlite3 and the driver), a connection, one round trip and a table of one
# row printed. A command's wall time minus this is what attune's own code costs.
STACK_FLOOR = """
import os, sqlite3, typer, rich.console, rich.table, psycopg
with psycopg.connect(os.environ["ATTUNE_STORE_URL"], autocommit=True) as conn:
    conn.execute("SELECT 1").fetchall()
table = rich.table.Table("model", "calls")
table.add_row("m", "1")
rich.console.Console().print(table)
"""

COMMANDS: tuple[tuple[str, list[str]], ...] = (
    (
        "route explain analysis -w code-review",
        ["route", "explain", "analysis", "-w", "code-review"],
    ),
    ("telemetry models (every pair)", ["telemetry", "models"]),
    ("telemetry models -w code-review", ["telemetry", "models", "-w", "code-review"]),
)


def scratch_schema(base_url: str) -> tuple[str, str]:
    """A new schema in ``base_url``'s database, and a URL whose search path is that schema."""
    import psycopg

    schema = f"attune_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    joiner = "&" if "?" in base_url else "?"
    return schema, f"{base_url}{joiner}options=-csearch_path%3D{schema}"


def drop_schema(base_url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("ATTUNE_TEST_PG_URL", DEFAULT_URL))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--check", action="store_true")
    parser.add_argument(
        "--parts",
        default="import,record,process",
        help="which measurements to run (comma-separated: import, record, process)",
    )
    options = parser.parse_args()
    parts = set(options.parts.split(","))

    rows = history_rows(options.rows) if {"import", "process"} & parts else []
    schema, url = scratch_schema(options.url)
    missed: list[str] = []
    scratch = tempfile.TemporaryDirectory(prefix="attune-bench-")
    try:
        if "import" in parts or "process" in parts:
            rate, copy_rate, indexed_rate = import_rate(url, rows)
        if "import" in parts:
            print(
                f"COPY import of {options.rows:,} rows with rollups: {rate:,.0f} rows/s "
                f"(≥ 50,000); references: plain COPY, no indexes: {copy_rate:,.0f} rows/s "
                f"({rate / copy_rate:.2f} of it); COPY into a table with the indexes of calls, "
                f"no rollups: {indexed_rate:,.0f} rows/s ({rate / indexed_rate:.2f} of it)",
                flush=True,
            )
            if rate < 50_000:
                missed.append("import")
        if "record" in parts:
            p95, trip_p95, commit_p95 = record_p95(url, 8, 220)
            print(
                f"record p95 with 8 writers: {p95:.2f} ms (≤ 10); "
                f"references in the same writers: SELECT 1 p95 {trip_p95:.2f} ms, "
                f"one-row INSERT committed p95 {commit_p95:.2f} ms",
                flush=True,
            )
            if p95 > 10:
                missed.append("record")
        if "process" in parts:
            for label, workflow, stage in (
                ("one stage (analysis, code-review)", "code-review", "analysis"),
                ("every pair", None, None),
            ):
                reads = window_ms(url, workflow, stage, options.runs)
                print(f"store reads of a decision, {label}: {reads:.1f} ms", flush=True)
            env = process_env(url, Path(scratch.name))
            version_wall, version_cpu = process_s(env, ["--version"], options.runs)
            print(
                f"{'attune --version (reference)':<40} wall {version_wall:.3f} s, "
                f"cpu {version_cpu:.3f} s",
                flush=True,
            )
            without, with_driver = (
                statistics.median(
                    time_runs_ms([sys.executable, "-c", f"import {modules}"], options.runs, env)[0]
                )
                for modules in (SQLITE_COMMAND_MODULES, f"{SQLITE_COMMAND_MODULES}, psycopg")
            )
            print(
                f"{'import psycopg (reference)':<40} wall {(with_driver - without) / 1000:.3f} s "
                "over what the same command imports on SQLite",
                flush=True,
            )
            floor = (
                statistics.median(
                    time_runs_ms([sys.executable, "-c", STACK_FLOOR], options.runs, env)[0]
                )
                / 1000
            )
            print(
                f"{'the stack alone (reference)':<40} wall {floor:.3f} s: typer, Rich, sqlite3 "
                "and psycopg imported, a connection, SELECT 1, a one-row table printed",
                flush=True,
            )
            for label, args in COMMANDS:
                wall, cpu = process_s(env, args, options.runs)
                print(
                    f"{label:<40} wall {wall:.3f} s, cpu {cpu:.3f} s (≤ 0.25 s wall), "
                    f"{wall - floor:.3f} s over the stack alone"
                    f"{'' if wall <= 0.25 else '  MISSED'}",
                    flush=True,
                )
                if wall > 0.25:
                    missed.append(label)
    finally:
        drop_schema(options.url, schema)
        scratch.cleanup()
    print(f"(load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores)")
    return 1 if options.check and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
