"""What recording costs a call when many threads of one process record at once (the gateway).

    python benchmarks/recording.py [--threads 50] [--calls 40] [--repeats 3]

Each of ``--threads`` threads makes ``--calls`` pretend calls: the breaker's two reads
(endpoint and model), a 10 ms wait standing in for the provider, the breaker's outcome and the
telemetry row; the time of each call minus the wait is what recording cost it. Two ways:

- ``per-thread``: each thread writes through its own connection, one ``BEGIN IMMEDIATE`` per
  write (how ``attune serve`` recorded before its writer);
- ``one writer``: the rows and outcomes go through one ``BatchWriter`` (one connection, many
  writes per transaction); the call waits for its rows' commit (``written``), as the gateway
  does before it answers; ``answer before commit``: it does not wait.

Printed: p50 and p99 of that cost in ms (medians over ``--repeats`` runs), rows written, rows
lost. The machine may be loaded: compare the two lines of one run, not runs of two days.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from attune_cli.core.breaker.sqlite import CircuitBreaker
from attune_cli.core.breaker.state import breaker_key, endpoint_key
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore
from attune_cli.core.telemetry.writer import BatchWriter

UPSTREAM_S = 0.010
KEY = breaker_key("openai", "gpt-5-mini")
ENDPOINT = endpoint_key("http://127.0.0.1:1/v1")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run(mode: str, threads: int, calls: int) -> tuple[float, float, int]:
    folder = Path(tempfile.mkdtemp(prefix="attune-bench-recording-"))
    path = folder / "telemetry.db"
    TelemetryStore(path).close()
    writer = BatchWriter(path) if mode.startswith("one writer") else None
    breaker = CircuitBreaker(path, writer=writer)
    costs: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def client() -> None:
        store = TelemetryStore(path) if writer is None else None
        record: Callable[[CallRecord], object] = (
            writer.record if writer is not None else store.record  # type: ignore[union-attr]
        )
        mine = []
        start.wait()
        for _ in range(calls):
            began = time.perf_counter()
            breaker.before_call(ENDPOINT)
            permit = breaker.before_call(KEY)
            time.sleep(UPSTREAM_S)
            breaker.after_call(permit, failure=False)
            record(CallRecord("bench", "gateway", "gpt-5-mini", True, provider="openai"))
            if writer is not None and mode == "one writer":
                writer.written()
            mine.append((time.perf_counter() - began - UPSTREAM_S) * 1000)
        if store is not None:
            store.close()
        with lock:
            costs.extend(mine)

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if writer is not None:
        writer.close()
    breaker.close()
    with TelemetryStore(path) as store:
        written = int(store.conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0])
        written += store.spooled_rows()
    return percentile(costs, 0.50), percentile(costs, 0.99), written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    expected = options.threads * options.calls
    print(
        f"recording cost per call, {options.threads} threads x {options.calls} calls "
        f"(median of {options.repeats} runs; 10 ms upstream wait excluded):"
    )
    for mode in ("per-thread", "one writer", "one writer, answer before commit"):
        runs = [run(mode, options.threads, options.calls) for _ in range(options.repeats)]
        p50 = statistics.median(r[0] for r in runs)
        p99 = statistics.median(r[1] for r in runs)
        lost = max(expected - r[2] for r in runs)
        print(f"  {mode:32}  p50 {p50:7.2f} ms   p99 {p99:8.2f} ms   rows lost {lost}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
