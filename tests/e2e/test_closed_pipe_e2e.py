"""`attune … | head -1`: a reader that stops reading is not a failure (exit 0, no message)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

pytestmark = pytest.mark.e2e


# The reader's pipe holds one page (Linux's smallest pipe), so any output past 4 KiB blocks
# the writer until the reader has gone: 500 calls are several times that in every format.
PIPE_BYTES = 4096
CALLS = 500


def seed(home: Path, n: int = CALLS) -> None:
    now = time.time()
    with TelemetryStore(home / "telemetry.db") as store:
        store.record_many(
            CallRecord(workflow="w", stage="s", model="m", success=True, ts=now - i)
            for i in range(n)
        )


def first_line_then_close(*args: str) -> tuple[int, str, str]:
    read_end, write_end = os.pipe()
    assert fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES) == PIPE_BYTES
    child = subprocess.Popen(
        [sys.executable, "-m", "attune_cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(write_end)
    assert child.stderr is not None
    with open(read_end, encoding="utf-8") as stdout:
        line = stdout.readline()
    try:
        status = child.wait(timeout=60)
    finally:
        child.kill()
    with child.stderr:
        return status, line, child.stderr.read()


@pytest.mark.parametrize(
    "args",
    [
        ("telemetry", "export"),
        ("telemetry", "export", "--format", "csv"),
        ("telemetry", "show", "-n", str(CALLS), "--json"),
        ("telemetry", "show", "-n", str(CALLS)),
    ],
    ids=" ".join,
)
def test_a_closed_pipe_exits_0_quietly(args: tuple[str, ...], attune_home: Path) -> None:
    seed(attune_home)

    status, line, stderr = first_line_then_close(*args)

    assert line.strip()
    assert status == 0, stderr
    assert stderr == ""
