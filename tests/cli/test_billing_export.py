"""How a call was paid survives export and import, in both formats, and shows in `show`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore


def attune(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "attune_cli", *args],
        env={**os.environ, "ATTUNE_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_billing_round_trips_through_export_and_import(
    attune_home: Path, tmp_path: Path, fmt: str
) -> None:
    now = time.time()
    with TelemetryStore(attune_home / "telemetry.db") as store:
        for i, billing in enumerate(("subscription", "api", None)):
            store.record(
                CallRecord("wf", "st", "claude-haiku-4-5", True, ts=now - i, billing=billing)
            )
    target = tmp_path / f"calls.{fmt}"
    exported = attune(attune_home, "telemetry", "export", "-f", fmt, "-o", str(target))
    other = tmp_path / "other"
    imported = attune(other, "telemetry", "import", str(target))
    shown = attune(other, "telemetry", "show", "--json")

    assert exported.returncode == 0 and imported.returncode == 0, imported.stderr
    assert sorted(str(c["billing"]) for c in json.loads(shown.stdout)) == [
        "None",
        "api",
        "subscription",
    ]


def test_an_unknown_billing_value_is_a_bad_line(attune_home: Path, tmp_path: Path) -> None:
    line = {
        "ts": "2026-01-07T07:30:45.123Z",
        "workflow": "wf",
        "stage": "st",
        "model": "m",
        "success": True,
        "billing": "free lunch",
    }
    source = tmp_path / "calls.jsonl"
    source.write_text(json.dumps(line) + "\n", encoding="utf-8")

    result = attune(attune_home, "telemetry", "import", str(source), "--format", "jsonl")

    assert result.returncode != 0
    assert "`billing` must be subscription or api" in result.stderr
