"""`attune telemetry show|models|record|import|export|prune` as a person or a script runs them."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from attune_cli.cli.app import app
from attune_cli.core.telemetry import db
from attune_cli.core.telemetry.records import CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

runner = CliRunner()
DAY = 86_400.0


def seed(home: Path, model: str, n: int, *, failures: int = 0, **fields: object) -> None:
    """``n`` calls of ``model`` over the last hour; ``failures`` of them failed."""
    now = time.time()
    values: dict[str, object] = {"workflow": "code-review", "stage": "analysis"}
    values.update(fields)
    with TelemetryStore(home / "telemetry.db") as store:
        store.record_many(
            CallRecord(
                model=model,
                success=i >= failures,
                ts=now - 3600 + i,
                **values,  # type: ignore[arg-type]
            )
            for i in range(n)
        )


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, ["telemetry", *args], input=input)


def legacy_line(seq: int, **changes: object) -> str:
    entry: dict[str, object] = {
        "v": "1.0",
        "ts": f"2026-01-01T00:00:{seq % 60:02d}.{seq:03d}Z",
        "seq": seq,
        "workflow": "code-review",
        "tier": "CHEAP",
        "model": "claude-haiku-4-5",
        "provider": "anthropic",
        "cost": 0.001,
        "tokens": {"input": 100, "output": 20},
        "cache": {"hit": False},
        "duration_ms": 700,
        "user_id": "u",
    }
    entry.update(changes)
    return json.dumps(entry)


# --- show -----------------------------------------------------------------------------------


def test_show_on_a_fresh_machine_says_so_and_creates_nothing(attune_home: Path) -> None:
    result = invoke("show")
    assert result.exit_code == 0
    assert "No calls recorded yet" in result.stderr
    assert invoke("show", "--json").stdout.strip() == "[]"
    assert not (attune_home / "telemetry.db").exists()


def test_record_then_show_lists_the_call_newest_first(attune_home: Path) -> None:
    first = invoke(
        "record", "-w", "code-review", "-s", "analysis", "-m", "claude-haiku-4-5", "--success",
        "--latency-ms", "840", "--input-tokens", "1000000", "--output-tokens", "0",
    )  # fmt: skip
    assert first.exit_code == 0, first.stderr
    assert first.stdout == ""
    second = invoke(
        "record", "-w", "code-review", "-s", "analysis", "-m", "gpt-5-mini", "--failure",
        "--error-kind", "timeout", "--status", "504", "--tier", "capable",
    )  # fmt: skip
    assert second.exit_code == 0, second.stderr
    shown = json.loads(invoke("show", "--json").stdout)
    assert [c["model"] for c in shown] == ["gpt-5-mini", "claude-haiku-4-5"]
    newest, oldest = shown
    assert (newest["success"], newest["error_kind"], newest["status"]) == (False, "timeout", 504)
    assert (newest["provider"], newest["tier"]) == ("openai", "capable")  # a given tier wins
    # Provider, tier and cost come from the registry when not given.
    assert (oldest["provider"], oldest["tier"], oldest["cost_usd"]) == ("anthropic", "cheap", 1.0)
    assert oldest["ts"].endswith("Z")
    table = invoke("show").stdout
    assert table.index("gpt-5-mini") < table.index("claude-haiku-4-5")
    assert "failed timeout 504" in table


def test_show_filters_and_limits(attune_home: Path) -> None:
    seed(attune_home, "a", 5)
    seed(attune_home, "b", 5, stage="draft")
    assert len(json.loads(invoke("show", "-n", "3", "--json").stdout)) == 3
    models = {c["model"] for c in json.loads(invoke("show", "-s", "draft", "--json").stdout)}
    assert models == {"b"}
    assert (
        json.loads(invoke("show", "-m", "a", "-w", "code-review", "--json").stdout)[0]["model"]
        == "a"
    )


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["show", "--limit", "-1"], "--limit"),
        (["show", "--limit", "0"], "--limit"),
        (["models", "--days", "0"], "--days"),
        (["export", "--days", "-3"], "--days"),
        (["prune", "--older-than", "0", "--yes"], "--older-than"),
        (["record", "-w", "w", "-s", "s", "-m", "m", "--success", "--latency-ms", "-5"],
         "--latency-ms"),
        (["record", "-w", "w", "-s", "s", "-m", "m", "--success", "--cost", "-1"], "--cost"),
        (["record", "-w", "w", "-s", "s", "-m", "m", "--success", "--tier", "huge"], "--tier"),
        (["record", "-w", "w", "-s", "s", "-m", "m"], "--success"),
        (["record", "-w", " ", "-s", "s", "-m", "m", "--success"], "--workflow"),
        (["import", "x.jsonl", "--format", "yaml"], "--format"),
    ],
)  # fmt: skip
def test_bad_flag_values_exit_2_naming_the_flag(
    attune_home: Path, args: list[str], flag: str
) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert flag in result.stderr
    assert not (attune_home / "telemetry.db").exists()


# --- models ---------------------------------------------------------------------------------


def test_models_ranks_by_score_and_marks_the_best(attune_home: Path) -> None:
    seed(attune_home, "steady", 400, failures=8, latency_ms=900.0, cost_usd=0.002)
    seed(attune_home, "lucky", 5, latency_ms=900.0, cost_usd=0.002)
    seed(attune_home, "pricey", 400, failures=8, latency_ms=900.0, cost_usd=0.05)
    seed(attune_home, "elsewhere", 50, stage="draft")
    result = invoke("models", "-w", "code-review", "-s", "analysis", "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["model"] for r in rows] == ["steady", "pricey", "lucky"]
    steady = rows[0]
    assert set(steady) >= {
        "model", "provider", "tier", "calls", "success_rate", "success_lower_bound",
        "p50_latency_ms", "p95_latency_ms", "avg_cost_usd", "quality_score",
    }  # fmt: skip
    assert (steady["calls"], steady["success_rate"]) == (400, 0.98)
    assert steady["success_lower_bound"] < 0.98
    table = invoke("models", "-w", "code-review", "-s", "analysis").stdout
    best_line = next(line for line in table.splitlines() if "★" in line and "steady" in line)
    assert "98.0% ≥" in best_line
    assert "score = 100·bound" in table


def test_models_reads_its_weights_from_config(attune_home: Path) -> None:
    seed(attune_home, "cheap-slow", 200, latency_ms=20_000.0, cost_usd=0.0001)
    seed(attune_home, "dear-fast", 200, latency_ms=500.0, cost_usd=0.005)
    ranked = [r["model"] for r in json.loads(invoke("models", "--json").stdout)]
    (attune_home / "config.toml").write_text("[routing.score]\nlatency_weight = 0\n")
    reweighted = [r["model"] for r in json.loads(invoke("models", "--json").stdout)]
    assert ranked == ["dear-fast", "cheap-slow"]
    assert reweighted == ["cheap-slow", "dear-fast"]
    (attune_home / "config.toml").write_text("[routing.score]\ncost_weight = -1\n")
    broken = invoke("models")
    assert broken.exit_code == 2
    assert "routing.score.cost_weight" in broken.stderr


def test_models_window_leaves_out_older_calls(attune_home: Path) -> None:
    with TelemetryStore(attune_home / "telemetry.db") as store:
        store.record(CallRecord("wf", "st", "old", True, ts=time.time() - 10 * DAY))
        store.record(CallRecord("wf", "st", "new", True, ts=time.time() - 60))
    assert [r["model"] for r in json.loads(invoke("models", "--days", "7", "--json").stdout)] == [
        "new"
    ]
    empty = invoke("models", "-w", "nothing-here")
    assert empty.exit_code == 0
    assert "No calls recorded for workflow nothing-here" in empty.stderr


def test_a_store_from_a_newer_attune_is_refused_untouched(attune_home: Path) -> None:
    attune_home.mkdir(parents=True)
    path = attune_home / "telemetry.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 5}")
    raw.close()
    before = path.read_bytes()
    for args in (["show"], ["models"], ["record", "-w", "w", "-s", "s", "-m", "m", "--success"]):
        result = invoke(*args)
        assert result.exit_code == 2, args
        assert "newer attune" in result.stderr
        assert "Traceback" not in result.stderr
    assert path.read_bytes() == before


# --- import ---------------------------------------------------------------------------------


def test_import_reports_what_it_did_and_a_second_run_adds_nothing(
    attune_home: Path, tmp_path: Path
) -> None:
    source = tmp_path / "usage.jsonl"
    source.write_text("\n".join(legacy_line(i) for i in range(30)) + "\n")
    first = invoke("import", str(source))
    assert first.exit_code == 0, first.stderr
    assert "Imported 30 new calls" in first.stdout and "(attune-jsonl)" in first.stdout
    again = invoke("import", str(source), "--json")
    assert again.exit_code == 0
    report = json.loads(again.stdout)
    assert (report["imported"], report["skipped"], report["format"], report["errors"]) == (
        0,
        30,
        "attune-jsonl",
        [],
    )
    assert len(json.loads(invoke("show", "-n", "100", "--json").stdout)) == 30


def test_import_with_bad_lines_imports_nothing_and_lists_them(
    attune_home: Path, tmp_path: Path
) -> None:
    source = tmp_path / "usage.jsonl"
    source.write_text(f"{legacy_line(1)}\n{{broken\n{legacy_line(3, ts='never')}\n")
    result = invoke("import", str(source))
    assert result.exit_code == 2
    assert "usage.jsonl:2: not JSON" in result.stderr
    assert "usage.jsonl:3: `ts` is not an ISO-8601 time" in result.stderr
    assert "2 bad lines; nothing was imported" in result.stderr
    assert "--skip-bad" in result.stderr
    assert json.loads(invoke("show", "--json").stdout) == []
    as_json = invoke("import", str(source), "--json")
    assert as_json.exit_code == 2
    report = json.loads(as_json.stdout)
    assert report["imported"] == 0
    assert [e["line"] for e in report["errors"]] == [2, 3]
    skipping = invoke("import", str(source), "--skip-bad")
    assert skipping.exit_code == 0
    assert "Imported 1 new call " in skipping.stdout
    assert "2 bad lines skipped" in skipping.stdout


def test_import_of_an_empty_file_exits_2_and_of_only_bad_lines_1(
    attune_home: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "usage.jsonl"
    empty.write_text("\n")
    result = invoke("import", str(empty))
    assert result.exit_code == 2
    assert "nothing to import" in result.stderr
    all_bad = tmp_path / "bad.jsonl"
    all_bad.write_text("nope\n")
    assert invoke("import", str(all_bad), "--skip-bad").exit_code == 1


def test_import_dry_run_writes_nothing(attune_home: Path, tmp_path: Path) -> None:
    source = tmp_path / "usage.jsonl"
    source.write_text(legacy_line(1) + "\n")
    result = invoke("import", str(source), "--dry-run")
    assert result.exit_code == 0
    assert "Would import 1 new call" in result.stdout
    assert json.loads(invoke("show", "--json").stdout) == []


def test_import_of_a_missing_file_exits_2(attune_home: Path, tmp_path: Path) -> None:
    result = invoke("import", str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 2
    assert "no such file" in result.stderr


def test_import_assigns_a_workflow_and_stage_to_rows_without_them(
    attune_home: Path, tmp_path: Path
) -> None:
    source = tmp_path / "usage.jsonl"
    source.write_text(legacy_line(1) + "\n")
    assert invoke("import", str(source), "--stage", "review").exit_code == 0
    [row] = json.loads(invoke("show", "--json").stdout)
    assert (row["workflow"], row["stage"]) == ("code-review", "review")


# --- export ---------------------------------------------------------------------------------


@pytest.mark.e2e
def test_export_round_trips_through_import(attune_home: Path, tmp_path: Path) -> None:
    seed(attune_home, "a", 20, failures=3, latency_ms=800.0, cost_usd=0.001)
    seed(attune_home, "b", 10, stage="draft")
    for fmt in ("jsonl", "csv"):
        target = tmp_path / f"calls.{fmt}"
        result = invoke("export", "-f", fmt, "-o", str(target))
        assert result.exit_code == 0, result.stderr
        assert "Exported 30 calls" in result.stderr
        stdout = invoke("export", "-f", fmt).stdout
        assert stdout == target.read_text()
    other = tmp_path / "other-home"
    jsonl = (tmp_path / "calls.jsonl").read_text()
    completed = subprocess.run(
        [sys.executable, "-m", "attune_cli", "telemetry", "import", str(tmp_path / "calls.csv")],
        env={"ATTUNE_HOME": str(other), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    exported_again = subprocess.run(
        [sys.executable, "-m", "attune_cli", "telemetry", "export"],
        env={"ATTUNE_HOME": str(other), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert exported_again == jsonl


def test_export_before_anything_was_recorded_writes_an_empty_file(
    attune_home: Path, tmp_path: Path
) -> None:
    result = invoke("export", "-f", "csv", "-o", str(tmp_path / "calls.csv"))
    assert result.exit_code == 0
    assert (tmp_path / "calls.csv").read_text().startswith("ts,workflow,stage,provider,model")
    assert invoke("export").stdout == ""
    assert not (attune_home / "telemetry.db").exists()


def test_export_filters_by_model_and_days(attune_home: Path) -> None:
    seed(attune_home, "a", 3)
    seed(attune_home, "b", 2)
    lines = invoke("export", "-m", "b", "--days", "1").stdout.splitlines()
    assert [json.loads(line)["model"] for line in lines] == ["b", "b"]
    header = invoke("export", "-f", "csv", "-m", "nobody").stdout.splitlines()
    assert header == [header[0]] and header[0].startswith("ts,workflow,stage")


# --- prune ----------------------------------------------------------------------------------


def test_prune_needs_yes_without_a_terminal_and_then_deletes(attune_home: Path) -> None:
    with TelemetryStore(attune_home / "telemetry.db") as store:
        store.record(CallRecord("wf", "st", "ancient", True, ts=time.time() - 100 * DAY))
        store.record(CallRecord("wf", "st", "fresh", True))
    refused = invoke("prune", "--older-than", "30")
    assert refused.exit_code == 2
    assert "--yes" in refused.stderr
    assert len(json.loads(invoke("show", "--json").stdout)) == 2
    done = invoke("prune", "--older-than", "30", "--yes", "--json")
    assert done.exit_code == 0
    assert json.loads(done.stdout) == {"deleted": 1, "older_than_days": 30}
    assert [c["model"] for c in json.loads(invoke("show", "--json").stdout)] == ["fresh"]
    nothing = invoke("prune", "--older-than", "30")
    assert nothing.exit_code == 0
    assert "Nothing to prune" in nothing.stderr


# --- startup cost ---------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("command", ["show", "models", "record", "import", "export", "prune"])
def test_telemetry_help_imports_no_sqlite(command: str) -> None:
    probe = (
        "import sys\n"
        "from attune_cli.cli.app import main\n"
        f"sys.argv = ['attune', 'telemetry', {command!r}, '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('@@', ' '.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    loaded = set(result.stdout.rsplit("@@", 1)[1].split())
    assert "Usage" in result.stdout
    assert not {"sqlite3", "_sqlite3", "attune_cli.core.telemetry.importers"} & loaded
