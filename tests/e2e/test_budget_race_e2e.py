"""Eight processes race for the last dollars of a budget: only as many pass as fit.

Each process imports attune and says so, then waits for one shared start time, set once all
eight are ready, so the eight checks hit the store within milliseconds of each other; each runs
`attune budget check --hold` (check and reservation in one transaction). On SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attune_cli.core.telemetry.records import CallRecord

pytestmark = pytest.mark.e2e

PROCESSES = 8
START_AHEAD_S = 0.2
RACER = """
import sys, time
from attune_cli.cli import app  # imported before the start line: the race is the check
print("ready", flush=True)
start = float(sys.stdin.readline())
time.sleep(max(0.0, start - time.time()))
sys.argv = ["attune", "budget", "check", "-w", "code-review", "--cost", "0.6", "--hold", "600",
            "--json"]
app.main()
"""


def race(home: Path, extra_env: dict[str, str]) -> list[dict[str, object]]:
    env = {**os.environ, "ATTUNE_HOME": str(home), **extra_env}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    for racer in racers:
        assert racer.stdout is not None and racer.stdout.readline() == "ready\n"
    # A moment ahead, so that every racer has read the start time before it comes.
    start = time.time() + START_AHEAD_S
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.write(f"{start!r}\n")
        racer.stdin.flush()
    results = []
    for racer in racers:
        out, err = racer.communicate(timeout=120)
        assert racer.returncode in (0, 1) and out.strip(), err
        document = json.loads(out)
        assert document["within"] is (racer.returncode == 0)
        results.append(document)
    return results


def spend_two_dollars(store: object) -> None:
    store.record(  # type: ignore[attr-defined]
        CallRecord("code-review", "analysis", "claude-haiku-4-5", True, cost_usd=2.0)
    )


def check_outcome(results: list[dict[str, object]]) -> None:
    # $5 a day, $2 spent: $3 left, so five holds of $0.60 fit and three do not.
    passed = [r for r in results if r["within"]]
    assert len(passed) == 5
    assert all(r["held"] for r in passed)


def write_config(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        '[budgets]\ntimezone = "UTC"\n\n[budgets.code-review]\ndaily_usd = 5\n'
    )


def test_sqlite(tmp_path: Path) -> None:
    from attune_cli.core.telemetry.sqlite import TelemetryStore

    home = tmp_path / "home"
    write_config(home)
    with TelemetryStore(home / "telemetry.db") as store:
        spend_two_dollars(store)
    check_outcome(race(home, {}))
    with TelemetryStore(home / "telemetry.db") as store:
        assert store.reserved_usd("code-review", time.time()) == pytest.approx(3.0)


def test_postgresql(tmp_path: Path, pg_url: str) -> None:
    from attune_cli.core.telemetry.postgres import PostgresCallStore

    home = tmp_path / "home"
    write_config(home)
    with PostgresCallStore(pg_url) as store:
        spend_two_dollars(store)
    check_outcome(race(home, {"ATTUNE_STORE_URL": pg_url}))
    with PostgresCallStore(pg_url) as store:
        assert store.reserved_usd("code-review", time.time()) == pytest.approx(3.0)
