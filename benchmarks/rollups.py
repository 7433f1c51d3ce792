"""Cost flat in history size: routing and ``telemetry models`` on a small and a large history,
on SQLite and (with ``--pg-url``) PostgreSQL, all in the same run.

Builds two histories with ``benchmarks/history.py``: ``--small`` calls over 30 days and
``--large`` calls over 365 days (defaults 1M and 10M, the issue's figures), each as a SQLite
store and, with ``--pg-url``, as a PostgreSQL schema (kept for the next run; ``--rebuild``
makes them again). Then prints medians for each store and size:

* ``AdaptiveModelRouter.get_best_model`` in a warm process (target: ≤ 10 ms): CPU time on
  SQLite, beside the same decision reading the hourly latency histogram only; wall time on
  PostgreSQL (the work is the server's);
* ``attune route explain analysis --workflow code-review`` and ``attune telemetry models
  --workflow code-review`` as whole processes, wall and CPU time (target: ≤ 0.2 s wall on
  SQLite, 0.25 s on PostgreSQL), beside ``attune --version`` measured in the same run;
* large / small for each figure (target: ≤ 1.3x).

Measured processes run with bytecode caching on, as an installed attune does.

Usage::

    python benchmarks/rollups.py --small 10000 --large 1000000 --pg-url postgresql://...
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from history import HistorySpec, build_store, history_row, iter_history
from startup import attune_command, time_runs_ms

WORKFLOW, STAGE = "code-review", "analysis"


def in_process_ms(store: Any, home: Path, runs: int) -> tuple[float, float | None]:
    """Median ms of one routing decision (``get_best_model``) in a warm process, and on SQLite
    the same decision reading the hourly latency histogram only (before the daily one)."""
    from attune_cli.core.registry import load_registry
    from attune_cli.core.routing.router import AdaptiveModelRouter
    from attune_cli.core.telemetry import sqlite

    # SQLite's work is this process's CPU time (steadier than wall time on a busy machine);
    # PostgreSQL's is mostly the server's, so there the wall time is what counts.
    clock = time.process_time if type(store) is sqlite.TelemetryStore else time.perf_counter

    def median_ms(router: AdaptiveModelRouter) -> float:
        router.get_best_model(WORKFLOW, STAGE)
        times = []
        for _ in range(runs):
            started = clock()
            router.get_best_model(WORKFLOW, STAGE)
            times.append((clock() - started) * 1000)
        return statistics.median(times)

    with store:
        router = AdaptiveModelRouter(store, load_registry({}, home / "config.toml"))
        decision = median_ms(router)
        if type(store) is not sqlite.TelemetryStore:
            return decision, None
        daily = sqlite._histogram_ranges
        sqlite._histogram_ranges = lambda first, last: (last, last, first, last, last, last)
        try:
            return decision, median_ms(router)
        finally:
            sqlite._histogram_ranges = daily


def process_s(env: dict[str, str], args: list[str], runs: int) -> tuple[float, float]:
    """(median wall, median CPU) seconds of ``attune ARGS`` as a whole process."""
    command = [*attune_command(), *args]
    time_runs_ms(command, 1, env)  # warm-up
    wall_ms, cpu_ms = time_runs_ms(command, runs, env)
    return statistics.median(wall_ms) / 1000, statistics.median(cpu_ms) / 1000


def _env(home: Path, url: str | None) -> dict[str, str]:
    env = {**os.environ, "ATTUNE_HOME": str(home), "COLUMNS": "100"}
    for name in ("PYTHONDONTWRITEBYTECODE", "ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        env.pop(name, None)
    if url is not None:
        env["ATTUNE_STORE_URL"] = url
    else:
        env.pop("ATTUNE_STORE_URL", None)
    return env


def build_pg(base_url: str, schema: str, spec: HistorySpec, rebuild: bool) -> str:
    """A schema holding ``spec``'s calls (reused when it holds them already); its URL."""
    import psycopg

    from attune_cli.core.telemetry.postgres import PostgresCallStore

    joiner = "&" if "?" in base_url else "?"
    url = f"{base_url}{joiner}options=-csearch_path%3D{schema}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'calls'", (schema,)
        ).fetchone()
        if found and not rebuild:
            count = conn.execute(f"SELECT COUNT(*) FROM {schema}.calls").fetchone()
            if count and count[0] == spec.rows:
                return url
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
    names: set[tuple[str, str, str]] = set()

    def rows() -> Any:
        for index, call in enumerate(iter_history(spec)):
            names.add((call.workflow, call.stage, call.model))
            yield history_row(call, f"g{spec.seed:x}-{index:x}")

    started = time.perf_counter()
    with PostgresCallStore(url) as store:
        with store.bulk_transaction():
            store.insert_rows(rows())
            store.add_labels(names)
        for table in ("calls", "rollups", "latency_hours", "latency_days"):
            store.raw.execute(f"VACUUM ANALYZE {table}")  # as autovacuum would
    print(
        f"  postgresql {schema}: built {spec.rows:,} calls in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=1_000_000)
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--pg-url", default=None, help="also measure PostgreSQL (a database URL)")
    parser.add_argument("--rebuild", action="store_true", help="build the histories again")
    parser.add_argument(
        "--pg-schema-prefix",
        default="attune_bench_rollups_",
        help="PostgreSQL schemas are this prefix and the call count (kept between runs)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / ".data" / "rollups")
    options = parser.parse_args()
    end = float(int(time.time()) // 60 * 60)
    results: dict[tuple[str, str], tuple[float, ...]] = {}
    stores = ["sqlite"] + (["postgresql"] if options.pg_url else [])
    for name, rows, days in (("small", options.small, 30.0), ("large", options.large, 365.0)):
        spec = HistorySpec(rows=rows, days=days, end_ts=end)
        home = options.out / f"{name}-{rows}"
        home.mkdir(parents=True, exist_ok=True)
        path = home / "telemetry.db"
        if options.rebuild or not path.exists():
            started = time.perf_counter()
            build_store(spec, path)
            print(
                f"  sqlite {name}: built {rows:,} calls over {days:.0f} days in "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )
        url = None
        if options.pg_url:
            url = build_pg(
                options.pg_url, f"{options.pg_schema_prefix}{rows}", spec, options.rebuild
            )
        for backend in stores:
            from attune_cli.core.telemetry.postgres import PostgresCallStore
            from attune_cli.core.telemetry.sqlite import TelemetryStore

            store_url = url if backend == "postgresql" else None
            # A PostgreSQL run gets a home of its own: the SQLite store would be its spool.
            run_home = home / "pg-home" if store_url else home
            run_home.mkdir(exist_ok=True)
            store = (
                PostgresCallStore(store_url)
                if store_url
                else TelemetryStore(path, create=False, read_only=True)
            )
            env = _env(run_home, store_url)
            decision_ms, hourly_ms = in_process_ms(store, run_home, options.runs * 3)
            figures = (
                decision_ms,
                *process_s(env, ["route", "explain", STAGE, "-w", WORKFLOW], options.runs),
                *process_s(env, ["telemetry", "models", "-w", WORKFLOW], options.runs),
                *process_s(env, ["--version"], options.runs),
            )
            results[(backend, name)] = figures
            decision, explain, explain_cpu, models, models_cpu, version, version_cpu = figures
            hourly = "" if hourly_ms is None else f" (hourly histogram only: {hourly_ms:.1f} ms)"
            print(
                f"{backend:<10} {name} ({rows:,} calls, {days:.0f} days): decision "
                f"{decision:.1f} ms{hourly}; route explain {explain:.3f} s "
                f"(cpu {explain_cpu:.3f}); "
                f"telemetry models {models:.3f} s (cpu {models_cpu:.3f}); reference "
                f"--version {version:.3f} s (cpu {version_cpu:.3f})",
                flush=True,
            )
    for backend in stores:
        small, large = results[(backend, "small")], results[(backend, "large")]
        ratios = [b / a for a, b in zip(small, large, strict=True)]
        print(
            f"{backend:<10} large / small: decision {ratios[0]:.2f}x, route explain "
            f"{ratios[1]:.2f}x, telemetry models {ratios[3]:.2f}x (--version {ratios[5]:.2f}x)"
        )
    print(f"(load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
