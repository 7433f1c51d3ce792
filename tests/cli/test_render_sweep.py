"""Every table at 60, 80, 100 and 160 columns and in a pipe: no figure is ever cut or split.

A figure is a number, an amount, a model id, a breaker key or a verdict. A column may be left
out at a narrow width only when the output says so; every figure of every column still shown
must appear whole, on one line, and no line is wider than the terminal.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attune_cli.cli import console as console_module
from attune_cli.cli.app import app
from attune_cli.core.breaker.sqlite import CircuitBreaker
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

runner = CliRunner()
WIDTHS = (60, 80, 100, 160)
LONG_URL = "http://127.0.0.1:11434/a/rather/long/path/to/a/local/server/v1"


def seed(home: Path) -> None:
    now = time.time()
    calls = [
        CallRecord(
            model="claude-haiku-4-5",
            provider="anthropic",
            tier="cheap",
            workflow="code-review",
            stage="analysis",
            success=True,
            latency_ms=1453.0,
            cost_usd=0.000035,
            input_tokens=12_345,
            output_tokens=678,
            ts=now - 600 + i,
        )
        for i in range(20)
    ]
    calls.append(
        CallRecord(
            model="gpt-4o-mini",
            provider="openai",
            workflow="code-review",
            stage="analysis",
            success=False,
            status=503,
            error_kind="server_error",
            latency_ms=20_000.0,
            cost_usd=20.0,
            ts=now - 60,
        )
    )
    with TelemetryStore(home / "telemetry.db") as store:
        store.record_many(calls)
    with CircuitBreaker(home / "telemetry.db", clock=lambda: now) as breaker:
        for _ in range(5):
            breaker.after_call(breaker.before_call("anthropic/claude-haiku-4-5"), failure=True)
        # An endpoint's breaker opens on its first failed connection.
        breaker.after_call(breaker.before_call(f"endpoint:{LONG_URL}"), failure=True)


# Each table: the command, and per column header the figures it must show whole.
TABLES: dict[str, tuple[list[str], dict[str, list[str]]]] = {
    "telemetry show": (
        ["telemetry", "show"],
        {
            "Model": ["claude-haiku-4-5", "gpt-4o-mini"],
            "Cost": ["$0.000035", "$20.00"],
            "ms": ["1,453", "20,000"],
            "Tokens in/out": ["12,345/678"],
            "Result": ["failed server_error 503"],
            "Workflow / stage": ["code-review / analysis"],
        },
    ),
    "telemetry models": (
        ["telemetry", "models"],
        {
            "Model": ["claude-haiku-4-5", "gpt-4o-mini"],
            "Avg cost": ["$0.000035", "$20.00"],
            "p95 ms": ["1,453", "20,000"],
            "Calls": ["20"],
            "Success ≥ bound": ["100.0% ≥ 83.9%", "0.0% ≥ 0.0%"],
            "Score": ["Score"],
        },
    ),
    "route explain": (
        ["route", "explain", "analysis", "--workflow", "code-review"],
        {
            "Model": ["claude-haiku-4-5", "gpt-4o-mini"],
            "Cost/call": ["$0.000035", "$20.00"],
            "p95 ms": ["1,453", "20,000"],
            "Verdict": ["chosen", "ruled out"],
            "": ["→"],
        },
    ),
    "route stats": (
        ["route", "stats", "--workflow", "code-review", "--stage", "analysis"],
        {
            "Workflow": ["code-review"],
            "Cost": ["$20.00"],
            "Would use": ["claude-haiku-4-5"],
            "Model": ["gpt-4o-mini"],
            "Cost/call": ["$0.000035"],
        },
    ),
    "route check": (
        ["route", "check"],
        {"Workflow": ["code-review"], "Stage": ["analysis"], "Advice": ["keep"]},
    ),
    "route breakers": (
        ["route", "breakers"],
        {
            "Breaker": ["anthropic/claude-haiku-4-5", f"endpoint:{LONG_URL}"],
            "State": ["open"],
            "Failed/calls": ["5/5"],
        },
    ),
    "auth status": (
        ["auth", "status"],
        {"Base URL": [LONG_URL], "Key": ["sk-…"], "Provider": ["openai", "anthropic"]},
    ),
}


@pytest.fixture
def seeded(attune_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key-abcd")
    monkeypatch.setenv("OPENAI_BASE_URL", LONG_URL)
    seed(attune_home)
    return attune_home


def left_out(output: str) -> set[str]:
    match = re.search(r"Left out to fit(?: \d+ columns)?: ([^(\n]+)", output)
    if not match:
        return set()
    return {name.strip().rstrip(".") for name in match.group(1).split(",")}


def check(output: str, width: int, figures: dict[str, list[str]]) -> int:
    """Assert the table is whole at ``width``; returns how many figures were found whole."""
    # A key hint (sk-…abcd) is the one ellipsis attune writes on purpose.
    assert "…" not in re.sub(r"sk-…\w{4}", "", output)
    lines = output.splitlines()
    # Only a record line whose value is one id longer than the terminal may be wider.
    too_wide = [line for line in lines if len(line) > width and len(line.split()[-1]) < width // 2]
    assert not too_wide, f"lines wider than {width}: {too_wide}"
    dropped = left_out(output)
    found = 0
    for header, values in figures.items():
        if header in dropped:
            continue
        for value in values:
            assert any(value in line for line in lines), (
                f"{value!r} ({header or 'marker'}) is not whole at {width} columns:\n{output}"
            )
            found += 1
    return found


def in_process(args: list[str], width: int, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", str(width))
    console_module.out.cache_clear()
    console_module.err.cache_clear()
    try:
        result = runner.invoke(app, args)
    finally:
        console_module.out.cache_clear()
        console_module.err.cache_clear()
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_figure_is_whole_at_every_width(
    table: str, width: int, seeded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args, figures = TABLES[table]
    # Leaving columns out is allowed; leaving every figure out is not.
    assert check(in_process(args, width, monkeypatch), width, figures) > 0


@pytest.mark.e2e
@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_figure_is_whole_in_a_pipe(table: str, seeded: Path) -> None:
    args, figures = TABLES[table]
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    result = subprocess.run(
        [sys.executable, "-m", "attune_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert check(result.stdout, 80, figures) > 0


def test_a_narrow_terminal_says_which_columns_it_left_out(
    seeded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = in_process(["telemetry", "models"], 160, monkeypatch)
    output = in_process(["telemetry", "models"], 80, monkeypatch)
    assert "Provider" in full and "Left out" not in full
    assert "Left out to fit 80 columns: Provider" in output
    assert "Provider" not in output.split("Left out")[0]


def test_below_the_essential_columns_each_row_becomes_a_block(
    seeded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = in_process(["route", "breakers"], 60, monkeypatch)
    assert re.search(r"^Breaker\s+anthropic/claude-haiku-4-5$", output, re.M)
    assert re.search(r"^State\s+open$", output, re.M)


@pytest.mark.parametrize("width", (50, *WIDTHS))
def test_the_wizards_comparison_keeps_every_figure_whole(width: int) -> None:
    import io

    from rich.console import Console

    from attune_cli.cli.auth_views import comparison_view
    from attune_cli.core.auth import AuthStrategy
    from attune_cli.core.estimate import compare_modes
    from attune_cli.core.plans import AuthMode
    from attune_cli.core.registry import load_registry

    strategy = AuthStrategy(subscription_tier="max")
    options = compare_modes(strategy, 1000, registry=load_registry({}, Path("config.toml")))
    console = Console(file=io.StringIO(), width=width, color_system=None)

    console.print(comparison_view(options, 1000, AuthMode.AUTO, width))

    output = console.file.getvalue()  # type: ignore[attr-defined]
    check(output, width, {"": ["claude-sonnet-4-5", "$0.027", "1,000-line", "(recommended)"]})
    assert output.count("(recommended)") == 1
