"""How fast attune routes on a 1M-call store: whole-process commands and the in-process decision.

Builds (once, then reuses) the seeded history of ``benchmarks/history.py`` — 1,000,000 calls
from 5 workflows × 4 stages × 6 models over 7 days — and prints medians:

* ``attune route explain analysis --workflow code-review``, a whole new process each run:
  wall time and peak RSS (targets: ≤ 300 ms, ≤ 100 MB);
* the same for ``route best`` and ``route check`` (no targets; for comparison);
* ``AdaptiveModelRouter.get_best_model`` in a warm process (target: ≤ 30 ms).

Usage::

    python benchmarks/routing.py                      # 1M calls in benchmarks/.data/routing
    python benchmarks/routing.py --rows 200000 --runs 15 --out /tmp/bench
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from history import HistorySpec, build_store

WORKFLOW, STAGE = "code-review", "analysis"


def ensure_store(folder: Path, rows: int, seed: int) -> Path:
    """The benchmark store in ``folder``, rebuilt only when the spec changed or it grew stale.

    The history ends when it is built; it is rebuilt after a day so the 7 days of calls stay
    well inside the router's 30-day window and its recency weighting stays representative.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "telemetry.db"
    stamp = folder / "spec.json"
    wanted = {"rows": rows, "seed": seed}
    if path.exists() and stamp.exists():
        saved = json.loads(stamp.read_text())
        if {k: saved.get(k) for k in wanted} == wanted and time.time() - saved["end_ts"] < 86_400:
            return path
    end_ts = float(int(time.time()) // 60 * 60)
    started = time.perf_counter()
    build_store(HistorySpec(rows=rows, seed=seed, end_ts=end_ts), path)
    print(f"built {rows:,}-call store in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    stamp.write_text(json.dumps({**wanted, "end_ts": end_ts}))
    return path


def attune_command() -> list[str]:
    script = Path(sys.executable).parent / "attune"
    return [str(script)] if script.exists() else [sys.executable, "-m", "attune_cli"]


def run_process(args: list[str], env: dict[str, str]) -> float:
    """Run one attune process; returns its wall time in ms."""
    started = time.perf_counter()
    proc = subprocess.run([*attune_command(), *args], env=env, capture_output=True)
    wall_ms = (time.perf_counter() - started) * 1000
    if proc.returncode != 0:
        raise SystemExit(f"attune {' '.join(args)} failed ({proc.returncode}): {proc.stderr!r}")
    return wall_ms


# A small launcher process runs attune and reports its children's peak RSS. Measuring from
# this (large) process would not do: a forked child's high-water mark starts at its parent's.
_LAUNCHER = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak_rss_mb(args: list[str], env: dict[str, str]) -> float:
    """Peak resident memory of one attune process (Linux reports KiB)."""
    out = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *attune_command(), *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip()) / 1024


def measure_command(
    label: str, args: list[str], env: dict[str, str], runs: int
) -> dict[str, float]:
    run_process(args, env)  # warm the page cache and the .pyc files
    walls = [run_process(args, env) for _ in range(runs)]
    rss = [peak_rss_mb(args, env) for _ in range(max(3, runs // 3))]
    result = {"wall_ms": statistics.median(walls), "rss_mb": statistics.median(rss)}
    print(
        f"{label:<58} wall {result['wall_ms']:7.1f} ms (min {min(walls):.1f}, "
        f"max {max(walls):.1f})   peak RSS {result['rss_mb']:5.1f} MB"
    )
    return result


def measure_in_process(store_path: Path, runs: int) -> dict[str, float]:
    from attune_cli.core.registry import load_registry
    from attune_cli.core.routing import AdaptiveModelRouter
    from attune_cli.core.telemetry.sqlite import TelemetryStore

    with TelemetryStore(store_path) as store:
        router = AdaptiveModelRouter(store, load_registry({}, store_path.parent / "config.toml"))
        started = time.perf_counter()
        first = router.get_best_model(WORKFLOW, STAGE)
        cold_ms = (time.perf_counter() - started) * 1000
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            decision = router.get_best_model(WORKFLOW, STAGE)
            times.append((time.perf_counter() - started) * 1000)
        assert decision.chosen == first.chosen
        window_calls = sum(c.calls for c in decision.candidates)
        all_stages = []
        for _ in range(max(3, runs // 3)):
            started = time.perf_counter()
            router.get_best_model(None, STAGE)
            all_stages.append((time.perf_counter() - started) * 1000)
    result = {
        "decision_ms": statistics.median(times),
        "first_decision_ms": cold_ms,
        "all_workflows_ms": statistics.median(all_stages),
    }
    print(
        f"{'in-process get_best_model(code-review, analysis)':<58} "
        f"median {result['decision_ms']:6.1f} ms (first {cold_ms:.1f} ms; "
        f"{window_calls:,} calls in the window; chose {decision.chosen})"
    )
    print(
        f"{'in-process get_best_model(None, analysis) [5 workflows]':<58} "
        f"median {result['all_workflows_ms']:6.1f} ms"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=11, help="timed runs per measurement")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / ".data" / "routing"
    )
    args = parser.parse_args(argv)

    store = ensure_store(args.out, args.rows, args.seed)
    env = {**os.environ, "ATTUNE_HOME": str(args.out.resolve()), "NO_COLOR": "1"}
    # An installed attune has its .pyc files; let the warm-up run write them here too.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"store: {store} ({store.stat().st_size / 1e6:.0f} MB, {args.rows:,} calls)")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, medians of {args.runs} runs")
    measure_command("attune --version (startup floor)", ["--version"], env, args.runs)
    explain = measure_command(
        f"attune route explain {STAGE} --workflow {WORKFLOW}",
        ["route", "explain", STAGE, "--workflow", WORKFLOW],
        env,
        args.runs,
    )
    measure_command(
        f"attune route best {STAGE} --workflow {WORKFLOW}",
        ["route", "best", STAGE, "--workflow", WORKFLOW],
        env,
        args.runs,
    )
    measure_command(
        f"attune route check --workflow {WORKFLOW}",
        ["route", "check", "--workflow", WORKFLOW],
        env,
        args.runs,
    )
    decision = measure_in_process(store, args.runs * 3)
    ok = explain["wall_ms"] <= 300 and explain["rss_mb"] <= 100 and decision["decision_ms"] <= 30
    print(f"targets (explain ≤ 300 ms & ≤ 100 MB, decision ≤ 30 ms): {'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
