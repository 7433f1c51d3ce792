"""The team store on PostgreSQL: COPY import rate, ``record`` p95 under 8 writers, and
``route explain`` / ``telemetry models`` as whole processes.

Each run uses a schema of its own in the database at ``--url`` (default: the local server's
``postgres`` database) and drops it. Prints medians; ``--check`` exits 1 when a target is
missed:

* importing ``--rows`` calls (default 1M) with their rollups: ≥ 50k rows/s;
* ``record`` p95 with 8 writing processes at once: ≤ 10 ms;
* ``attune route explain`` and ``attune telemetry models`` whole-process: ≤ 0.25 s.

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

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

WRITER = """
import json, sys, time
from attune_cli.core.telemetry.postgres import PostgresCallStore
from attune_cli.core.telemetry.records import CallRecord
times = []
with PostgresCallStore(sys.argv[1]) as store:
    for i in range(int(sys.argv[2])):
        started = time.perf_counter()
        store.record(CallRecord("bench", "write", f"m-{i % 4}", i % 5 != 0, latency_ms=50.0 + i))
        times.append((time.perf_counter() - started) * 1000)
print(json.dumps(times))
"""


def import_rate(url: str, rows: int) -> float:
    from attune_cli.core.telemetry.postgres import PostgresCallStore

    spec = HistorySpec(rows=rows, days=30)

    def generated() -> object:
        for index, call in enumerate(iter_history(spec)):
            yield history_row(call, f"g{index:x}")

    materialised = list(generated())  # generation is not the store's cost
    with PostgresCallStore(url) as store:
        started = time.perf_counter()
        with store.bulk_transaction():
            added = store.insert_rows(materialised)
        elapsed = time.perf_counter() - started
        assert added == rows, (added, rows)
        assert store.verify().ok
    return rows / elapsed


def record_p95(url: str, writers: int, per_writer: int) -> float:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, str(per_writer)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(writers)
    ]
    times: list[float] = []
    for proc in procs:
        times += json.loads(proc.communicate()[0])[20:]  # after warm-up
    times.sort()
    return times[int(len(times) * 0.95)]


def process_s(url: str, args: list[str], runs: int) -> float:
    home = Path(tempfile.mkdtemp(prefix="attune-bench-"))
    env = {**os.environ, "ATTUNE_HOME": str(home), "ATTUNE_STORE_URL": url}
    times = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "attune_cli", *args],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("ATTUNE_TEST_PG_URL", DEFAULT_URL))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--check", action="store_true")
    options = parser.parse_args()
    import psycopg

    schema = f"attune_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(options.url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    joiner = "&" if "?" in options.url else "?"
    url = f"{options.url}{joiner}options=-csearch_path%3D{schema}"
    try:
        rate = import_rate(url, options.rows)
        print(f"COPY import of {options.rows:,} rows with rollups: {rate:,.0f} rows/s (≥ 50,000)")
        p95 = record_p95(url, 8, 220)
        print(f"record p95 with 8 writers: {p95:.2f} ms (≤ 10)")
        explain = process_s(
            url, ["route", "explain", "analysis", "--workflow", "code-review"], options.runs
        )
        print(f"route explain, whole process, median: {explain:.3f} s (≤ 0.25)")
        models = process_s(url, ["telemetry", "models"], options.runs)
        print(f"telemetry models, whole process, median: {models:.3f} s (≤ 0.25)")
    finally:
        with psycopg.connect(options.url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    missed = rate < 50_000 or p95 > 10 or explain > 0.25 or models > 0.25
    return 1 if options.check and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
