"""Hostile names and messages, through the real `attune` process as a person runs it."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

# What a terminal obeys instead of showing: ESC sequences (clear screen, home, OSC window
# title), a one-byte C1 CSI, DEL, and a right-to-left override.
CLEAR_SCREEN = "\x1b[2J\x1b[H"
WINDOW_TITLE = "\x1b]0;pwned\x07"
HOSTILE = f"m{CLEAR_SCREEN}{WINDOW_TITLE}\x9b31m\x7f\u202etxt.exe"
RAW = ("\x1b", "\x9b", "\x7f", "\u202e", "\x07")


def run(
    home: Path, *args: str, stdin: str | None = None, columns: int = 160
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATTUNE_", "XDG_"))}
    env.update(ATTUNE_HOME=str(home), COLUMNS=str(columns), NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "attune_cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def raw_controls(text: str) -> list[str]:
    return [char for char in RAW if char in text]


REPORTS = (
    ("telemetry", "show"),
    ("telemetry", "models"),
    ("telemetry", "models", "-w", "wf", "-s", "st"),
    ("route", "explain", "st", "-w", "wf"),
    ("route", "stats"),
    ("route", "stats", "-w", "wf", "-s", "st"),
    ("route", "check"),
)


MARKUP_NAMES = ("[/]", "[bold]x[/bold]", "[link=file:///etc]y", "a[/b]")


def test_rich_markup_in_a_recorded_name_is_shown_as_typed_by_every_report(
    attune_home: Path,
) -> None:
    # One store holds every name, so each report (a process of its own) shows them all at once.
    for name in MARKUP_NAMES:
        recorded = run(attune_home, "telemetry", "record", "-w", "wf", "-s", "st", "-m", name,
                       "--success", "--latency-ms", "120")  # fmt: skip
        assert recorded.returncode == 0, recorded.stderr
    for report in REPORTS:
        result = run(attune_home, *report)
        assert result.returncode == 0, (report, result.stderr)
        assert "Error" not in result.stderr, (report, result.stderr)
        if report[1] != "check":
            for name in MARKUP_NAMES:
                assert name in result.stdout, (report, name, result.stdout)


def seed_hostile_rows(home: Path, name: str) -> None:
    """Rows written before names were checked (or by another tool): straight into SQLite."""
    assert run(home, "telemetry", "record", "-w", "wf", "-s", "st", "-m", "ok",
               "--success").returncode == 0  # fmt: skip
    conn = sqlite3.connect(home / "telemetry.db")
    now = time.time()
    with conn:
        for i in range(12):
            conn.execute(
                "INSERT INTO calls (ts, workflow, stage, provider, model, tier, success, "
                "error_kind, latency_ms, source, import_key) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (now - i, name, name, name, name, "cheap", i % 2, name, 100.0, name, f"k{i}"),
            )
            conn.execute(
                "INSERT INTO calls (ts, workflow, stage, model, success, latency_ms, import_key)"
                " VALUES (?,?,?,?,?,?,?)",
                (now - i, "wf", "st", name, 1, 90.0, f"j{i}"),
            )
        conn.execute(
            "INSERT INTO breakers (key, state, opened_at, open_until) VALUES (?, 'open', ?, ?)",
            (f"{name}/{name}", now, now + 60),
        )
    conn.close()


def test_escape_sequences_in_stored_names_are_shown_escaped_never_sent_to_the_terminal(
    attune_home: Path,
) -> None:
    seed_hostile_rows(attune_home, HOSTILE)
    for report in (*REPORTS, ("route", "breakers"), ("route", "explain", HOSTILE[:1] + "x")):
        result = run(attune_home, *report)
        assert result.returncode == 0, (report, result.stderr)
        assert raw_controls(result.stdout + result.stderr) == [], report
    shown = run(attune_home, "telemetry", "show", columns=400).stdout
    assert "\\x1b[2J\\x1b[H" in shown
    assert "\\x1b]0;pwned\\x07" in shown
    assert "\\x9b31m" in shown and "\\u202etxt.exe" in shown
    # --json is for programs: the stored value, exactly (JSON escapes it).
    stored = json.loads(run(attune_home, "telemetry", "show", "--json").stdout)
    assert HOSTILE in {call["model"] for call in stored}


@pytest.mark.parametrize("char", ["\x1b", "\x9b", "\x7f", "\u202e", "\u2066", "\u2028", "\t"])
def test_control_and_bidi_characters_are_refused_when_recording(
    attune_home: Path, char: str
) -> None:
    result = run(attune_home, "telemetry", "record", "-w", "wf", "-s", "st", "-m",
                 f"m{char}x", "--success")  # fmt: skip
    assert result.returncode == 2
    assert "control or bidirectional" in result.stderr
    assert raw_controls(result.stderr) == []
    assert not (attune_home / "telemetry.db").exists()


def test_an_import_with_escape_sequences_in_names_imports_nothing_and_shows_them_escaped(
    attune_home: Path, tmp_path: Path
) -> None:
    lines = [
        {"ts": "2026-01-01T00:00:00.000Z", "workflow": "wf", "stage": "st", "model": "ok",
         "success": True},
        {"ts": "2026-01-01T00:00:01.000Z", "workflow": f"wf{CLEAR_SCREEN}", "stage": "st",
         "model": "ok", "success": True},
        {"ts": "2026-01-01T00:00:02.000Z", "workflow": "wf", "stage": "st",
         "model": f"x{WINDOW_TITLE}\u202e", "success": True},
    ]  # fmt: skip
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    result = run(attune_home, "telemetry", "import", str(path))
    assert result.returncode == 2, result.stderr
    assert "calls.jsonl:2: `workflow` holds control or bidirectional characters" in result.stderr
    assert "calls.jsonl:3: `model` holds control or bidirectional characters" in result.stderr
    assert "\\x1b]0;pwned\\x07" in result.stderr
    assert raw_controls(result.stdout + result.stderr) == []
    assert json.loads(run(attune_home, "telemetry", "show", "--json").stdout) == []


def test_a_legacy_log_with_a_bidi_override_in_a_name_is_refused_line_by_line(
    attune_home: Path, tmp_path: Path
) -> None:
    entry = {"v": "1.0", "ts": "2026-01-01T00:00:00.000Z", "seq": 1, "workflow": "review",
             "stage": "ana\u202elysis", "tier": "CHEAP", "model": "claude-haiku-4-5",
             "provider": "anthropic", "cost": 0.001, "duration_ms": 700}  # fmt: skip
    path = tmp_path / "usage.jsonl"
    path.write_text(json.dumps(entry) + "\n", encoding="utf-8")
    result = run(attune_home, "telemetry", "import", str(path), "--skip-bad")
    assert result.returncode == 1  # nothing importable
    assert "usage.jsonl:1: `stage` holds control or bidirectional characters" in result.stderr
    assert "ana\\u202elysis" in result.stderr
    assert raw_controls(result.stderr) == []


def test_a_control_character_in_a_config_name_is_an_error_naming_the_file(
    attune_home: Path,
) -> None:
    attune_home.mkdir(parents=True, exist_ok=True)
    (attune_home / "config.toml").write_text(
        '[routing.stages]\n"ana\\u001b[2Jlysis" = "cheap"\n', encoding="utf-8"
    )
    result = run(attune_home, "route", "explain", "analysis")
    assert result.returncode == 2
    assert "config.toml" in result.stderr and "routing.stages" in result.stderr
    assert "ana\\x1b[2Jlysis" in result.stderr
    assert raw_controls(result.stderr) == []


def test_an_error_quotes_at_most_80_characters_of_a_huge_value(
    attune_home: Path, tmp_path: Path
) -> None:
    huge = "2026-01-01T" + "9" * 5_000_000
    path = tmp_path / "calls.jsonl"
    path.write_text(json.dumps({"ts": huge, "model": "m", "success": True}) + "\n")
    result = run(attune_home, "telemetry", "import", str(path))
    assert result.returncode == 2
    assert len(result.stderr) < 1_000, len(result.stderr)
    assert "(5,000,011 characters)" in result.stderr


def test_paths_holding_markup_are_shown_as_typed_by_auth_commands(tmp_path: Path) -> None:
    home = tmp_path / "[red]home"
    source = tmp_path / "[bold]module.py"
    source.write_text("x = 1\n" * 30)
    for args in (
        ("auth", "setup", "--tier", "pro", "--mode", "api", "--yes"),
        ("auth", "status"),
        ("auth", "recommend", str(source)),
        ("auth", "reset", "--yes"),
    ):
        result = run(home, *args)
        assert result.returncode == 0, (args, result.stderr)
        shown = (result.stdout + result.stderr).replace("\n", "").replace("│", "")
        assert "[red]home" in shown or "[bold]module.py" in shown, (args, shown)
