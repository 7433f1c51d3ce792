"""Spend reports and budgets at a large history: whole processes, and what a budget adds to ask.

Builds (or reuses) a store of ``--rows`` calls over ``--days`` days with
``benchmarks/history.py`` (5 workflows × 4 stages × 6 models, so some 120 rollup keys are busy
each hour), then prints medians of ``--runs`` runs, each beside a reference measured in the
same run (the machine may be loaded; compare ratios):

* whole processes: ``attune spend --by day --days 365`` (``--json`` and the table) and
  ``attune budget status --json`` (target ≤ 0.3 s), ``attune route simulate --days 30``
  (target ≤ 2 s), beside ``attune --version`` and ``attune route explain`` (whose own target
  is 0.2 s);
* in one process: ``attune ask`` against the provider emulator with and without budgets
  configured (target: ≤ 2 ms more), and the budget check + reservation + release alone.

With ``--pg-url`` the same calls are loaded into a throwaway PostgreSQL schema and the whole
process figures are measured there too; ``--pg-store-url`` measures a store already loaded
instead (e.g. the 10M-call schema ``benchmarks/rollups.py --pg-url`` keeps), and leaves it.

Usage::

    python benchmarks/spend.py --rows 10000000 --out /tmp/bench-spend
    python benchmarks/spend.py --rows 2000000 --out /tmp/bench-spend --pg-url postgresql://...
    python benchmarks/spend.py --rows 10000000 --out DIR \
        --pg-store-url 'postgresql://...?options=-csearch_path%3Dattune_bench_rollups_10000000'
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from history import HistorySpec, build_store, history_row, iter_history

BUDGETS = """[budgets]
timezone = "UTC"

[budgets."*"]
monthly_usd = 1000000

[budgets.code-review]
monthly_usd = 1000000
daily_usd = 100000
"""


def process_s(home: Path, args: list[str], runs: int, env: dict[str, str] | None = None) -> float:
    """Median wall time of ``attune ARGS`` as a whole process (one warm-up run first)."""
    environ = {**os.environ, "ATTUNE_HOME": str(home), **(env or {})}
    times = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "attune_cli", *args],
            env=environ,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def print_processes(home: Path, runs: int, env: dict[str, str] | None = None) -> None:
    version = process_s(home, ["--version"], runs, env)
    explain = process_s(home, ["route", "explain", "analysis", "-w", "code-review"], runs, env)
    print(f"  reference: attune --version {version:.3f} s; route explain {explain:.3f} s")
    for label, args in (
        ("spend --by day --days 365 --json", ["spend", "--by", "day", "--days", "365", "--json"]),
        ("spend --by day --days 365 (table)", ["spend", "--by", "day", "--days", "365"]),
        (
            "spend --by model --days 365 -w code-review",
            ["spend", "--by", "model", "--days", "365", "-w", "code-review"],
        ),
        ("budget status --json", ["budget", "status", "--json"]),
        (
            "route simulate --days 30",
            [
                "route",
                "simulate",
                "analysis",
                "-w",
                "code-review",
                "--max-cost",
                "0.005",
                "--days",
                "30",
                "--json",
            ],
        ),
    ):
        took = process_s(home, args, runs, env)
        target = 2.0 if args[0] == "route" else 0.3
        print(f"  {label}: {took:.3f} s (target ≤ {target}; {took / explain:.2f}× route explain)")


def ask_overhead_ms(home: Path, runs: int) -> dict[str, float]:
    """Medians (wall and CPU ms) of an in-process ask without and with budgets, and of the
    budget check + reservation + release alone. CPU time is the fairer figure on a loaded
    machine: waiting for a core is not the code's cost."""
    from attune_cli.core.ask import AskOptions, ask
    from attune_cli.core.config import read_toml
    from attune_cli.core.spend.budgets import BudgetSettings, admit
    from attune_cli.core.telemetry.sqlite import TelemetryStore
    from attune_cli.core.workspace import Workspace
    from attune_cli.emulator import ProviderEmulator

    os.environ["ATTUNE_HOME"] = str(home)
    samples: dict[str, list[float]] = {}

    def timed(name: str, work: object) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        work()  # type: ignore[operator]
        samples.setdefault(f"{name} wall", []).append((time.perf_counter() - wall) * 1000)
        samples.setdefault(f"{name} cpu", []).append((time.process_time() - cpu) * 1000)

    with ProviderEmulator({}, api_key="sk-bench-000111") as emulator:
        environ = {"OPENAI_BASE_URL": emulator.openai_base_url, "OPENAI_API_KEY": "sk-bench-000111"}
        budgeted = Workspace.load()
        plain = Workspace(paths=budgeted.paths, config={})
        options = AskOptions(
            "hello",
            workflow="code-review",
            stage="analysis",
            model="gpt-5-mini",
            max_tokens=50,
            stream=False,
        )
        for index in range(2 * runs + 4):
            workspace = budgeted if index % 2 else plain
            name = "ask with budgets" if index % 2 else "ask without"
            timed(
                name if index >= 4 else "warm-up",
                lambda w=workspace: ask(w, options, environ=environ),
            )
    settings = BudgetSettings.from_config(read_toml(home / "config.toml"), home / "config.toml")
    with TelemetryStore(home / "telemetry.db") as store:

        def check() -> None:
            admitted = admit(
                store,
                budgeted.registry,
                settings,
                "code-review",
                [("gpt-5-mini", 0.001)],
                now=time.time(),
                hold_s=60,
            )
            assert admitted.reservation_id is not None
            store.release_reservation(admitted.reservation_id)

        for _ in range(runs):
            timed("check", check)
    return {name: statistics.median(values) for name, values in samples.items()}


def load_into_postgres(url: str, spec: HistorySpec) -> str:
    import psycopg

    from attune_cli.core.telemetry.postgres import PostgresCallStore

    schema = f"attune_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    joiner = "&" if "?" in url else "?"
    scoped = f"{url}{joiner}options=-csearch_path%3D{schema}"
    with PostgresCallStore(scoped) as store, store.bulk_transaction():
        store.insert_rows(
            history_row(call, f"g{index:x}") for index, call in enumerate(iter_history(spec))
        )
    return scoped


def print_postgres(out: Path, store_url: str, rows: int, runs: int) -> None:
    """The whole-process figures against the PostgreSQL store at ``store_url``."""
    print(f"PostgreSQL, the same {rows:,} calls:")
    # A home of its own: with a team store configured, a local telemetry.db is the spool,
    # and its calls would be pushed into the team store.
    team_home = out / "team-home"
    team_home.mkdir(exist_ok=True)
    (team_home / "config.toml").write_text(BUDGETS)
    print_processes(team_home, runs, {"ATTUNE_STORE_URL": store_url})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=float, default=365.0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ask-runs", type=int, default=40)
    parser.add_argument("--pg-url", default=None)
    parser.add_argument("--pg-store-url", default=None, help="a store already loaded (kept)")
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    spec = HistorySpec(rows=options.rows, days=options.days)
    store_path = options.out / "telemetry.db"
    if not store_path.exists():
        started = time.perf_counter()
        build_store(spec, store_path)
        print(f"built {options.rows:,} calls in {time.perf_counter() - started:.0f} s")
    (options.out / "config.toml").write_text(BUDGETS)
    print(f"SQLite, {options.rows:,} calls over {options.days:.0f} days:")
    print_processes(options.out, options.runs)
    found = ask_overhead_ms(options.out, options.ask_runs)
    for clock in ("wall", "cpu"):
        without, with_budget = found[f"ask without {clock}"], found[f"ask with budgets {clock}"]
        print(
            f"  ask in process (emulator), median {clock}: {without:.2f} ms without budgets, "
            f"{with_budget:.2f} ms with 2 budgets (+{with_budget - without:.2f} ms; target ≤ 2)"
        )
    print(
        "  budget check + reservation + release alone, median: "
        f"{found['check wall']:.2f} ms wall, {found['check cpu']:.2f} ms CPU"
    )
    if options.pg_store_url:
        print_postgres(options.out, options.pg_store_url, options.rows, options.runs)
    elif options.pg_url:
        import psycopg

        scoped = load_into_postgres(options.pg_url, spec)
        try:
            print_postgres(options.out, scoped, options.rows, options.runs)
        finally:
            schema = scoped.rsplit("%3D", 1)[1]
            with psycopg.connect(options.pg_url, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
