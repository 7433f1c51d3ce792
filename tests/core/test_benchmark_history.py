"""The benchmarks build their histories with ``benchmarks/history.py``: it must keep up with the
store's columns, or every benchmark fails before it measures anything."""

from __future__ import annotations

import sys
from pathlib import Path

from attune_cli.core.telemetry.sqlite import TelemetryStore

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_history_builds_a_store_that_verifies(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from history import HistorySpec, build_store  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    path = build_store(HistorySpec(rows=2_000, seed=3, days=2.0), tmp_path / "telemetry.db")
    with TelemetryStore(path) as store:
        assert store.count() == 2_000
        assert store.verify().ok
