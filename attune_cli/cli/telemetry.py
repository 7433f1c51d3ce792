"""`attune telemetry`: the local history of LLM calls the router learns from.

Each command parses its flags, calls one function of ``attune_cli.core.telemetry``
(``sqlite``, ``importers``) and renders the result. The store (sqlite3), the importers and
Rich tables are imported inside the commands so ``attune --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from attune_cli.cli.options import (
    JsonOpt,
    TierChoice,
    model_option,
    stage_option,
    tier_option,
    workflow_option,
)
from attune_cli.core.formats import plural

if TYPE_CHECKING:
    from attune_cli.core.paths import Paths
    from attune_cli.core.performance import ModelPerformance, ScoreWeights
    from attune_cli.core.telemetry.importers import ImportResult
    from attune_cli.core.telemetry.records import CallRecord
    from attune_cli.core.telemetry.sqlite import TelemetryStore
    from attune_cli.core.workspace import Workspace

app = typer.Typer(
    help="The history of your LLM calls: record, inspect, score, import, export, prune.",
    no_args_is_help=True,
)

DAY_S = 86_400.0
DEFAULT_WINDOW_DAYS = 30


class ImportFormat(StrEnum):
    """What ``telemetry import`` reads."""

    auto = "auto"
    attune_jsonl = "attune-jsonl"
    llm_db = "llm-db"
    jsonl = "jsonl"
    csv = "csv"


class ExportFormat(StrEnum):
    """What ``telemetry export`` writes."""

    jsonl = "jsonl"
    csv = "csv"


WorkflowOpt = Annotated[str | None, workflow_option("Only this workflow's calls.")]
StageOpt = Annotated[str | None, stage_option("Only this stage's calls.")]
ModelOpt = Annotated[str | None, model_option("Only this model's calls.")]


@app.command("show")
def show(
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, metavar="N", help="How many calls to show.")
    ] = 20,
    workflow: WorkflowOpt = None,
    stage: StageOpt = None,
    model: ModelOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Show the most recent calls, newest first.

    Examples:

        attune telemetry show

        attune telemetry show -w code-review -s analysis -n 50 --json
    """
    calls: list[CallRecord] = []
    store = _existing_store()
    if store is not None:
        with store:
            calls = store.recent_calls(workflow=workflow, stage=stage, model=model, limit=limit)
    if json_:
        from attune_cli.cli.console import print_json

        print_json([call.as_dict() for call in calls])
        return
    if not calls:
        _note(f"No calls recorded{_scope(workflow, stage, model)} yet.")
        return
    _render_calls(calls)


@app.command("models")
def models(
    workflow: WorkflowOpt = None,
    stage: StageOpt = None,
    days: Annotated[
        int | None,
        typer.Option(
            "--days",
            min=1,
            metavar="N",
            help="Window of history in days (default: routing.window_days, 30).",
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Score every model of a workflow stage: success with its bound, p50/p95, cost, score.

    The score is `quality_score` (weights in config.toml \\[routing.score]): the Wilson lower
    bound of the success rate, less a penalty per doubling of cost and of p95 latency.
    Best first; the best row is marked.

    Examples:

        attune telemetry models -w code-review -s analysis

        attune telemetry models -s analysis --days 7 --json
    """
    from attune_cli.core.clock import now as clock_now
    from attune_cli.core.performance import ScoreWeights
    from attune_cli.core.workspace import Workspace

    workspace = Workspace.load()
    weights = ScoreWeights.from_config(workspace.config, workspace.paths.config_file)
    window_days = days if days is not None else _window_days(workspace)
    figures: list[ModelPerformance] = []
    store = _existing_store(workspace)
    if store is not None:
        with store:
            figures = store.model_performance(
                workflow=workflow,
                stage=stage,
                since_ts=clock_now() - window_days * DAY_S,
                weights=weights,
            )
    if json_:
        from attune_cli.cli.console import print_json

        print_json([perf.as_dict() for perf in figures])
        return
    if not figures:
        _note(
            f"No calls recorded{_scope(workflow, stage, None)} "
            f"in the last {plural(window_days, 'day')}."
        )
        return
    _render_models(figures, workflow, stage, window_days, weights)


@app.command("record")
def record(
    workflow: Annotated[
        str, workflow_option("The workflow that made the call.", show_default=False)
    ],
    stage: Annotated[str, stage_option("The stage of the workflow.", show_default=False)],
    model: Annotated[str, model_option("The model id.", show_default=False)],
    success: Annotated[
        bool,
        typer.Option("--success", help="The call worked (this or --failure is required)."),
    ] = False,
    failure: Annotated[
        bool,
        typer.Option("--failure", help="The call failed."),
    ] = False,
    latency_ms: Annotated[
        float | None,
        typer.Option("--latency-ms", min=0, metavar="MS", help="Wall time of the call."),
    ] = None,
    cost: Annotated[
        float | None,
        typer.Option(
            "--cost",
            min=0,
            metavar="USD",
            help="Price of the call (default: from the tokens and the registry's prices).",
        ),
    ] = None,
    input_tokens: Annotated[
        int | None, typer.Option("--input-tokens", min=0, metavar="N", help="Prompt tokens.")
    ] = None,
    output_tokens: Annotated[
        int | None,
        typer.Option("--output-tokens", min=0, metavar="N", help="Completion tokens."),
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option("--provider", metavar="P", help="Who served it (default: from the registry)."),
    ] = None,
    tier: Annotated[
        TierChoice | None, tier_option("The model's tier (default: from the registry).")
    ] = None,
    error_kind: Annotated[
        str | None,
        typer.Option(
            "--error-kind",
            metavar="KIND",
            help="Why it failed: rate_limit, timeout, server_error, overloaded …",
        ),
    ] = None,
    status: Annotated[
        int | None,
        typer.Option("--status", min=100, max=599, metavar="CODE", help="The HTTP status."),
    ] = None,
) -> None:
    """Record one call made outside attune, so the router learns from it too.

    Provider, tier and cost come from the model registry when not given.

    Examples:

        attune telemetry record -w code-review -s analysis -m claude-haiku-4-5 \\
            --success --latency-ms 840 --input-tokens 1200 --output-tokens 300

        attune telemetry record -w ci -s triage -m gpt-5-mini --failure \\
            --error-kind timeout
    """
    import sqlite3

    from attune_cli.core.errors import OperationError, StoreVersionError, UsageError
    from attune_cli.core.telemetry.db import write_failure
    from attune_cli.core.telemetry.records import (
        CallRecord,
        outcome_conflict,
        validate_amount,
        validate_count,
        validate_label,
        with_registry_defaults,
    )
    from attune_cli.core.telemetry.sqlite import TelemetryStore
    from attune_cli.core.workspace import Workspace

    conflict = outcome_conflict(success, failure, status, (error_kind or "").strip() or None)
    if conflict is not None:
        raise UsageError(conflict)
    if not success and not failure:
        raise UsageError("say how the call went: pass --success or --failure")
    latency_ms = validate_amount("--latency-ms", latency_ms)
    cost = validate_amount("--cost", cost)
    input_tokens = validate_count("--input-tokens", input_tokens)
    output_tokens = validate_count("--output-tokens", output_tokens)
    if error_kind is not None and error_kind.strip():
        error_kind = validate_label("error-kind", error_kind)
    call = CallRecord(
        workflow=validate_label("workflow", workflow),
        stage=validate_label("stage", stage),
        model=validate_label("model", model),
        success=success,
        provider=validate_label("provider", provider) if provider is not None else None,
        tier=tier.value if tier is not None else None,
        error_kind=error_kind.strip() or None if error_kind is not None else None,
        status=status,
        latency_ms=latency_ms,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost,
    )
    workspace = Workspace.load()
    call = with_registry_defaults(call, workspace.registry)
    from attune_cli.core.telemetry.team import open_call_store

    path = workspace.paths.telemetry_db
    try:
        store = open_call_store(workspace)
    except (OperationError, StoreVersionError) as exc:
        # Corrupt, from a newer attune, or not writable: the command fails as before, but
        # the call is kept in the spool when the folder can take it.
        try:
            spooled = TelemetryStore.unusable(path, exc.message).record(call)
        except OperationError:
            spooled = None
        if spooled is None:
            raise exc from None
        raise type(exc)(f"{exc.message}; {spooled.describe_spool()}", hint=exc.hint) from None
    try:
        with store:
            spooled = store.record(call)
    except sqlite3.Error as exc:
        # A full disk or a read-only file system: say so, as for any file attune writes.
        refused = write_failure(path, exc)
        if refused is None:
            raise
        raise refused from None
    if spooled is not None:
        _note(f"Warning: {spooled}.")
        return
    if sys.stderr.isatty():
        outcome = "success" if success else "failure"
        _note(f"Recorded {call.workflow}/{call.stage} {call.model} ({outcome}).")


@app.command("import")
def import_(
    path: Annotated[
        Path,
        typer.Argument(
            metavar="PATH",
            help="A file, or the older tool's telemetry folder (usage*.jsonl).",
            show_default=False,
        ),
    ],
    format_: Annotated[
        ImportFormat,
        typer.Option(
            "--format",
            "-f",
            help="auto detects it from the content.",
            case_sensitive=False,
        ),
    ] = ImportFormat.auto,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and count everything; write nothing.")
    ] = False,
    skip_bad: Annotated[
        bool,
        typer.Option(
            "--skip-bad", help="Import the good lines of a file with bad ones (and list those)."
        ),
    ] = False,
    workflow: Annotated[
        str | None, workflow_option("Workflow of rows that carry none (default: unknown).")
    ] = None,
    stage: Annotated[
        str | None, stage_option("Stage of rows that carry none (default: unknown).")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Import a call history: the older attune tool's logs, llm's logs.db, or an export.

    One transaction: an import with bad lines imports nothing (unless --skip-bad), and
    importing the same file twice adds nothing.

    Examples:

        attune telemetry import ~/.attune/telemetry

        attune telemetry import ~/.config/io.datasette.llm/logs.db -w notes

        attune telemetry import calls.csv --dry-run --json
    """
    import time

    from attune_cli.cli.console import err, print_json
    from attune_cli.core.errors import InputFileError, OperationError
    from attune_cli.core.telemetry.importers import MAX_LISTED_ERRORS, ImportOptions, import_calls
    from attune_cli.core.telemetry.records import validate_label
    from attune_cli.core.workspace import Workspace

    options = ImportOptions(
        path=path.expanduser(),
        format=format_.value,
        dry_run=dry_run,
        skip_bad=skip_bad,
        workflow=validate_label("workflow", workflow) if workflow is not None else None,
        stage=validate_label("stage", stage) if stage is not None else None,
    )
    workspace = Workspace.load()
    progress = _ProgressBar(path.name) if err().is_terminal else None
    started = time.perf_counter()
    from attune_cli.core.telemetry.team import open_call_store

    try:
        with open_call_store(workspace) as store:
            result = import_calls(
                store,
                options,
                registry=workspace.registry,
                progress=progress.update if progress else None,
            )
    finally:
        if progress is not None:
            progress.stop()
    elapsed_s = time.perf_counter() - started
    if json_:
        print_json(result.as_dict())
    else:
        _render_import(result, elapsed_s)
    if result.rejected:
        if not json_:
            for error in result.errors:
                _note(f"  {error}")
        counted = plural(result.bad, "bad line")
        if result.bad >= MAX_LISTED_ERRORS:
            counted = f"at least {counted}"
        raise InputFileError(
            f"{path}: {counted}; nothing was imported",
            hint="fix them, or pass --skip-bad to import the good lines",
        )
    if result.importable == 0:
        raise OperationError(
            f"{path}: nothing imported: "
            + ("every line was bad" if result.bad else "it holds no calls"),
        )


@app.command("export")
def export(
    format_: Annotated[
        ExportFormat, typer.Option("--format", "-f", help="jsonl or csv.", case_sensitive=False)
    ] = ExportFormat.jsonl,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write here (atomically) instead of to stdout.",
        ),
    ] = None,
    workflow: WorkflowOpt = None,
    stage: StageOpt = None,
    model: ModelOpt = None,
    days: Annotated[
        int | None,
        typer.Option(
            "--days", min=1, metavar="N", help="Only the last N days (default: every call)."
        ),
    ] = None,
    raw_csv: Annotated[
        bool,
        typer.Option(
            "--raw-csv",
            help="CSV cells exactly as stored: no ' before a cell starting with = + - @.",
        ),
    ] = False,
) -> None:
    """Export calls, oldest first, as JSON lines or CSV; `telemetry import` reads them back.

    In CSV, a name a spreadsheet would run as a formula (starting with = + - @) gets a
    leading ' (the importer takes it off again); --raw-csv writes it as stored.

    Examples:

        attune telemetry export -o calls.jsonl

        attune telemetry export -f csv -w code-review --days 7 > review.csv
    """
    from attune_cli.core.clock import now as clock_now
    from attune_cli.core.telemetry.importers import export_calls, export_to_path
    from attune_cli.core.telemetry.records import CallFilter

    where = CallFilter(
        workflow=workflow,
        stage=stage,
        model=model,
        since_ts=clock_now() - days * DAY_S if days is not None else None,
    )
    store = _existing_store()
    try:
        if output is not None:
            written = export_to_path(
                store, where, format_.value, output.expanduser(), raw_csv=raw_csv
            )
            _note(f"Exported {plural(written, 'call')} to {output}.")
            return
        try:
            export_calls(store, where, format_.value, sys.stdout, raw_csv=raw_csv)
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader stopped reading (`attune telemetry export | head`): it had what it
            # wanted, so stop quietly, exit 0 (as `cat` under `set -o pipefail` would not).
            from attune_cli.cli.console import report_failure

            raise typer.Exit(report_failure(BrokenPipeError()) or 0) from None
    finally:
        if store is not None:
            store.close()


@app.command("prune")
def prune(
    older_than: Annotated[
        int,
        typer.Option(
            "--older-than",
            min=1,
            metavar="DAYS",
            help="Delete the calls older than this many days.",
            show_default=False,
        ),
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Delete old calls for good (the router then forgets them too).

    Asks first in a terminal; without one, --yes is required.

    Example:

        attune telemetry prune --older-than 90 --yes
    """
    from attune_cli.cli.console import confirm, print_json, stdin_is_terminal
    from attune_cli.core.clock import now as clock_now
    from attune_cli.core.errors import UsageError
    from attune_cli.core.telemetry.records import ts_to_iso

    cutoff = clock_now() - older_than * DAY_S
    store = _existing_store()
    deleted = 0
    if store is not None:
        with store:
            doomed = store.count_before(cutoff)
            if doomed and not yes:
                if not stdin_is_terminal():
                    raise UsageError(
                        f"telemetry prune would delete {plural(doomed, 'call')}: without a "
                        "terminal to confirm in, pass --yes"
                    )
                question = (
                    f"Delete {plural(doomed, 'call')} older than {older_than} days "
                    f"(before {ts_to_iso(cutoff)[:10]})?"
                )
                if not confirm(question):
                    _note("Nothing deleted.")
                    raise typer.Exit(1)
            if doomed:
                deleted = store.prune(cutoff)
    if json_:
        print_json({"deleted": deleted, "older_than_days": older_than})
        return
    if deleted:
        _note(f"Deleted {plural(deleted, 'call')} older than {older_than} days.")
    else:
        _note(f"Nothing to prune: no calls older than {older_than} days.")


# --- helpers -------------------------------------------------------------------------------


def _paths() -> Paths:
    from attune_cli.core.paths import resolve_paths

    return resolve_paths()


def _existing_store(workspace: Workspace | None = None) -> TelemetryStore | None:
    """The store, or None when nothing was ever recorded (reading never creates it)."""
    from attune_cli.core.paths import tighten_existing_dirs
    from attune_cli.core.telemetry.sqlite import TelemetryStore

    paths = workspace.paths if workspace is not None else _paths()
    tighten_existing_dirs(paths)
    from attune_cli.core.telemetry.store import STORE_URL_VAR

    if os.environ.get(STORE_URL_VAR) or workspace is not None or _config_names_store(paths):
        from attune_cli.core.telemetry.store import Backend, store_location
        from attune_cli.core.telemetry.team import open_call_store
        from attune_cli.core.workspace import Workspace

        loaded = workspace if workspace is not None else Workspace.load()
        if store_location(loaded).backend is Backend.POSTGRES:
            return open_call_store(loaded, reading=True, on_notice=_note)
    path = paths.telemetry_db
    if not path.exists():
        return None
    return TelemetryStore(path, create=False, read_only=True)


def _config_names_store(paths: Paths) -> bool:
    """Whether config.toml may hold ``[store]`` (read without parsing it)."""
    try:
        return "[store]" in paths.config_file.read_text(encoding="utf-8")
    except OSError:
        return False


def _window_days(workspace: Workspace) -> int:
    from attune_cli.core.config import get_number, table

    path = workspace.paths.config_file
    section = table(workspace.config, path, "routing")
    value = get_number(
        section,
        "window_days",
        DEFAULT_WINDOW_DAYS,
        path=path,
        prefix="routing",
        minimum=1,
        integer=True,
    )
    return int(value)


def _note(text: str) -> None:
    """A message on stderr, printed as is (names and file lines may hold Rich markup)."""
    from attune_cli.cli.console import err, plain

    err().print(plain(text), highlight=False)


def _scope(workflow: str | None, stage: str | None, model: str | None) -> str:
    parts = [
        f"{label} {value}"
        for label, value in (("workflow", workflow), ("stage", stage), ("model", model))
        if value is not None
    ]
    return f" for {', '.join(parts)}" if parts else ""


class _ProgressBar:
    """A Rich progress bar on stderr, started on the first update.

    Started lazily: a command that finishes before its first update draws no bar.
    """

    def __init__(self, label: str, verb: str = "Importing") -> None:
        self.label = label
        self.verb = verb
        self._progress: Any = None
        self._task: Any = None

    def update(self, done: int, total: int) -> None:
        if self._progress is None:
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeRemainingColumn,
            )

            from attune_cli.cli.console import err

            self._progress = Progress(
                TextColumn(f"{self.verb} {{task.description}}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeRemainingColumn(),
                console=err(),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=max(total, 1))
        self._progress.update(self._task, completed=done, total=max(total, 1))

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _render_import(result: ImportResult, elapsed_s: float) -> None:
    from attune_cli.cli.console import out, plain

    if result.rejected:
        return
    verb = "Would import" if result.dry_run else "Imported"
    console = out()
    console.print(
        plain(f"{verb} {plural(result.imported, 'new call')} from {result.path} ({result.format}).")
    )
    details = [f"{plural(result.read, 'call')} read in {elapsed_s:.1f} s"]
    if result.duplicates:
        details.append(f"{result.duplicates:,} already in the store")
    if result.cache_hits:
        details.append(f"{result.cache_hits:,} cache hits skipped")
    if result.bad:
        details.append(f"{plural(result.bad, 'bad line')} skipped")
    console.print("  " + " · ".join(details), markup=False, highlight=False)
    if result.dry_run:
        console.print("  Dry run: nothing was written.", markup=False, highlight=False)
    if result.bad:
        for error in result.errors:
            _note(f"  {error}")


def _render_calls(calls: list[CallRecord]) -> None:
    from attune_cli.cli.console import out, plain
    from attune_cli.cli.render import Column, cell_count, cell_ms, cell_usd, print_table
    from attune_cli.core.telemetry.records import ts_to_iso

    columns = [
        Column("Time (UTC)"),
        Column("Workflow / stage"),
        Column("Model"),
        Column("Tier", drop_order=3),
        Column("Result"),
        Column("ms", "right", drop_order=2),
        Column("Tokens in/out", "right", drop_order=4),
        Column("Cost", "right"),
        Column("Source", drop_order=5),
    ]
    rows = []
    for call in calls:
        if call.success:
            result = "ok"
        else:
            why = " ".join(str(x) for x in (call.error_kind, call.status) if x is not None)
            result = f"failed {why}".strip()
        tokens = (
            "-"
            if call.input_tokens is None and call.output_tokens is None
            else f"{cell_count(call.input_tokens)}/{cell_count(call.output_tokens)}"
        )
        # Names and error kinds are data: plain text, whatever brackets or escapes they hold.
        rows.append(
            [
                plain(value)
                for value in (
                    ts_to_iso(call.ts or 0)[:19].replace("T", " "),
                    f"{call.workflow} / {call.stage}",
                    call.model,
                    call.tier or "-",
                    result,
                    cell_ms(call.latency_ms),
                    tokens,
                    cell_usd(call.cost_usd),
                    call.source,
                )
            ]
        )
    print_table(
        out(),
        columns,
        rows,
        title="Recent calls, newest first",
        row_styles=[None if call.success else "red" for call in calls],
    )


def _render_models(
    figures: list[ModelPerformance],
    workflow: str | None,
    stage: str | None,
    days: int,
    weights: ScoreWeights,
) -> None:
    from attune_cli.cli.console import out, plain
    from attune_cli.cli.render import Column, cell_ms, cell_pct, cell_score, cell_usd, print_table

    where = f"{workflow or 'all workflows'} / {stage or 'all stages'}"
    columns = [
        Column(""),
        Column("Model"),
        Column("Provider", drop_order=3),
        Column("Tier", drop_order=2),
        Column("Calls", "right"),
        Column("Success ≥ bound", "right"),
        Column("p50 ms", "right", drop_order=1),
        Column("p95 ms", "right"),
        Column("Avg cost", "right"),
        Column("Score", "right"),
    ]
    # Plan-covered and pay-per-token amounts apart, once any call went through the plan.
    covered = any(perf.plan_covered_usd > 0 for perf in figures)
    if covered:
        columns += [
            Column("Plan-covered", "right", drop_order=1),
            Column("Per token", "right", drop_order=1),
        ]
    rows = []
    for index, perf in enumerate(figures):
        rows.append(
            [
                plain(value)
                for value in (
                    "★" if index == 0 else "",
                    perf.model,
                    perf.provider or "-",
                    perf.tier or "-",
                    f"{perf.calls:,}",
                    f"{cell_pct(perf.success_rate)} ≥ {cell_pct(perf.success_lower_bound)}",
                    cell_ms(perf.p50_latency_ms),
                    cell_ms(perf.p95_latency_ms),
                    cell_usd(perf.avg_cost_usd),
                    cell_score(perf.quality_score),
                    *(
                        (
                            cell_usd(perf.plan_covered_usd),
                            cell_usd(max(perf.cost_usd - perf.plan_covered_usd, 0.0)),
                        )
                        if covered
                        else ()
                    ),
                )
            ]
        )
    print_table(
        out(),
        columns,
        rows,
        title=plain(f"Models · {where} · last {plural(days, 'day')}"),
        caption=(
            f"★ best.  score = {weights.success_weight:g}·bound"
            f" − {weights.cost_weight:g}·log2(1 + cost/{cell_usd(weights.cost_unit_usd)})"
            f" − {weights.latency_weight:g}·log2(1 + p95/{weights.latency_unit_ms:g} ms)"
        ),
        row_styles=["bold green" if index == 0 else None for index in range(len(figures))],
    )
