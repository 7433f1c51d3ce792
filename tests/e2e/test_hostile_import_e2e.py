"""Hostile import files and Ctrl-C during a query that never ends, in real processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ENDLESS_VIEW = """
CREATE VIEW responses AS
WITH RECURSIVE c(id, model, datetime_utc) AS (
    SELECT 1, 'gpt-5', '2026-01-01T00:00:00'
    UNION ALL SELECT id + 1, model, datetime_utc FROM c
)
SELECT * FROM c;
"""


def env(home: Path) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith(("ATTUNE_", "XDG_"))}
    values["ATTUNE_HOME"] = str(home)
    return values


def test_an_llm_db_whose_responses_is_an_endless_view_is_refused_at_once(
    attune_home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "logs.db"
    conn = sqlite3.connect(path)
    conn.executescript(ENDLESS_VIEW)
    conn.close()
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "attune_cli", "telemetry", "import", str(path)],
        env=env(attune_home),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert time.monotonic() - started < 15
    assert result.returncode == 2, result.stderr
    assert "`responses` is a view, not a table" in result.stderr


# The child runs a query that never ends under `interruptible`; SQL calls ready() once the
# query is running, so the signal lands while SQLite is in C, not between Python lines.
CHILD = textwrap.dedent(
    """
    import sqlite3, sys
    from attune_cli.core.db import interruptible

    conn = sqlite3.connect(":memory:")

    def ready() -> int:
        sys.stdout.write("ready\\n")
        sys.stdout.flush()
        return 1

    conn.create_function("ready", 0, ready)
    try:
        with interruptible(conn):
            conn.execute(
                "WITH RECURSIVE c(n) AS (SELECT ready() UNION ALL SELECT n + 1 FROM c) "
                "SELECT count(*) FROM c"
            ).fetchone()
    except KeyboardInterrupt:
        sys.stdout.write("interrupted\\n")
        sys.exit(130)
    """
)


def test_ctrl_c_stops_a_sqlite_query_that_never_ends() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=10) == 130
        assert child.stdout.read() == "interrupted\n"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
