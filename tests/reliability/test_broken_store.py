"""A broken store never blocks a call: ``ask`` answers, exits 0 and warns once.

``telemetry.db`` corrupt, truncated, from a newer attune, on a read-only or a full file
system: each time, ``attune ask`` against a local server prints the answer, exits 0, and says
once that the call could not be recorded and why. Where the folder can still be written the
call waits in ``spool.jsonl``. Read commands on a read-only file system still read.

The read-only and full file systems are real mounts made in a private mount namespace
(``unshare -m``), skipped where this process may not make them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.reliability import FAKE_OPENAI_KEY, Exchange, LoopbackServer

from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

pytestmark = pytest.mark.e2e

ANSWER = "The answer is forty-two."
NOT_RECORDED = "not recorded"


def answer(exchange: Exchange) -> None:
    exchange.answer(ANSWER)


def _store_with_history(home: Path, calls: int = 2_000) -> Path:
    db = home / "telemetry.db"
    now = time.time()
    with TelemetryStore(db) as store:
        store.record_many(
            CallRecord("adhoc", "general", "gpt-5-mini", True, ts=now - i, latency_ms=100.0)
            for i in range(calls)
        )
    return db


def _corrupt(home: Path) -> None:
    (home / "telemetry.db").write_bytes(b"this is not a database\n" * 400)


def _truncated(home: Path) -> None:
    db = _store_with_history(home)
    size = db.stat().st_size
    with db.open("r+b") as handle:
        handle.truncate(size // 3)


def _newer(home: Path) -> None:
    db = _store_with_history(home, calls=10)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()


def _ask_argv() -> list[str]:
    return [sys.executable, "-m", "attune_cli", "ask", "hi", "-m", "gpt-5-mini"]


def _env(home: Path, server: LoopbackServer) -> dict[str, str]:
    return {
        **os.environ,
        **server.openai_env,
        "OPENAI_API_KEY": FAKE_OPENAI_KEY,
        "ATTUNE_HOME": str(home),
    }


def _assert_answered_and_warned_once(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert ANSWER in result.stdout
    assert "Traceback" not in result.stderr
    # Rich wraps long lines; compare words.
    stderr = " ".join(result.stderr.split())
    assert stderr.count(NOT_RECORDED) == 1, result.stderr
    return stderr


@pytest.mark.parametrize(
    ("breakage", "why"),
    [
        (_corrupt, "not a database"),
        (_truncated, "malformed"),
        (_newer, "newer attune"),
    ],
    ids=["corrupt", "truncated", "newer-schema"],
)
def test_ask_answers_with_a_broken_store_warns_once_and_spools_the_call(
    tmp_path: Path, breakage: Callable[[Path], None], why: str
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    breakage(home)
    before = (home / "telemetry.db").read_bytes()
    with LoopbackServer(answer) as server:
        result = subprocess.run(
            _ask_argv(), env=_env(home, server), capture_output=True, text=True, timeout=60
        )
        visits = len(server.visits)
    stderr = _assert_answered_and_warned_once(result)
    assert why in stderr
    assert visits == 1
    spooled = (home / "spool.jsonl").read_text().splitlines()
    assert len(spooled) == 1 and '"model":"gpt-5-mini"' in spooled[0]
    assert (home / "spool.jsonl").stat().st_mode & 0o777 == 0o600
    if breakage is not _truncated:
        assert (home / "telemetry.db").read_bytes() == before  # left untouched


def test_a_spooled_call_is_added_once_the_store_works_again(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    _corrupt(home)
    with LoopbackServer(answer) as server:
        for _ in range(2):
            _assert_answered_and_warned_once(
                subprocess.run(
                    _ask_argv(), env=_env(home, server), capture_output=True, text=True, timeout=60
                )
            )
        (home / "telemetry.db").rename(tmp_path / "broken.db")
        fine = subprocess.run(
            _ask_argv(), env=_env(home, server), capture_output=True, text=True, timeout=60
        )
    assert fine.returncode == 0 and NOT_RECORDED not in fine.stderr
    status = subprocess.run(
        [sys.executable, "-m", "attune_cli", "store", "status", "--json"],
        env={**os.environ, "ATTUNE_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert '"spooled_rows": 0' in status.stdout
    with TelemetryStore(home / "telemetry.db") as store:
        assert store.count() == 3  # the two spooled calls and the last one, each once
    assert not (home / "spool.jsonl").exists()


def _can_mount(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {probe}"],
        capture_output=True,
    )
    return done.returncode == 0


def _in_namespace(
    setup: str, argv: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in a private mount namespace after the shell commands ``setup``."""
    script = f"set -e; {setup}; exec {shlex.join(argv)}"
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", script], env=env, capture_output=True, text=True, timeout=60
    )


def _read_only(home: Path) -> str:
    return f"mount --bind {home} {home}; mount -o remount,ro,bind {home}"


def _full(home: Path) -> str:
    # A tiny file system holding the store, then filled to the last byte.
    copy = home.with_name("copy")
    shutil.copytree(home, copy)
    return (
        f"mount -t tmpfs -o size=1m,mode=0700 tmpfs {home}; cp -a {copy}/. {home}/; "
        f"dd if=/dev/zero of={home}/filler bs=4k 2>/dev/null || true"
    )


@pytest.mark.parametrize(
    ("mount", "why"),
    [(_read_only, "read-only file system"), (_full, "No space left on device")],
    ids=["read-only-fs", "full-fs"],
)
def test_ask_answers_on_a_read_only_or_full_file_system_and_says_why_once(
    tmp_path: Path, mount: Callable[[Path], str], why: str
) -> None:
    if not _can_mount(tmp_path):
        pytest.skip("cannot make mounts here (needs unshare -m and mount privileges)")
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    _store_with_history(home)
    with LoopbackServer(answer) as server:
        result = _in_namespace(mount(home), _ask_argv(), _env(home, server))
        visits = len(server.visits)
    stderr = _assert_answered_and_warned_once(result)
    assert visits == 1
    assert why.lower() in stderr.lower()
    assert "move" not in stderr  # a permissions problem is never "move the file aside"


def test_read_commands_read_a_store_on_a_read_only_file_system(tmp_path: Path) -> None:
    if not _can_mount(tmp_path):
        pytest.skip("cannot make mounts here (needs unshare -m and mount privileges)")
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    _store_with_history(home, calls=25)
    env = {**os.environ, "ATTUNE_HOME": str(home)}
    attune = [sys.executable, "-m", "attune_cli"]
    shown = _in_namespace(_read_only(home), [*attune, "store", "status", "--json"], env)
    assert shown.returncode == 0, shown.stderr
    assert '"rows": 25' in shown.stdout
    models = _in_namespace(_read_only(home), [*attune, "telemetry", "models", "--json"], env)
    assert models.returncode == 0, models.stderr
    assert "gpt-5-mini" in models.stdout
    record = [*attune, "telemetry", "record", "-w", "w", "-s", "s", "-m", "gpt-5-mini"]
    recorded = _in_namespace(_read_only(home), [*record, "--success"], env)
    assert recorded.returncode != 0
    assert "read-only file system" in " ".join(recorded.stderr.split())
    assert "move" not in recorded.stderr
