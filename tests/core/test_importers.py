"""Importing call histories (the older tool, llm, attune's own export) and exporting them."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest

from attune_cli.core.errors import InputFileError
from attune_cli.core.registry import load_registry
from attune_cli.core.telemetry.importers import (
    EXPORT_FIELDS,
    MAX_LISTED_ERRORS,
    ImportOptions,
    ImportResult,
    detect_format,
    export_calls,
    export_to_path,
    import_calls,
)
from attune_cli.core.telemetry.records import CallFilter, CallRecord
from attune_cli.core.telemetry.sqlite import TelemetryStore

REGISTRY = load_registry({}, Path("config.toml"))
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def legacy(seq: int, **changes: object) -> str:
    """One line of the older attune tool's usage.jsonl."""
    entry: dict[str, object] = {
        "v": "1.0",
        "ts": f"2026-01-01T00:00:{seq % 60:02d}.{seq % 1000:03d}Z",
        "seq": seq,
        "workflow": "code-review",
        "stage": "analysis",
        "tier": "CAPABLE",
        "model": "claude-sonnet-4.5",
        "provider": "anthropic",
        "cost": 0.015,
        "tokens": {"input": 1500, "output": 500},
        "cache": {"hit": False, "type": "hash"},
        "duration_ms": 2340,
        "user_id": "4f0a39c2329486f7-secret-ish",
    }
    for key, value in changes.items():
        if value is None:
            entry.pop(key, None)
        else:
            entry[key] = value
    return json.dumps(entry)


@pytest.fixture
def store(tmp_path: Path) -> TelemetryStore:
    with TelemetryStore(tmp_path / "home" / "telemetry.db") as opened:
        yield opened


def run(store: TelemetryStore, path: Path, **options: object) -> ImportResult:
    return import_calls(store, ImportOptions(path=path, **options), registry=REGISTRY)  # type: ignore[arg-type]


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def exported(store: TelemetryStore, fmt: str = "jsonl") -> str:
    buffer = io.StringIO()
    export_calls(store, CallFilter(), fmt, buffer)
    return buffer.getvalue()


# --- the older attune tool ------------------------------------------------------------------


def test_an_old_usage_line_becomes_a_call_in_attune_terms(
    store: TelemetryStore, tmp_path: Path
) -> None:
    result = run(store, write(tmp_path / "usage.jsonl", [legacy(1, success=False)]))
    assert (result.format, result.imported, result.rejected) == ("attune-jsonl", 1, False)
    [got] = store.recent_calls(workflow=None, stage=None)
    assert got.as_dict() == {
        "ts": "2026-01-01T00:00:01.001Z",
        "workflow": "code-review",
        "stage": "analysis",
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",  # the old dotted name, as the registry spells it
        "tier": "capable",
        "success": False,
        "error_kind": None,
        "status": None,
        "latency_ms": 2340.0,
        "input_tokens": 1500,
        "output_tokens": 500,
        "cost_usd": 0.015,
        "attempt": 1,
        "source": "attune-jsonl",
        "billing": None,
        "failure_class": "quality",
    }
    assert b"secret-ish" not in store.path.read_bytes()  # user_id is dropped


def test_lines_without_a_stage_or_workflow_take_the_flags_or_unknown(
    store: TelemetryStore, tmp_path: Path
) -> None:
    path = write(tmp_path / "usage.jsonl", [legacy(1, stage=None), legacy(2, workflow=None)])
    run(store, path, stage="review")
    assert sorted((c.workflow, c.stage) for c in store.recent_calls(workflow=None, stage=None)) == [
        ("code-review", "review"),
        ("unknown", "analysis"),
    ]


def test_cache_hits_are_skipped_and_counted(store: TelemetryStore, tmp_path: Path) -> None:
    path = write(tmp_path / "usage.jsonl", [legacy(1), legacy(2, cache={"hit": True})])
    result = run(store, path)
    assert (result.imported, result.cache_hits, result.skipped) == (1, 1, 1)


def test_a_folder_imports_every_rotated_file_oldest_first(
    store: TelemetryStore, tmp_path: Path
) -> None:
    folder = tmp_path / "telemetry"
    folder.mkdir()
    write(folder / "usage.2025-12-30.jsonl", [legacy(1), legacy(2)])
    write(folder / "usage.jsonl", [legacy(3)])
    write(folder / "notes.txt", ["not a log"])
    result = run(store, folder)
    assert (result.format, result.read, result.imported) == ("attune-jsonl", 3, 3)


def test_importing_the_same_history_twice_adds_nothing(
    store: TelemetryStore, tmp_path: Path
) -> None:
    path = write(tmp_path / "usage.jsonl", [legacy(i) for i in range(50)])
    assert run(store, path).imported == 50
    again = run(store, path)
    assert (again.imported, again.duplicates, again.rejected) == (0, 50, False)
    assert store.count() == 50


def test_bad_lines_import_nothing_and_are_listed_with_line_and_reason(
    store: TelemetryStore, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "usage.jsonl",
        [
            legacy(1),
            "{not json",
            legacy(3, ts="yesterday"),
            "",
            legacy(5, model=None),
            legacy(6, cost=-1),
            legacy(7, success="yes"),
            "[1, 2]",
            legacy(9),
        ],
    )
    result = run(store, path)
    assert result.rejected and result.imported == 0
    assert store.count() == 0
    assert [(e.line, e.file) for e in result.errors] == [
        (2, "usage.jsonl"),
        (3, "usage.jsonl"),
        (5, "usage.jsonl"),
        (6, "usage.jsonl"),
        (7, "usage.jsonl"),
        (8, "usage.jsonl"),
    ]
    reasons = [e.reason for e in result.errors]
    assert reasons[0].startswith("not JSON")
    assert "`ts`" in reasons[1] and "yesterday" in reasons[1]
    assert reasons[2] == "missing `model`"
    assert "`cost`" in reasons[3]
    assert "`success`" in reasons[4]
    assert reasons[5] == "not a JSON object"


def test_skip_bad_imports_the_good_lines_and_reports_the_rest(
    store: TelemetryStore, tmp_path: Path
) -> None:
    path = write(tmp_path / "usage.jsonl", [legacy(1), "oops", legacy(3)])
    result = run(store, path, skip_bad=True)
    assert (result.imported, result.bad, result.rejected) == (2, 1, False)
    assert result.as_dict()["errors"] == [
        {"line": 2, "reason": result.errors[0].reason, "file": "usage.jsonl"}
    ]
    assert result.as_dict()["skipped"] == 1


def test_the_listing_stops_at_its_limit_but_skip_bad_counts_every_bad_line(
    store: TelemetryStore, tmp_path: Path
) -> None:
    path = write(tmp_path / "usage.jsonl", ["bad"] * (MAX_LISTED_ERRORS + 30) + [legacy(1)])
    assert len(run(store, path).errors) == MAX_LISTED_ERRORS
    result = run(store, path, skip_bad=True)
    assert (result.bad, len(result.errors), result.imported) == (MAX_LISTED_ERRORS + 30, 20, 1)


def test_a_dry_run_counts_everything_and_writes_nothing(
    store: TelemetryStore, tmp_path: Path
) -> None:
    path = write(tmp_path / "usage.jsonl", [legacy(1), legacy(2)])
    result = run(store, path, dry_run=True)
    assert (result.imported, result.dry_run) == (2, True)
    assert store.count() == 0
    assert store.labels("workflow") == []


def test_an_interrupted_import_leaves_the_store_as_it_was(
    store: TelemetryStore, tmp_path: Path
) -> None:
    store.record(CallRecord("wf", "st", "m", True, ts=T0))
    path = write(tmp_path / "usage.jsonl", [legacy(i) for i in range(30_000)])

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_calls(store, ImportOptions(path=path), registry=REGISTRY, progress=interrupt)
    assert store.count() == 1
    assert store.labels("workflow") == ["wf"]
    assert run(store, path).imported == 30_000  # and the store still works


def test_an_import_interrupted_after_committing_chunks_is_undone_and_other_calls_stay(
    store: TelemetryStore, tmp_path: Path
) -> None:
    path = write(tmp_path / "usage.jsonl", [legacy(i) for i in range(30_000)])
    other = TelemetryStore(store.path)
    seen: list[int] = []

    def interrupt_midway(done: int, total: int) -> None:
        seen.append(other.count())
        if other.count() >= 4_000:
            # Chunks are committed: another process records a call meanwhile, then Ctrl-C.
            other.record(CallRecord("live", "st", "m", True, ts=T0 + 5))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_calls(
            store,
            ImportOptions(path=path),
            registry=REGISTRY,
            progress=interrupt_midway,
        )
    assert max(seen) >= 4_000  # the import had committed chunks others could see
    assert other.count() == 1  # undone, and the call recorded meanwhile kept
    assert store.labels("workflow") == ["live"]
    assert store.interrupted_import_rows() == 0
    assert store.verify().ok
    other.close()


def test_a_killed_import_is_undone_by_the_next_import(
    store: TelemetryStore, tmp_path: Path
) -> None:
    from attune_cli.core.telemetry.sqlite import BulkImport

    store.record(CallRecord("wf", "st", "m", True, ts=T0))
    rows = [
        store.row_of(CallRecord("dead", "st", "m", i % 2 == 0, ts=T0 + i, latency_ms=float(i)))
        for i in range(5_000)
    ]
    # A bulk import that never finished nor undid (its process was killed).
    BulkImport(store, "killed").insert(rows)
    assert store.count() == 5_001
    assert store.interrupted_import_rows() == 5_000
    assert store.verify().ok  # the rollups equal the rows at every commit

    with TelemetryStore(store.path) as later:
        assert run(later, write(tmp_path / "usage.jsonl", [legacy(1)])).imported == 1
        assert later.count() == 2
        assert later.interrupted_import_rows() == 0
        assert later.verify().ok


def test_a_rejected_or_dry_run_import_of_many_chunks_keeps_nothing(
    store: TelemetryStore, tmp_path: Path
) -> None:
    store.record(CallRecord("wf", "st", "m", True, ts=T0))
    lines = [legacy(i) for i in range(9_000)]
    dry = run(store, write(tmp_path / "usage.jsonl", lines), dry_run=True)
    assert dry.imported == 9_000
    rejected = run(store, write(tmp_path / "bad.jsonl", [*lines, "not json"]))
    assert rejected.rejected
    assert store.count() == 1
    assert store.verify().ok


def test_a_prune_in_chunks_keeps_the_rollups_equal_to_the_rows(store: TelemetryStore) -> None:
    store.record_many(
        CallRecord("wf", f"st{i % 3}", "m", i % 5 != 0, ts=T0 + i * 7.3, latency_ms=float(i))
        for i in range(9_000)
    )
    done: list[int] = []
    cut = T0 + 4_500 * 7.3 + 0.1  # mid-hour
    assert store.prune(cut, progress=done.append) == 4_501
    assert len(done) >= 3 and done[-1] == 4_501  # several short transactions
    assert store.count() == 4_499
    assert store.verify().ok


def test_a_folder_without_usage_files_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    with (
        TelemetryStore(tmp_path / "t.db") as store,
        pytest.raises(InputFileError, match="no usage"),
    ):
        import_calls(store, ImportOptions(path=folder), registry=REGISTRY)


# --- llm's logs.db --------------------------------------------------------------------------


def llm_db(path: Path, rows: list[tuple[object, ...]], *, tokens: bool = True) -> Path:
    conn = sqlite3.connect(path)
    extra = ", input_tokens INTEGER, output_tokens INTEGER, token_details TEXT" if tokens else ""
    conn.execute(
        "CREATE TABLE responses (id TEXT PRIMARY KEY, model TEXT, prompt TEXT, system TEXT, "
        "prompt_json TEXT, options_json TEXT, response TEXT, response_json TEXT, "
        f"conversation_id TEXT, duration_ms INTEGER, datetime_utc TEXT{extra})"
    )
    for row in rows:
        values = row if tokens else row[:4]
        columns = "id, model, datetime_utc, duration_ms" + (
            ", input_tokens, output_tokens" if tokens else ""
        )
        conn.execute(
            f"INSERT INTO responses ({columns}, prompt, response) VALUES "
            f"({', '.join('?' for _ in values)}, 'PROMPT-TEXT', 'RESPONSE-TEXT')",
            values,
        )
    conn.commit()
    conn.close()
    return path


def test_llm_responses_import_with_registry_prices_and_never_their_text(
    store: TelemetryStore, tmp_path: Path
) -> None:
    path = llm_db(
        tmp_path / "logs.db",
        [
            ("01j1", "claude-haiku-4-5", "2026-01-01T00:00:07.250000", 900, 1_000_000, 0),
            ("01j2", "llama3", "2026-01-01T00:01:00+00:00", None, None, None),
        ],
    )
    result = run(store, path, workflow="notes", stage="summarise")
    assert (result.format, result.imported) == ("llm-db", 2)
    calls = {c.model: c for c in store.recent_calls(workflow=None, stage=None)}
    haiku = calls["claude-haiku-4-5"]
    assert (haiku.ts, haiku.workflow, haiku.stage) == (T0 + 7.25, "notes", "summarise")
    assert (haiku.provider, haiku.tier, haiku.cost_usd, haiku.latency_ms) == (
        "anthropic",
        "cheap",
        1.0,
        900.0,
    )
    assert (calls["llama3"].cost_usd, calls["llama3"].source) == (None, "llm-db")
    content = store.path.read_bytes() + Path(f"{store.path}-wal").read_bytes()
    assert b"PROMPT-TEXT" not in content and b"RESPONSE-TEXT" not in content
    assert run(store, path).imported == 0


def test_an_older_llm_db_without_token_columns_still_imports(
    store: TelemetryStore, tmp_path: Path
) -> None:
    path = llm_db(tmp_path / "logs.db", [("a", "gpt-5", "2026-01-01T00:00:00", 10)], tokens=False)
    assert run(store, path).imported == 1


def test_a_sqlite_file_that_is_not_llms_is_refused(store: TelemetryStore, tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(InputFileError, match="responses"):
        run(store, path)


# --- attune's own format --------------------------------------------------------------------


def varied_calls() -> list[CallRecord]:
    return [
        CallRecord("wf", "st", "claude-haiku-4-5", True, ts=T0 + 0.001, latency_ms=812.5,
                   input_tokens=10, output_tokens=3, cost_usd=1e-05, provider="anthropic",
                   tier="cheap", status=200),
        CallRecord("wf", "st", "gpt-5", False, ts=T0 + 1, error_kind="rate_limit", status=429,
                   attempt=3, latency_ms=None, cost_usd=0.1 + 0.2),
        CallRecord("w, with \"quotes\"", "=stage [/] -1", "@local", True, ts=T0 + 2,
                   source="attune-jsonl", provider="+proxy", error_kind="-x"),
    ]  # fmt: skip


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_then_import_round_trips_exactly(tmp_path: Path, fmt: str) -> None:
    with TelemetryStore(tmp_path / "a.db") as first:
        first.record_many(varied_calls())
        first.record(CallRecord("wf", "st", "m", True, ts=T0 + 3))  # a randomly keyed call
        text = exported(first, fmt)
        path = tmp_path / f"calls.{fmt}"
        path.write_text(text, encoding="utf-8", newline="")
        assert run(first, path).imported == 0  # its own export adds nothing
    with TelemetryStore(tmp_path / "b.db") as second:
        result = run(second, path)
        assert (result.format, result.imported) == (fmt, 4)
        assert exported(second, fmt) == text
        assert second.recent_calls(workflow=None, stage=None) == first_calls(tmp_path / "a.db")


def first_calls(path: Path) -> list[CallRecord]:
    with TelemetryStore(path) as store:
        return store.recent_calls(workflow=None, stage=None)


def test_the_csv_export_has_a_header_of_the_documented_fields(store: TelemetryStore) -> None:
    store.record_many(varied_calls())
    assert exported(store, "csv").splitlines()[0] == ",".join(EXPORT_FIELDS)


def test_bad_csv_rows_are_reported_by_line(store: TelemetryStore, tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    path.write_text(
        "ts,workflow,stage,model,success,latency_ms\n"
        "2026-01-01T00:00:00Z,wf,st,m,true,12\n"
        "2026-01-01T00:00:01Z,wf,st,m,maybe,12\n"
        "2026-01-01T00:00:02Z,wf,st,m,false,fast\n",
        encoding="utf-8",
    )
    result = run(store, path)
    assert [(e.line, e.reason) for e in result.errors] == [
        (3, "`success` must be true or false (got 'maybe')"),
        (4, "`latency_ms` must be a number (got 'fast')"),
    ]


def test_a_csv_without_the_needed_columns_is_refused(store: TelemetryStore, tmp_path: Path) -> None:
    path = tmp_path / "calls.csv"
    path.write_text("when,who\n1,2\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="ts, model, success"):
        run(store, path, format="csv")


def test_export_to_a_file_replaces_it_whole(store: TelemetryStore, tmp_path: Path) -> None:
    store.record_many(varied_calls())
    target = tmp_path / "out.jsonl"
    target.write_text("old content\n")
    assert export_to_path(store, CallFilter(model="gpt-5"), "jsonl", target) == 1
    [line] = target.read_text().splitlines()
    assert json.loads(line)["model"] == "gpt-5"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    with pytest.raises(InputFileError, match="no folder"):
        export_to_path(store, CallFilter(), "jsonl", tmp_path / "missing" / "out.jsonl")


# --- format detection ----------------------------------------------------------------------


def test_the_format_is_told_from_the_content(tmp_path: Path) -> None:
    assert detect_format(tmp_path) == "attune-jsonl"
    assert detect_format(write(tmp_path / "u.log", [legacy(1)])) == "attune-jsonl"
    own = CallRecord("wf", "st", "m", True, ts=T0).as_dict()
    assert detect_format(write(tmp_path / "x.txt", [json.dumps(own)])) == "jsonl"
    assert detect_format(write(tmp_path / "x.dat", ["ts,workflow,stage,model,success"])) == "csv"
    assert detect_format(llm_db(tmp_path / "logs.db", [])) == "llm-db"
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(InputFileError, match="binary"):
        detect_format(tmp_path / "blob.bin")
    with pytest.raises(InputFileError, match="cannot tell") as caught:
        detect_format(write(tmp_path / "prose.txt", ["hello there"]))
    assert "--format" in (caught.value.hint or "")


def test_a_missing_path_and_a_folder_in_the_wrong_format_are_refused(
    store: TelemetryStore, tmp_path: Path
) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        run(store, tmp_path / "nope.jsonl")
    with pytest.raises(InputFileError, match="folder"):
        run(store, tmp_path, format="csv")


def test_a_spreadsheet_csv_with_a_byte_order_mark_imports(
    store: TelemetryStore, tmp_path: Path
) -> None:
    path = tmp_path / "calls.csv"
    path.write_bytes(
        "\ufeffts,workflow,stage,model,success\n2026-01-01T00:00:00Z,w,s,m,yes\n".encode()
    )
    assert run(store, path).imported == 1


def test_an_empty_store_exports_an_empty_file() -> None:
    for fmt, expected in (("jsonl", ""), ("csv", ",".join(EXPORT_FIELDS) + "\n")):
        buffer = io.StringIO()
        assert export_calls(None, CallFilter(), fmt, buffer) == 0
        assert buffer.getvalue() == expected


def test_reimporting_with_other_names_for_unlabelled_rows_adds_nothing(
    store: TelemetryStore, tmp_path: Path
) -> None:
    # The same calls are the same calls, whatever workflow they were filed under.
    path = write(tmp_path / "usage.jsonl", [legacy(1, stage=None), legacy(2, stage=None)])
    assert run(store, path, stage="first-guess").imported == 2
    assert run(store, path, stage="second-guess").imported == 0
    assert store.count() == 2
