"""Does the importer's multi-row INSERT speed it up? Against the plain way, in the same run.

On a seeded history of the older tool's JSONL (``history.py``, 300,000 calls by default),
parsed once beforehand, the rows go in through ``TelemetryStore`` as an import does (chunks
of ``CHUNK_ROWS`` with their rollups and undo entries), three ways:

* ``executemany`` of the plain one-row statement, every column bound (the reference);
* ``executemany`` of the import's statement, its constant columns written as SQL literals
  (``insert_statement``);
* 100-row ``INSERT … VALUES (…), (…)`` statements built as text (``_multi_row``), constants
  as literals: what attune does.

CPU time of this process is the figure (the insert is single-threaded, so CPU time is what
it costs, and a shared machine's load stretches it far less than wall time); wall time is
printed too. Variants run interleaved (A B C A B C …), each on a fresh store, ``--runs``
times; medians are printed with each one's ratio to the reference, and a gain within
``--noise`` (default 5 %) is reported as "within noise".

The forked parser process the importer once had was measured by this script's previous
version on 300,000 rows (3 runs, load average 27 on 2 CPUs): wall 200.3 s against 174.7 s
for one process (1.15x), CPU 8.52 s against 8.08 s (1.05x). It did not win and was removed.

Usage::

    python benchmarks/import_paths.py                     # 300k rows, 5 runs each
    python benchmarks/import_paths.py --rows 100000 --runs 3
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from history import HistorySpec, write_legacy_jsonl

from attune_cli.core.registry import load_registry
from attune_cli.core.telemetry import importers
from attune_cli.core.telemetry import sqlite as store_module
from attune_cli.core.telemetry.records import COLUMNS
from attune_cli.core.telemetry.sqlite import TelemetryStore


def cpu_s() -> float:
    """CPU time of this process and of its children that were waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@contextmanager
def fresh_store(workdir: Path) -> Iterator[TelemetryStore]:
    folder = Path(tempfile.mkdtemp(dir=workdir))
    try:
        with TelemetryStore(folder / "telemetry.db") as store:
            yield store
    finally:
        shutil.rmtree(folder)


def parsed_rows(source: Path, workdir: Path) -> list[tuple[object, ...]]:
    """The rows the importer would insert for ``source`` (its reader, run once)."""
    registry = load_registry({}, workdir / "config.toml")
    defaults = importers._Defaults(workflow="unknown", stage="unknown", registry=registry)
    importers._latest_ts = time.time() + importers.FUTURE_SLACK_S
    tally = importers._Tally()
    rows: list[tuple[object, ...]] = []
    for batch in importers._batches("attune-jsonl", source, defaults, False, tally, None):
        rows.extend(batch)
    return rows


def _executemany(self: TelemetryStore, rows: list[tuple[object, ...]], statement: str) -> None:
    self.conn.executemany(statement, rows)


def measure_insert(
    workdir: Path, rows: list[tuple[object, ...]], statement: str, multi_row: bool
) -> tuple[float, float, int]:
    original = TelemetryStore._insert_batch
    if not multi_row:
        TelemetryStore._insert_batch = _executemany  # type: ignore[method-assign]
    try:
        with fresh_store(workdir) as store:
            began_cpu, began = cpu_s(), time.perf_counter()
            with store.bulk_import() as bulk:
                inserted = bulk.insert(rows, statement=statement)
                bulk.finish(set())
            return time.perf_counter() - began, cpu_s() - began_cpu, inserted
    finally:
        TelemetryStore._insert_batch = original  # type: ignore[method-assign]


def report(title: str, figures: dict[str, list[float]], reference: str, noise: float) -> None:
    ref = statistics.median(figures[reference])
    print(title)
    for name, values in figures.items():
        median = statistics.median(values)
        line = f"  {name:<44} median {median:7.3f} s  (min {min(values):.3f})"
        if name != reference:
            gain = 1 - median / ref
            verdict = "within noise" if abs(gain) < noise else ("faster" if gain > 0 else "SLOWER")
            line += f"  {median / ref:5.2f}x the reference: {verdict}"
        else:
            line += "  reference"
        print(line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--noise", type=float, default=0.05, help="a gain below this is noise")
    args = parser.parse_args()

    load = os.getloadavg()[0]
    print(
        f"{args.rows:,} rows, {args.runs} runs per variant, load average {load:.1f} on "
        f"{os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        files = write_legacy_jsonl(HistorySpec(rows=args.rows, seed=3), workdir / "legacy")
        source = files[0].parent

        rows = parsed_rows(source, workdir)
        statement = importers._STATEMENTS["attune-jsonl"]
        constants = {"error_kind": None, "status": None, "attempt": 1, "source": "attune-jsonl"}
        bound = [c for c in COLUMNS if c not in constants]
        order = [*bound, *constants]
        full_rows = [
            tuple(dict(zip(order, (*row, *constants.values()), strict=True))[c] for c in COLUMNS)
            for row in rows
        ]
        variants: dict[str, Callable[[], tuple[float, float, int]]] = {
            "executemany, every column bound": lambda: measure_insert(
                workdir, full_rows, store_module._INSERT, False
            ),
            "executemany, constants as literals": lambda: measure_insert(
                workdir, rows, statement, False
            ),
            "multi-row text, constants as literals": lambda: measure_insert(
                workdir, rows, statement, True
            ),
        }
        cpu_insert: dict[str, list[float]] = {name: [] for name in variants}
        wall_insert: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.runs):
            for name, run in variants.items():
                took, used, inserted = run()
                assert inserted == len(rows), (name, inserted, len(rows))
                cpu_insert[name].append(used)
                wall_insert[name].append(took)
        report(
            f"insert of {len(rows):,} parsed rows, CPU time:",
            cpu_insert,
            "executemany, every column bound",
            args.noise,
        )
        report("the same, wall time:", wall_insert, "executemany, every column bound", args.noise)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
