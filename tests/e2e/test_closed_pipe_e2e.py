"""`attune … | head -1`: a reader that stops reading is not a failure (exit 0, no message)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

pytestmark = pytest.mark.e2e


def seed(home: Path, n: int = 20_000) -> None:
    now = time.time()
    with TelemetryStore(home / "telemetry.db") as store:
        store.record_many(
            CallRecord(workflow="w", stage="s", model="m", success=True, ts=now - i)
            for i in range(n)
        )


def first_line_then_close(*args: str) -> tuple[int, str, str]:
    child = subprocess.Popen(
        [sys.executable, "-m", "attune_cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stderr is not None
    line = child.stdout.readline()
    child.stdout.close()
    try:
        status = child.wait(timeout=60)
    finally:
        child.kill()
    return status, line, child.stderr.read()


@pytest.mark.parametrize(
    "args",
    [
        ("telemetry", "export"),
        ("telemetry", "export", "--format", "csv"),
        ("telemetry", "show", "-n", "20000", "--json"),
        ("telemetry", "show", "-n", "20000"),
    ],
    ids=" ".join,
)
def test_a_closed_pipe_exits_0_quietly(args: tuple[str, ...], attune_home: Path) -> None:
    seed(attune_home)

    status, line, stderr = first_line_then_close(*args)

    assert line.strip()
    assert status == 0, stderr
    assert stderr == ""
