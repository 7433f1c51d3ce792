"""No writer starves: record latency with 8 writers, alone and during an import and a prune.

Each figure comes from real processes against a throwaway ``ATTUNE_HOME`` (medians of
``--runs``):

* ``attune telemetry import`` of a seeded history alone: rows/s.
* 8 processes calling ``TelemetryStore.record`` as fast as they can, nothing else running:
  p50/p95/p99 per record. Target: p95 ≤ 5 ms.
* The same 8 processes (each pausing 5 ms between records, as separate ``telemetry record``
  runs would) while the history is imported and then pruned: p50/p95 and the longest wait,
  the import's rows/s meanwhile, and whether every recorded call is in the store. Target:
  longest wait ≤ 1 s, no call lost.

Usage::

    python benchmarks/writers.py                  # 200,000 calls, 3 runs
    python benchmarks/writers.py --rows 2000000 --runs 1
    python benchmarks/writers.py --check          # exit 1 when a target is missed

The machine should be otherwise idle; the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from history import HistorySpec, write_legacy_jsonl

WRITERS = 8
RECORD_P95_MS = 5.0
LONGEST_WAIT_S = 1.0

RECORDER = """
import json, sys, time
from pathlib import Path
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

db, name, stop, pause = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), float(sys.argv[4])
limit = int(sys.argv[5])
store = TelemetryStore(db)
print("ready", flush=True)
sys.stdin.readline()
waits, spooled, seq = [], 0, 0
while not stop.exists() and seq < limit:
    started = time.perf_counter()
    note = store.record(CallRecord(workflow="bench", stage=name, model="claude-haiku-4-5",
                                   success=seq % 10 != 0, provider="anthropic",
                                   latency_ms=float(seq), cost_usd=0.001))
    waits.append(time.perf_counter() - started)
    spooled += note is not None
    seq += 1
    if pause:
        time.sleep(pause)
store.close()
print(json.dumps({"recorded": seq, "spooled": spooled, "waits": waits}), flush=True)
"""


def attune_command() -> list[str]:
    script = Path(sys.executable).with_name("attune")
    return [str(script)] if script.exists() else [sys.executable, "-m", "attune_cli"]


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATTUNE_", "XDG_"))}
    env["ATTUNE_HOME"] = str(home)
    env["NO_COLOR"] = "1"
    return env


def fresh_home(workdir: Path) -> Path:
    home = workdir / "home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(mode=0o700, parents=True)
    return home


class Recorders:
    """``WRITERS`` recorder processes on one store, started together."""

    def __init__(self, db: Path, stop: Path, pause_s: float, limit: int) -> None:
        self.stop = stop
        self.procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    RECORDER,
                    str(db),
                    f"w{n}",
                    *map(str, (stop, pause_s, limit)),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(WRITERS)
        ]
        for proc in self.procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                sys.exit(f"a recorder did not start: {proc.stderr.read() if proc.stderr else ''}")

    def go(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write("\n")
            proc.stdin.flush()

    def finish(self, *, stop: bool = True) -> list[dict[str, object]]:
        if stop:
            self.stop.touch()
        results = []
        for proc in self.procs:
            out, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                sys.exit(f"a recorder failed: {err}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        self.stop.unlink(missing_ok=True)
        return results


def percentiles_ms(waits: list[float]) -> tuple[float, float, float, float]:
    ordered = sorted(waits)
    pick = lambda q: ordered[min(int(len(ordered) * q), len(ordered) - 1)] * 1000  # noqa: E731
    return pick(0.5), pick(0.95), pick(0.99), ordered[-1] * 1000


def run_import(home: Path, history: Path) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(
        [*attune_command(), "telemetry", "import", str(history), "--json"],
        env=environment(home), capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"import failed: {done.stderr}")
    return wall, int(json.loads(done.stdout)["imported"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="calls in the history")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--records", type=int, default=500, help="records per writer, alone")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="attune-writers-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o700)
    spec = HistorySpec(rows=args.rows, seed=7, days=7, end_ts=time.time() - 30 * 86_400)
    history = workdir / "legacy"
    if not history.exists():
        write_legacy_jsonl(spec, history)
    stop = workdir / "stop"

    alone_rates, alone_p = [], []
    during = {"import": [], "prune": []}  # type: dict[str, list[tuple[float, ...]]]
    rates_with_writers, lost = [], 0
    for run in range(args.runs):
        home = fresh_home(workdir)
        wall, imported = run_import(home, history)
        alone_rates.append(imported / wall)

        home = fresh_home(workdir)
        db = home / "telemetry.db"
        recorders = Recorders(db, stop, 0.0, args.records)
        recorders.go()
        results = recorders.finish(stop=False)
        alone_p.append(percentiles_ms([w for r in results for w in r["waits"]]))  # type: ignore[attr-defined]

        recorders = Recorders(db, stop, 0.005, 10**9)
        recorders.go()
        wall, imported = run_import(home, history)
        import_results = recorders.finish()
        rates_with_writers.append(imported / wall)
        recorders = Recorders(db, stop, 0.005, 10**9)
        recorders.go()
        subprocess.run(
            [*attune_command(), "telemetry", "prune", "--older-than", "7", "--yes"],
            env=environment(home), capture_output=True, check=True,
        )  # fmt: skip
        prune_results = recorders.finish()
        for phase, results in (("import", import_results), ("prune", prune_results)):
            during[phase].append(percentiles_ms([w for r in results for w in r["waits"]]))  # type: ignore[attr-defined]
        from attune_cli.core.telemetry.sqlite import TelemetryStore

        with TelemetryStore(db) as store:
            store.drain_spool()
            expected = args.records * WRITERS + sum(
                int(r["recorded"])  # type: ignore[call-overload]
                for r in import_results + prune_results
            )
            lost += expected - store.count()
            print(f"  expected {expected}, stored {store.count()}", file=sys.stderr)
        print(f"  run {run + 1} done", file=sys.stderr)

    def med(values: list[tuple[float, ...]], index: int) -> float:
        return statistics.median(v[index] for v in values)

    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    p95 = med(alone_p, 1)
    longest = max(med(during["import"], 3), med(during["prune"], 3))
    print(f"load average per core: {load:.1f}")
    print(f"import alone: {statistics.median(alone_rates):,.0f} rows/s ({args.rows:,} rows)")
    print(
        f"record, {WRITERS} writers at once: p50 {med(alone_p, 0):.2f} ms, p95 {p95:.2f} ms, "
        f"p99 {med(alone_p, 2):.2f} ms  [target p95 ≤ {RECORD_P95_MS} ms: "
        f"{'ok' if p95 <= RECORD_P95_MS else 'MISSED'}]"
    )
    print(f"import with {WRITERS} writers: {statistics.median(rates_with_writers):,.0f} rows/s")
    for phase in ("import", "prune"):
        print(
            f"record during the {phase}: p50 {med(during[phase], 0):.1f} ms, "
            f"p95 {med(during[phase], 1):.1f} ms, longest {med(during[phase], 3):.0f} ms"
        )
    print(
        f"longest wait {longest:.0f} ms [target ≤ {LONGEST_WAIT_S * 1000:.0f} ms: "
        f"{'ok' if longest <= LONGEST_WAIT_S * 1000 else 'MISSED'}]; calls lost: {lost}"
    )
    missed = p95 > RECORD_P95_MS or longest > LONGEST_WAIT_S * 1000 or lost
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
