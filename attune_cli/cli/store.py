"""`attune store`: which store holds the history, how it is, and proof its rollups are right."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from attune_cli.cli.options import JsonOpt

if TYPE_CHECKING:
    from attune_cli.core.telemetry.store import StoreLocation, StoreStatus
    from attune_cli.core.workspace import Workspace

app = typer.Typer(
    help="The store behind telemetry and breakers: status, verify, migrate, push.",
    no_args_is_help=True,
)


@app.command()
def status(
    json_output: JsonOpt = False,
) -> None:
    """Show the backend, where it is (password masked), its schema, rows and rollup hours.

    Examples:

        attune store status

        attune store status --json
    """
    from attune_cli.cli.console import out, plain, print_json
    from attune_cli.cli.telemetry import _existing_store
    from attune_cli.core.telemetry.store import Backend, sqlite_status, store_location
    from attune_cli.core.workspace import Workspace

    workspace = Workspace.load()
    location = store_location(workspace)
    if location.backend is Backend.POSTGRES:
        found = _team_status(workspace, location)
    else:
        found = sqlite_status(lambda: _existing_store(workspace), location)
    if json_output:
        print_json(found.as_dict())
        return
    from rich.table import Table

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    round_trip = "—" if found.round_trip_ms is None else f"{found.round_trip_ms:.2f} ms"
    for name, value in (
        ("Backend", str(found.backend)),
        ("Location", found.location),
        (
            "Schema",
            "— (nothing recorded yet)"
            if found.schema_version is None
            else str(found.schema_version),
        ),
        ("Rows", f"{found.rows:,}"),
        ("Rollup hours", f"{found.rollup_hours:,}"),
        ("Spooled rows", f"{found.spooled_rows:,}"),
        ("Round trip", round_trip),
    ):
        table.add_row(name, plain(value))
    out().print(table)


@app.command()
def verify(
    json_output: JsonOpt = False,
) -> None:
    """Recompute the hourly rollups from the rows, and the spend tables from the rollups, and
    report any difference (exit 1 if any).

    Examples:

        attune store verify
    """
    from attune_cli.cli.console import err, message, out, plain, print_json
    from attune_cli.cli.telemetry import _existing_store, _ProgressBar
    from attune_cli.core.formats import plural

    store = _existing_store()
    if store is None:
        if json_output:
            print_json({"ok": True, "rollups": 0, "spend_rows": 0, "differences": []})
        else:
            message("Nothing recorded yet: nothing to verify.")
        return
    # A long history takes a while (a minute for a million calls): one step per table.
    progress = _ProgressBar("the rollups", verb="Verifying") if err().is_terminal else None
    try:
        with store:
            report = store.verify(progress=progress.update if progress else None)
    finally:
        if progress is not None:
            progress.stop()
    if json_output:
        print_json(
            {
                "ok": report.ok,
                "rollups": report.rollups,
                "spend_rows": report.spend_rows,
                "total_differences": report.total_differences,
                "differences": [
                    {
                        "table": d.table,
                        "key": list(d.key),
                        "stored": None if d.stored is None else list(d.stored),
                        "expected": None if d.expected is None else list(d.expected),
                    }
                    for d in report.differences
                ],
            }
        )
    elif report.ok:
        message(
            f"No differences: {plural(report.rollups, 'hourly rollup')} checked against a "
            f"recomputation from the rows, {plural(report.spend_rows, 'spend-table row')} "
            "against one from the rollups."
        )
    else:
        from attune_cli.core.telemetry.rollups import SPEND_TABLES

        message(
            f"{plural(report.total_differences, 'difference')} "
            f"({plural(report.rollups, 'rollup')} recomputed from the rows, "
            f"{plural(report.spend_rows, 'spend-table row')} from the rollups):",
            markup=False,
        )
        for d in report.differences:
            source = "the rollups give" if d.table in SPEND_TABLES else "rows give"
            out().print(plain(f"  {d.table} {d.key}: stored {d.stored}, {source} {d.expected}"))
    if not report.ok:
        raise typer.Exit(1)


def _team_status(workspace: Workspace, location: StoreLocation) -> StoreStatus:
    """The team store's status (spooled rows counted even when it cannot be reached)."""
    from attune_cli.core.telemetry.postgres import PostgresCallStore, StoreUnreachableError
    from attune_cli.core.telemetry.store import Backend, StoreStatus
    from attune_cli.core.telemetry.team import spooled_rows

    waiting = spooled_rows(workspace, location.target)
    try:
        store = PostgresCallStore(location.target)
    except StoreUnreachableError as exc:
        from attune_cli.cli.console import warn

        warn(str(exc), markup=False)
        return StoreStatus(Backend.POSTGRES, location.shown, False, None, 0, 0, waiting, None)
    with store:
        return StoreStatus(
            Backend.POSTGRES,
            location.shown,
            True,
            store.schema_version(),
            store.count(),
            store.rollup_hours(),
            waiting,
            store.round_trip_ms(),
        )


def _team_location() -> tuple[Workspace, StoreLocation]:
    from attune_cli.core.errors import UsageError
    from attune_cli.core.telemetry.store import Backend, store_location
    from attune_cli.core.workspace import Workspace

    workspace = Workspace.load()
    location = store_location(workspace)
    if location.backend is not Backend.POSTGRES:
        raise UsageError(
            "no team store is configured: this works on a postgresql:// store",
            hint='set [store] url = "postgresql://…" in config.toml or ATTUNE_STORE_URL',
        )
    return workspace, location


@app.command()
def migrate() -> None:
    """Bring the team store's schema up to this attune's version (one process at a time).

    Examples:

        attune store migrate
    """
    from attune_cli.cli.console import message
    from attune_cli.core.telemetry import postgres

    _, location = _team_location()
    conn = postgres.connect(location.target, migrate=False)
    try:
        before, after = postgres.apply_migrations(conn)
    finally:
        conn.close()
    if before == after:
        message(f"{location.shown} is at schema {after}: nothing to do.", markup=False)
    else:
        message(f"{location.shown}: schema {before} -> {after}.", markup=False)


@app.command()
def push() -> None:
    """Send this machine's calls to the team store: spooled ones and older local history.

    Idempotent: every call keeps its identity, so a re-run (or a push after an interrupted
    one) adds nothing twice.

    Examples:

        attune store push
    """
    from attune_cli.cli.console import err, message
    from attune_cli.cli.telemetry import _ProgressBar
    from attune_cli.core.telemetry.postgres import PostgresCallStore
    from attune_cli.core.telemetry.team import push as push_rows

    workspace, location = _team_location()
    progress = _ProgressBar("to the team store", verb="Pushing") if err().is_terminal else None
    try:
        with PostgresCallStore(location.target) as team:
            result = push_rows(workspace, team, progress=progress.update if progress else None)
    finally:
        if progress is not None:
            progress.stop()
    message(
        f"Pushed {result.sent:,} local call(s) to {location.shown}: "
        f"{result.added:,} new, {result.sent - result.added:,} already there.",
        markup=False,
    )
