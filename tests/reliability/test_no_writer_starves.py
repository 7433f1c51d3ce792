"""No writer starves: 8 processes record while a large import and then a prune run.

Before chunked imports, an import held the write lock for its whole run (a minute for two
million rows) and recorders gave up after the 10 s busy timeout: their calls were lost. Here
every recorder's every call must be in the store at the end (or, had it not got in, in the
spool, drained by the next write), no record may wait more than a second, and the rollups must
equal a recomputation from the rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attune_cli.core.telemetry.records import CallFilter, ts_to_iso
from attune_cli.core.telemetry.sqlite import CHUNK_ROWS, PRUNE_CHUNK_ROWS, TelemetryStore

pytestmark = pytest.mark.e2e

# The soak run imports 100k calls; the default run 20k, still 4 import chunks of CHUNK_ROWS
# (more once writers contend) and 10 prune chunks of PRUNE_CHUNK_ROWS, with writers in between.
IMPORT_ROWS = 100_000
LOSSLESS_IMPORT_ROWS = 20_000
WRITERS = 8
MAX_WAIT_S = 1.0

# A recorder: records one call, pauses a little as separate `telemetry record` runs would,
# and goes on until the stop file appears; prints how many it recorded, how many were spooled
# and each record's wall time.
RECORDER = """
import json, os, sys, time
from pathlib import Path
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

db, name, stop = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
store = TelemetryStore(db)
print("ready", flush=True)
waits, spooled, seq = [], 0, 0
while not stop.exists():
    started = time.perf_counter()
    note = store.record(CallRecord(workflow=name, stage="live", model="gpt-5-mini",
                                   success=True, latency_ms=float(seq), provider="openai"))
    waits.append(time.perf_counter() - started)
    spooled += note is not None
    seq += 1
    time.sleep(0.005)
store.close()
print(json.dumps({"recorded": seq, "spooled": spooled, "waits": waits}), flush=True)
"""


def _history(path: Path, rows: int, start_ts: float) -> None:
    """``rows`` calls in attune's own JSONL, one a second from ``start_ts``."""
    models = ("gpt-5-mini", "gpt-5", "claude-haiku-4-5")
    with path.open("w") as out:
        for i in range(rows):
            record = {
                "ts": ts_to_iso(start_ts + i),
                "workflow": f"wf{i % 5}",
                "stage": f"st{i % 4}",
                "provider": "openai",
                "model": models[i % 3],
                "success": i % 7 != 0,
                "latency_ms": 100.0 + i % 900,
                "cost_usd": 0.001,
                "key": f"k{i}",
            }
            out.write(json.dumps(record) + "\n")


def _start_recorders(db: Path, stop: Path) -> list[subprocess.Popen[str]]:
    recorders = [
        subprocess.Popen(
            [sys.executable, "-c", RECORDER, str(db), f"writer-{n}", str(stop)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(WRITERS)
    ]
    for recorder in recorders:
        assert recorder.stdout is not None
        assert recorder.stdout.readline().strip() == "ready"
    return recorders


def _stop_recorders(recorders: list[subprocess.Popen[str]], stop: Path) -> list[dict[str, object]]:
    stop.touch()
    results = []
    for recorder in recorders:
        out, err = recorder.communicate(timeout=120)
        assert recorder.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    stop.unlink()
    return results


def _attune(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "attune_cli", *args],
        env={**os.environ, "ATTUNE_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=600,
    )


# The wait bound is a timing: on a 2-core machine where this test itself runs 9 processes, a
# load average (which lags by a minute) cannot say how much of a wait was the CPU queue, so the
# bound is checked in the soak run and measured by benchmarks/writers.py; the default run holds
# everything else (nothing lost, rollups exact, nothing left in the spool).
@pytest.mark.parametrize(
    ("timed", "rows"),
    [(False, LOSSLESS_IMPORT_ROWS), pytest.param(True, IMPORT_ROWS, marks=pytest.mark.soak)],
    ids=["lossless", "timed"],
)
def test_recorders_lose_nothing_and_never_wait_a_second_during_an_import_and_a_prune(
    tmp_path: Path, timed: bool, rows: int
) -> None:
    assert rows >= 4 * CHUNK_ROWS and rows >= 4 * PRUNE_CHUNK_ROWS, "writers must get turns"
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    db = home / "telemetry.db"
    history = tmp_path / "history.jsonl"
    now = time.time()
    _history(history, rows, now - rows - 10 * 86_400)
    TelemetryStore(db).close()
    stop = tmp_path / "stop"

    recorders = _start_recorders(db, stop)
    imported = _attune(home, "telemetry", "import", str(history), "--json")
    during_import = _stop_recorders(recorders, stop)
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["imported"] == rows

    recorders = _start_recorders(db, stop)
    pruned = _attune(home, "telemetry", "prune", "--older-than", "1", "--yes", "--json")
    during_prune = _stop_recorders(recorders, stop)
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout)["deleted"] == rows

    with TelemetryStore(db) as store:
        store.drain_spool()
        for n in range(WRITERS):
            recorded = sum(
                int(run[n]["recorded"])  # type: ignore[call-overload]
                for run in (during_import, during_prune)
            )
            assert store.count(CallFilter(workflow=f"writer-{n}")) == recorded
        assert store.count() == sum(
            int(r["recorded"])  # type: ignore[call-overload]
            for r in during_import + during_prune
        )
        assert store.verify().ok
        assert store.spooled_rows() == 0
    # The machine is shared: on one running more processes than it has cores, every wall
    # time stretches by about the load per core, so the bound does too (and says so).
    stretch = max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    for phase, results in (("import", during_import), ("prune", during_prune)):
        waits = sorted(w for r in results for w in r["waits"])  # type: ignore[attr-defined]
        assert len(waits) >= WRITERS, phase
        longest = waits[-1]
        print(
            f"{phase}: {len(waits)} records, median {waits[len(waits) // 2] * 1000:.1f} ms, "
            f"longest {longest * 1000:.0f} ms (load per core {stretch:.1f})"
        )
        if timed:
            assert longest < MAX_WAIT_S * stretch, f"a record waited {longest:.2f} s in the {phase}"
