"""Telemetry in real processes: many writers at once, and an import killed halfway."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

# Each writer process runs the `attune telemetry record` command (flags parsed, config and
# registry loaded, a new connection, one transaction) 100 times, all starting when the test
# says go, which it says once every writer is ready: the 800 transactions overlap from the
# first, and the test checks that they did (a run of writes one process at a time would prove
# nothing about concurrent writers). The command tree is built once: rebuilding it is 30 ms of
# typer per call, which would make this a test of typer rather than of concurrent writers (the
# reliability suite's soak variant runs 4,000 separate processes).
WRITER = """
import sys
import typer
from attune_cli.cli.app import app
command = typer.main.get_command(app)
worker = sys.argv[1]
count = int(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
for i in range(count):
    code = command.main(
        ["telemetry", "record", "--workflow", "load", "--stage", f"w{worker}",
         "--model", "claude-haiku-4-5", "--success", "--latency-ms", str(i)],
        prog_name="attune",
        standalone_mode=False,
    )
    if code not in (None, 0):
        sys.exit(f"record {i} exited {code}")
"""


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATTUNE_", "XDG_"))}
    env["ATTUNE_HOME"] = str(home)
    return env


def _attune(*args: str) -> list[str]:
    return [sys.executable, "-m", "attune_cli", *args]


def test_eight_writers_at_once_lose_no_call(attune_home: Path) -> None:
    writers, per_writer = 8, 100
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(n), str(per_writer)],
            env=_env(attune_home),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(writers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n", proc.communicate(timeout=60)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
    conn = sqlite3.connect(attune_home / "telemetry.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT COUNT(*) FROM calls").fetchone() == (writers * per_writer,)
        per_stage = conn.execute(
            "SELECT stage, COUNT(*), COUNT(DISTINCT latency_ms) FROM calls GROUP BY stage"
        ).fetchall()
        in_commit_order = [
            stage for (stage,) in conn.execute("SELECT stage FROM calls ORDER BY rowid")
        ]
    finally:
        conn.close()
    assert per_stage == [(f"w{n}", per_writer, per_writer) for n in range(writers)]
    # The writers took turns: more runs of one writer's rows than there are writers.
    runs = 1 + sum(a != b for a, b in itertools.pairwise(in_commit_order))
    assert runs > writers, f"the writers wrote one after another ({runs} runs)"


def _legacy_history(folder: Path, rows: int) -> Path:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from history import HistorySpec, write_legacy_jsonl  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    write_legacy_jsonl(HistorySpec(rows=rows, seed=11, days=2.0), folder)
    return folder


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc")
def test_an_import_killed_midway_leaves_the_store_exactly_as_before(
    attune_home: Path, tmp_path: Path
) -> None:
    seeded = subprocess.run(
        _attune("telemetry", "record", "-w", "wf", "-s", "st", "-m", "m", "--success"),
        env=_env(attune_home),
        capture_output=True,
        text=True,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr
    source = _legacy_history(tmp_path / "legacy", 60_000)
    db_path = attune_home / "telemetry.db"
    proc = subprocess.Popen(
        _attune("telemetry", "import", str(source)),
        env=_env(attune_home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    # Kill it once it has read a good share of the history (rows are going in by then).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        io = dict(
            line.split(": ")
            for line in Path(f"/proc/{proc.pid}/io").read_text().splitlines()
            if ": " in line
        )
        if int(io["rchar"]) > 3_000_000:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the import finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.stderr is not None
    proc.stderr.close()

    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT model FROM calls").fetchall() == [("m",)]
        assert conn.execute("SELECT kind, value FROM labels ORDER BY 1, 2").fetchall() == [
            ("model", "m"),
            ("stage", "st"),
            ("workflow", "wf"),
        ]
    finally:
        conn.close()


def _spawn(home: Path, *args: str) -> Any:
    import pexpect

    argv = _attune(*args)
    return pexpect.spawn(
        argv[0],
        argv[1:],
        env={**_env(home), "TERM": "xterm"},
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 120),
    )


def test_prune_in_a_terminal_asks_first_and_a_no_keeps_everything(attune_home: Path) -> None:
    import pexpect

    from attune_cli.core.telemetry.records import CallRecord
    from attune_cli.core.telemetry.sqlite import TelemetryStore

    old = time.time() - 40 * 86_400
    with TelemetryStore(attune_home / "telemetry.db") as store:
        store.record_many(CallRecord("wf", "st", "m", True, ts=old + i) for i in range(3))
        store.record(CallRecord("wf", "st", "m", True))

    child = _spawn(attune_home, "telemetry", "prune", "--older-than", "30")
    child.expect(r"Delete 3 calls older than 30 days \(before \d{4}-\d\d-\d\d\)\? \[y/N\]")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert "Nothing deleted" in (child.before or "")

    child = _spawn(attune_home, "telemetry", "prune", "--older-than", "30")
    child.expect(r"\[y/N\]")
    child.sendline("y")
    child.expect("Deleted 3 calls older than 30 days")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    with TelemetryStore(attune_home / "telemetry.db") as store:
        assert store.count() == 1
