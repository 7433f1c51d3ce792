"""`attune route` as real processes over a real telemetry.db, the way a pipeline uses it."""

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

pytestmark = pytest.mark.e2e

ATTUNE = Path(sys.executable).parent / "attune"
DAY = 86_400.0


def attune(*args: str) -> subprocess.CompletedProcess[str]:
    command = [str(ATTUNE)] if ATTUNE.exists() else [sys.executable, "-m", "attune_cli"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=60, env=os.environ.copy()
    )


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both providers callable (tests about the other case remove a key)."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")


def record(
    home: Path,
    model: str,
    n: int,
    *,
    failures: int = 0,
    latency_ms: float = 1000.0,
    cost_usd: float = 0.004,
) -> None:
    """``n`` calls a minute apart starting two days ago; the first ``failures`` failed."""
    start = time.time() - 2 * DAY
    with TelemetryStore(home / "telemetry.db") as store:
        store.record_many(
            CallRecord(
                workflow="code-review",
                stage="analysis",
                model=model,
                success=i >= failures,
                ts=start + i * 60.0,
                latency_ms=latency_ms,
                cost_usd=cost_usd,
            )
            for i in range(n)
        )


def test_a_pipeline_routes_and_the_router_follows_a_degrading_model(attune_home: Path) -> None:
    record(attune_home, "gpt-5", 400, failures=4, cost_usd=0.004)
    record(attune_home, "claude-sonnet-4-5", 400, failures=12, cost_usd=0.005)

    best = attune("route", "best", "analysis", "--workflow", "code-review")
    assert (best.returncode, best.stdout, best.stderr) == (0, "gpt-5\n", "")

    # The pipeline keeps calling gpt-5 and records what happened: its newest calls fail.
    with TelemetryStore(attune_home / "telemetry.db") as store:
        now = time.time()
        store.record_many(
            CallRecord(
                workflow="code-review",
                stage="analysis",
                model="gpt-5",
                success=i % 2 == 0,
                ts=now - 600 + i * 10,
                latency_ms=1000.0,
                cost_usd=0.004,
            )
            for i in range(30)
        )
    explained = attune("route", "explain", "analysis", "-w", "code-review", "--json")
    assert explained.returncode == 0
    doc = json.loads(explained.stdout)
    assert doc["chosen"] == "claude-sonnet-4-5" and doc["fallback"] is False
    degraded = next(c for c in doc["candidates"] if c["model"] == "gpt-5")
    assert degraded["demoted"] is True and degraded["eligible"] is False
    assert attune("route", "best", "analysis", "-w", "code-review").stdout == "claude-sonnet-4-5\n"


def test_caps_that_rule_out_everything_fall_back_and_exit_0(attune_home: Path) -> None:
    record(attune_home, "gpt-5", 100, latency_ms=4000.0)
    result = attune("route", "best", "analysis", "-w", "code-review", "--max-latency", "2000")
    assert (result.returncode, result.stdout) == (0, "claude-sonnet-4-5\n")
    explained = attune("route", "explain", "analysis", "-w", "code-review", "--max-latency", "2000")
    assert explained.returncode == 0
    assert "gpt-5: p95 latency 4,000 ms over the 2,000 ms cap" in explained.stdout.replace(
        "\n", " "
    )


def test_a_bad_flag_exits_2_naming_it_without_a_traceback(attune_home: Path) -> None:
    result = attune("route", "explain", "analysis", "--min-success", "2")
    assert result.returncode == 2
    assert "--min-success" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_corrupt_config_exits_2_naming_the_file(attune_home: Path) -> None:
    attune_home.mkdir(parents=True, exist_ok=True)
    (attune_home / "config.toml").write_text("[routing]\nwindow_days = -3\n")
    result = attune("route", "best", "analysis")
    assert result.returncode == 2
    assert "config.toml: routing.window_days" in result.stderr
    assert "Traceback" not in result.stderr


def test_explain_in_an_80_column_terminal_keeps_every_figure_whole(
    attune_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(attune_home, "claude-sonnet-4-5", 200, failures=6, cost_usd=0.0051)
    record(attune_home, "gpt-5", 30, failures=20, latency_ms=2500.0)
    monkeypatch.setenv("COLUMNS", "80")
    result = attune("route", "explain", "analysis", "--workflow", "code-review")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout
    sonnet_row = next(line for line in lines if line.lstrip("→ ").startswith("claude-sonnet-4-5"))
    assert "200" in sonnet_row and "97.0%" in sonnet_row and "$0.0051" in sonnet_row
    assert "chosen" in sonnet_row
    assert any(line.strip().startswith("• gpt-5: success bound") for line in lines)


def test_stats_and_check_in_an_80_column_terminal_keep_names_whole(
    attune_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(attune_home, "claude-sonnet-4-5", 300, failures=300)
    monkeypatch.setenv("COLUMNS", "80")
    for command in (("route", "stats", "-w", "code-review"), ("route", "check")):
        result = attune(*command)
        assert result.returncode == 0, result.stderr
        assert max(len(line) for line in result.stdout.splitlines()) <= 80
        assert "…" not in result.stdout
        assert "code-review" in result.stdout and "analysis" in result.stdout
    check = attune("route", "check").stdout
    assert "upgrade → premium" in check
    # The reason for advice that changes something is spelled out under the table.
    assert any(line.strip().startswith("• code-review / analysis:") for line in check.splitlines())
