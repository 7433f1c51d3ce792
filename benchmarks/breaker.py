"""Cost of the circuit breaker on the call path, against a real ``telemetry.db``.

In-process (one warm ``CircuitBreaker``, N repetitions each, median wall and process time):

* ``closed: before+after(success)`` — the common case: a plain read, then one write
  transaction recording the outcome.
* ``closed: before+after(failure)`` — a failure also counts the window (kept full of events).
* ``open: before (rejected)`` — an open breaker rejecting a call: a plain read, no write.
* ``half-open: probe+re-open`` — taking the probe lease and re-opening on its failure.

Whole process (``rejected, cold``): a new Python process that imports the breaker, opens the
store and is rejected — what a script calling attune once pays; the target for a rejected call is
at most 50 ms of process time.

Usage::

    python benchmarks/breaker.py                # 2000 repetitions, 15 cold processes
    python benchmarks/breaker.py --runs 5000 --cold-runs 30
    python benchmarks/breaker.py --check        # exit 1 when the rejected call misses 50 ms
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from attune_cli.core.breaker.sqlite import CircuitBreaker
from attune_cli.core.breaker.state import BreakerSettings
from attune_cli.core.errors import BreakerOpenError

KEY = "openai/gpt-4o-mini"
REJECTED_TARGET_MS = 50.0

COLD_CHILD = """
import json, sys, time
started = time.process_time()
from pathlib import Path
from attune_cli.core.breaker.sqlite import CircuitBreaker
from attune_cli.core.errors import BreakerOpenError
breaker = CircuitBreaker(Path(sys.argv[1]))
try:
    breaker.before_call(sys.argv[2])
except BreakerOpenError:
    pass
else:
    raise SystemExit("the breaker was not open")
print(json.dumps({"call_ms": (time.process_time() - started) * 1000,
                  "process_ms": time.process_time() * 1000}))
"""


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def measure(runs: int, step: Callable[[], None]) -> tuple[float, float]:
    """Median wall and process time of ``step`` in microseconds."""
    wall_us, cpu_us = [], []
    for _ in range(runs):
        wall0, cpu0 = time.perf_counter_ns(), time.process_time_ns()
        step()
        cpu_us.append((time.process_time_ns() - cpu0) / 1000)
        wall_us.append((time.perf_counter_ns() - wall0) / 1000)
    return statistics.median(wall_us), statistics.median(cpu_us)


def in_process(folder: Path, runs: int) -> list[tuple[str, float, float]]:
    clock = Clock()
    rows = []

    closed = CircuitBreaker(folder / "closed.db", clock=clock)

    def success() -> None:
        clock.now += 0.01
        closed.after_call(closed.before_call(KEY), failure=False)

    success()
    rows.append(("closed: before+after(success)", *measure(runs, success)))

    # Failures that never trip, so every one counts a window of `runs` events.
    patient = BreakerSettings(min_calls=10**9, consecutive_failures=10**9)
    counting = CircuitBreaker(folder / "counting.db", patient, clock=clock)

    def failure() -> None:
        clock.now += 0.01
        counting.after_call(counting.before_call(KEY), failure=True)

    failure()
    rows.append(("closed: before+after(failure)", *measure(runs, failure)))

    opened = CircuitBreaker(folder / "open.db", clock=clock)
    for _ in range(5):
        opened.after_call(opened.before_call(KEY), failure=True)

    def rejected() -> None:
        try:
            opened.before_call(KEY)
        except BreakerOpenError:
            return
        raise SystemExit("the breaker was not open")

    rows.append(("open: before (rejected)", *measure(runs, rejected)))

    probing = CircuitBreaker(folder / "open.db", BreakerSettings(open_max_s=30), clock=clock)

    def probe_fails() -> None:
        clock.now += 31
        permit = probing.before_call(KEY)
        assert permit.probe
        probing.after_call(permit, failure=True)

    rows.append(("half-open: probe+re-open", *measure(runs, probe_fails)))
    for breaker in (closed, counting, opened, probing):
        breaker.close()
    return rows


def cold(folder: Path, runs: int) -> tuple[float, float]:
    """Median process time (ms) of a new process rejected by an open breaker."""
    store = folder / "cold.db"
    with CircuitBreaker(store) as breaker:
        for _ in range(5):
            breaker.after_call(breaker.before_call(KEY), failure=True)
    call_ms, process_ms = [], []
    for _ in range(runs + 1):
        out = subprocess.run(
            [sys.executable, "-c", COLD_CHILD, str(store), KEY],
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(out.stdout)
        call_ms.append(figures["call_ms"])
        process_ms.append(figures["process_ms"])
    # The first run warms the file cache and the .pyc files.
    return statistics.median(call_ms[1:]), statistics.median(process_ms[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="in-process repetitions")
    parser.add_argument("--cold-runs", type=int, default=15, help="whole-process runs")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="attune-bench-") as tmp:
        folder = Path(tmp)
        rows = in_process(folder, args.runs)
        call_ms, process_ms = cold(folder, args.cold_runs)

    print(f"{'path (in process, warm)':<32} {'median µs':>10} {'cpu µs':>8}")
    for label, wall_us, cpu_us in rows:
        print(f"{label:<32} {wall_us:>10.1f} {cpu_us:>8.1f}")
    rejected_cpu_ms = next(cpu for label, _, cpu in rows if label.startswith("open")) / 1000
    print()
    print(f"rejected, cold process: import + open store + reject = {call_ms:.1f} ms process time")
    print(f"                        whole process incl. interpreter = {process_ms:.1f} ms")
    verdict = "ok" if call_ms <= REJECTED_TARGET_MS else "MISSED"
    print(
        f"target: a rejected call ≤ {REJECTED_TARGET_MS:.0f} ms of process time: warm "
        f"{rejected_cpu_ms:.3f} ms, cold {call_ms:.1f} ms — {verdict}"
    )
    return 1 if args.check and verdict != "ok" else 0


if __name__ == "__main__":
    sys.exit(main())
