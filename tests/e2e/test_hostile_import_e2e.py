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

from attune_cli.core.telemetry import db

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
    from attune_cli.core.telemetry.db import interruptible

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
        if child.stdout is not None:
            child.stdout.close()


ENDLESS_CALLS = f"""
CREATE VIEW calls AS
WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c)
SELECT n AS id, 0.0 AS ts, 'w' AS workflow, 's' AS stage, NULL AS provider, 'm' AS model,
       NULL AS tier, 1 AS success, NULL AS error_kind, NULL AS status, NULL AS latency_ms,
       NULL AS input_tokens, NULL AS output_tokens, NULL AS cost_usd, 1 AS attempt,
       'x' AS source, NULL AS import_key
FROM c;
CREATE VIEW rollups AS
WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c)
SELECT 'w' || n AS workflow, 's' AS stage, 'm' AS model, 0 AS hour, '' AS provider, 1 AS calls,
       1 AS successes, 0 AS quality_failures, 0 AS outage_failures, 0 AS rate_limited,
       0 AS caller_errors, 0 AS cancelled, 0.0 AS cost_usd, 0 AS costs, 0 AS input_tokens,
       0 AS output_tokens, 0 AS latencies, NULL AS newest_outage_ts
FROM c;
CREATE TABLE rollup_latency (workflow, stage, model, hour, provider, bucket, calls, latency_ms);
CREATE TABLE rollup_latency_day (workflow, stage, model, day, provider, bucket, calls, latency_ms);
CREATE TABLE labels (kind TEXT, value TEXT);
PRAGMA user_version = {db.SCHEMA_VERSION};
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_ctrl_c_stops_a_report_stuck_in_an_endless_store_query(attune_home: Path) -> None:
    attune_home.mkdir(parents=True)
    conn = sqlite3.connect(attune_home / "telemetry.db")
    conn.executescript(ENDLESS_CALLS)
    conn.close()
    child = subprocess.Popen(
        [sys.executable, "-m", "attune_cli", "route", "stats"],
        env=env(attune_home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Busy for a whole CPU second: past start-up, inside the query that never ends.
        deadline = time.monotonic() + 60
        while cpu_seconds(child.pid) < 1.0 and child.poll() is None:
            assert time.monotonic() < deadline, "the report never got busy"
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=15)
        assert child.returncode == 130, stderr
        assert "Interrupted" in stderr and "Traceback" not in stderr
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for pipe in (child.stdout, child.stderr):
            if pipe is not None:
                pipe.close()
