"""Cost flat in history size: routing and ``telemetry models`` on a small and a 10x history.

Builds two stores with ``benchmarks/history.py``: ``--small`` calls over 30 days and
``--large`` calls over 365 days (defaults 1M and 10M, the issue's figures), then prints
medians for each:

* ``AdaptiveModelRouter.get_best_model`` in a warm process (target: ≤ 10 ms);
* ``attune route explain analysis --workflow code-review`` and ``attune telemetry models``
  as whole processes (target: ≤ 0.2 s on SQLite, large ≤ 1.3x small).

Usage::

    python benchmarks/rollups.py --small 200000 --large 2000000 --out /tmp/bench-rollups
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from history import HistorySpec, build_store

WORKFLOW, STAGE = "code-review", "analysis"


def in_process_ms(path: Path, runs: int) -> float:
    from attune_cli.core.registry import load_registry
    from attune_cli.core.routing.router import AdaptiveModelRouter
    from attune_cli.core.telemetry.sqlite import TelemetryStore

    with TelemetryStore(path, create=False) as store:
        router = AdaptiveModelRouter(store, load_registry({}, path.parent / "config.toml"))
        router.get_best_model(WORKFLOW, STAGE)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            router.get_best_model(WORKFLOW, STAGE)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def process_s(home: Path, args: list[str], runs: int) -> float:
    env = {**os.environ, "ATTUNE_HOME": str(home)}
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "attune_cli", *args],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=1_000_000)
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / ".data" / "rollups")
    options = parser.parse_args()
    end = float(int(time.time()) // 60 * 60)
    results = {}
    for name, rows, days in (("small", options.small, 30.0), ("large", options.large, 365.0)):
        home = options.out / name
        home.mkdir(parents=True, exist_ok=True)
        path = home / "telemetry.db"
        if not path.exists():
            started = time.perf_counter()
            build_store(HistorySpec(rows=rows, days=days, end_ts=end), path)
            print(
                f"{name}: built {rows:,} calls over {days:.0f} days in "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )
        results[name] = (
            in_process_ms(path, options.runs * 3),
            process_s(home, ["route", "explain", STAGE, "--workflow", WORKFLOW], options.runs),
            process_s(home, ["telemetry", "models", "--workflow", WORKFLOW], options.runs),
        )
        decision, explain, models = results[name]
        print(
            f"{name} ({rows:,} calls, {days:.0f} days): decision {decision:.1f} ms, "
            f"route explain {explain:.3f} s, telemetry models {models:.3f} s",
            flush=True,
        )
    small, large = results["small"], results["large"]
    print(
        "large / small: decision {:.2f}x, route explain {:.2f}x, telemetry models {:.2f}x".format(
            *(b / a for a, b in zip(small, large, strict=True))
        )
    )


if __name__ == "__main__":
    main()
