"""Concurrency: many attune processes on one machine, one set of files, nothing lost or torn.

* 8 processes × 500 telemetry records (the soak run: × 20,000), each its own transaction,
  with readers in between, released at once → exactly 4,000 rows, every process's every
  record present once, ``integrity_check`` ok.
* 8 ``attune ask`` processes against a failing 127.0.0.1 server → the half-open breaker admits
  one probe at a time across all of them (the server never sees two probes overlap), none
  during a live lease, and the late success of a probe whose lease expired (a stale result)
  does not close it.
* ``auth login`` from two processes at once → one valid credentials file holding both keys,
  never a torn one (a reader parses it all along).
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest
from helpers.reliability import (
    FAKE_ANTHROPIC_KEY,
    FAKE_OPENAI_KEY,
    Exchange,
    LoopbackServer,
    attune,
    overlapping,
    start_attune,
)

from attune_cli.core.breaker.sqlite import CircuitBreaker
from attune_cli.core.credentials import store_key
from attune_cli.core.paths import Paths

pytestmark = pytest.mark.e2e

PROCESSES = 8
RECORDS = 500

# Each record is its own transaction, as `attune ask` writes one per attempt; every 100th
# record the process also reads the router's figures, so readers and writers interleave.
# (tests/e2e/test_telemetry_e2e.py runs 8 x 500 through the `telemetry record` command; this
# is the store itself at four times that volume, with readers.)
RECORDER = """
import sys
from pathlib import Path
from attune_cli.core.performance import ScoreWeights
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

store = TelemetryStore(Path(sys.argv[1]))
name, records = sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()
for seq in range(records):
    store.record(CallRecord(workflow=name, stage="race", model="gpt-5-mini",
                            success=seq % 3 != 0, latency_ms=float(seq), provider="openai"))
    if seq % 100 == 99:
        store.model_performance(workflow=None, stage="race", since_ts=None, weights=ScoreWeights())
store.close()
"""


def release_together(
    script: str,
    argvs: list[list[str]],
    timeout_s: float = 120,
    env: dict[str, str] | None = None,
) -> list[str]:
    """Start one ``python -c script`` per argv, release them together once all are ready."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, *argv],
            env={**os.environ, **(env or {})},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = []
        for child in children:
            stdout, stderr = child.communicate(timeout=timeout_s)
            assert child.returncode == 0, stderr
            outputs.append(stdout)
        return outputs
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def close_pipes(child: subprocess.Popen[str]) -> None:
    """Close the pipes of a child the test waited for (a wait alone leaves them open)."""
    for pipe in (child.stdin, child.stdout, child.stderr):
        if pipe is not None:
            pipe.close()


def check_records(db_file: Path, processes: int, records: int) -> None:
    conn = sqlite3.connect(db_file)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT COUNT(*) FROM calls").fetchone() == (processes * records,)
        for index in range(processes):
            seqs = [
                int(v)
                for (v,) in conn.execute(
                    "SELECT latency_ms FROM calls WHERE workflow = ? ORDER BY latency_ms",
                    (f"proc-{index}",),
                )
            ]
            assert seqs == list(range(records)), f"proc-{index} lost or doubled records"
        labels = {v for (v,) in conn.execute("SELECT value FROM labels WHERE kind='workflow'")}
        assert labels == {f"proc-{i}" for i in range(processes)}
    finally:
        conn.close()


@pytest.mark.parametrize(
    "records",
    [RECORDS, pytest.param(RECORDS * 40, marks=pytest.mark.soak)],
    ids=["8x500", "8x20000"],
)
def test_8_processes_recording_at_once_lose_no_row(attune_home: Path, records: int) -> None:
    db_file = attune_home / "telemetry.db"
    argvs = [[str(db_file), f"proc-{i}", str(records)] for i in range(PROCESSES)]
    release_together(RECORDER, argvs, timeout_s=1800)
    check_records(db_file, PROCESSES, records)
    assert stat.S_IMODE(db_file.stat().st_mode) == 0o600
    print(f"telemetry: {PROCESSES} processes x {records} records = {PROCESSES * records} rows")


@pytest.mark.soak
def test_soak_8_processes_x_500_cli_records(attune_home: Path) -> None:
    """The same volume through the real `attune telemetry record` command: 4,000 processes."""
    probe = attune("telemetry", "record", "--help")
    if probe.returncode != 0:
        pytest.skip("`attune telemetry record` is not available")
    script = """
import subprocess, sys
name, records = sys.argv[1], int(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
for seq in range(records):
    result = subprocess.run(
        [sys.executable, "-m", "attune_cli", "telemetry", "record", "--workflow", name,
         "--stage", "race", "--model", "gpt-5-mini", "--success", "--latency-ms", str(seq)],
        capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(result.stderr)
"""
    release_together(script, [[f"proc-{i}", str(RECORDS)] for i in range(PROCESSES)], 3600)
    check_records(attune_home / "telemetry.db", PROCESSES, RECORDS)


# --- the circuit breaker under 8 `attune ask` processes ---------------------------------------

BREAKER_CONFIG = """\
[executor]
max_retries = 0

[breaker]
consecutive_failures = 5
open_base_s = {open_s}
open_max_s = {open_s}
probe_lease_s = {lease_s}
"""
KEY = "openai/gpt-5-mini"


def write_config(home: Path, text: str) -> None:
    home.mkdir(mode=0o700, exist_ok=True)
    (home / "config.toml").write_text(text)


def breaker_row(home: Path) -> tuple[str, int, float | None]:
    conn = sqlite3.connect(home / "telemetry.db")
    try:
        row = conn.execute(
            "SELECT state, generation, open_until FROM breakers WHERE key = ?", (KEY,)
        ).fetchone()
    finally:
        conn.close()
    assert row is not None
    return row


def test_8_ask_processes_probe_one_at_a_time_and_a_stale_success_never_closes(
    attune_home: Path,
) -> None:
    """The first probe hangs past its lease; 8 processes then ask in a loop; the hung probe
    finally succeeds. The server must never see two probes in flight among the 8, and the
    hung probe's late success (issued before the re-opens) must not close the breaker."""
    hung_arrived = threading.Event()
    release_hung = threading.Event()
    lock = threading.Lock()
    served = [0]

    def script(exchange: Exchange) -> None:
        with lock:
            first = served[0] == 0
            served[0] += 1
        if first:
            hung_arrived.set()
            release_hung.wait(timeout=60)
            exchange.answer("late but fine")
        else:
            # Failing slowly: a second request while one is in flight is a second probe.
            time.sleep(0.15)
            exchange.error(500, "server_error", "down")

    write_config(attune_home, BREAKER_CONFIG.format(open_s=0.2, lease_s=1))
    with CircuitBreaker(attune_home / "telemetry.db") as breaker:
        for _ in range(5):
            breaker.after_call(breaker.before_call(KEY), failure=True)
    # The open period is over: the next call is the half-open probe.
    with sqlite3.connect(attune_home / "telemetry.db") as conn:
        conn.execute("UPDATE breakers SET open_until = ?", (time.time() - 1,))

    with LoopbackServer(script) as server:
        env = server.openai_env
        hung = start_attune("ask", "hi", "-m", "gpt-5-mini", "--json", env=env)
        try:
            assert hung_arrived.wait(timeout=30), "the first probe never arrived"
            # Each process asks in a loop until the stop file appears, which the test
            # creates once three more probes have failed (a condition, not a timer).
            loop = """
import json, os, subprocess, sys
stop = sys.argv[1]
print("ready", flush=True)
sys.stdin.readline()
sent = refused = 0
while not os.path.exists(stop):
    result = subprocess.run(
        [sys.executable, "-m", "attune_cli", "ask", "hi", "-m", "gpt-5-mini", "--json"],
        capture_output=True, text=True)
    if result.returncode != 1 or "Traceback" in result.stderr:
        sys.exit(result.stderr)
    for attempt in json.loads(result.stdout)["attempts"]:
        sent += attempt["status"] is not None
        refused += attempt["error_kind"] == "breaker_open"
print(sent, refused, flush=True)
"""
            stop_file = attune_home.parent / "stop-asking"

            def stop_after_three_probes() -> None:
                limit = time.monotonic() + 90
                while len(server.visits) < 4 and time.monotonic() < limit:
                    time.sleep(0.05)
                stop_file.touch()

            stopper = threading.Thread(target=stop_after_three_probes, daemon=True)
            stopper.start()
            outputs = release_together(loop, [[str(stop_file)]] * PROCESSES, env=env)
            stopper.join()
            before_release = breaker_row(attune_home)
            release_hung.set()
            out, err = hung.communicate(timeout=60)
        finally:
            release_hung.set()
            if hung.poll() is None:
                hung.kill()
                hung.wait()
        visits = server.visits

    assert hung.returncode == 0, err
    assert json.loads(out)["content"] == "late but fine"
    sent = sum(int(o.split()[0]) for o in outputs)
    refused = sum(int(o.split()[1]) for o in outputs)
    probes = visits[1:]
    assert len(probes) == sent >= 2, "every request the server saw is one attempt attune sent"
    assert overlapping(probes) == [], "two probes were in flight at once"
    assert probes[0].arrived - visits[0].arrived >= 0.9, "a probe went out during a live lease"
    state, generation, _ = before_release
    assert state == "open" and generation == 1 + len(probes)  # one re-open per failed probe
    assert breaker_row(attune_home) == before_release, "a stale success changed the breaker"
    breakers = json.loads(attune("route", "breakers", "--json").stdout)
    # Still open, or half-open now that its short open period passed: never closed.
    assert [b["state"] for b in breakers if b["key"] == KEY] in (["open"], ["half_open"])
    print(
        f"breaker: {PROCESSES} processes, {sent + refused} attempts, {len(probes)} probes "
        f"never two at once, {refused} refused, a stale success ignored"
    )


# --- two `auth login` processes at once --------------------------------------------------


def blocked_on_lock(pids: set[int]) -> set[int]:
    """The pids among ``pids`` that /proc/locks shows waiting for a lock."""
    waiting = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields:
            pid = int(fields[fields.index("->") + 4])
            if pid in pids:
                waiting.add(pid)
    return waiting


def test_two_auth_logins_at_once_leave_one_valid_file_with_both_keys(attune_home: Path) -> None:
    import fcntl

    paths = Paths(attune_home, attune_home)
    store_key(paths, "openai", "sk-seed-key-0000000000")  # the file and its lock exist
    credentials = paths.credentials_file
    lock_file = attune_home / ".credentials.toml.lock"
    torn: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                tomllib.loads(credentials.read_text())
            except (tomllib.TOMLDecodeError, FileNotFoundError) as exc:
                torn.append(repr(exc))

    watcher = threading.Thread(target=reader, daemon=True)
    watcher.start()
    try:
        for round_number in range(3):
            anthropic_key = f"{FAKE_ANTHROPIC_KEY}{round_number}"
            openai_key = f"{FAKE_OPENAI_KEY}{round_number}"
            # Hold the file's lock so both logins reach their read-modify-write and wait
            # there together; released, they race for it.
            fd = os.open(lock_file, os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                children = {
                    "anthropic": start_attune(
                        "auth",
                        "login",
                        "anthropic",
                        "--with-key-stdin",
                        "--force",  # rounds 2 and 3 replace the key on purpose
                        stdin=subprocess.PIPE,
                    ),
                    "openai": start_attune(
                        "auth",
                        "login",
                        "openai",
                        "--with-key-stdin",
                        "--force",
                        stdin=subprocess.PIPE,
                    ),
                }
                for name, key in (("anthropic", anthropic_key), ("openai", openai_key)):
                    stdin = children[name].stdin
                    assert stdin is not None
                    stdin.write(key)
                    stdin.close()
                pids = {child.pid for child in children.values()}
                limit = time.monotonic() + 30
                while blocked_on_lock(pids) != pids and time.monotonic() < limit:
                    time.sleep(0.01)
                assert blocked_on_lock(pids) == pids, "the logins did not wait for the lock"
            finally:
                os.close(fd)
            for child in children.values():
                try:
                    assert child.wait(timeout=30) == 0, child.stderr.read() if child.stderr else ""
                finally:
                    close_pipes(child)
            document = tomllib.loads(credentials.read_text())
            assert document["anthropic"]["api_key"] == anthropic_key
            assert document["openai"]["api_key"] == openai_key
            assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    finally:
        stop.set()
        watcher.join()
    assert torn == [], f"a reader saw a torn credentials file: {torn[:3]}"
    assert sorted(p.name for p in attune_home.glob(".credentials.toml.*.tmp")) == []
