"""`attune store`: which store holds the history, how it is, and proof its rollups are right."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="The store behind telemetry and breakers: status, verify.",
    no_args_is_help=True,
)


@app.command()
def status(
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Show the backend, where it is (password masked), its schema, rows and rollup hours.

    Examples:

        attune store status

        attune store status --json
    """
    from attune_cli.cli.console import out, plain, print_json
    from attune_cli.cli.telemetry import _existing_store
    from attune_cli.core.store import sqlite_status, store_location
    from attune_cli.core.workspace import Workspace

    workspace = Workspace.load()
    location = store_location(workspace)
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
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Recompute the hourly rollups from the rows and report any difference (exit 1 if any).

    Examples:

        attune store verify
    """
    from attune_cli.cli.console import message, out, plain, print_json
    from attune_cli.cli.telemetry import _existing_store

    store = _existing_store()
    if store is None:
        if json_output:
            print_json({"ok": True, "rollups": 0, "differences": []})
        else:
            message("Nothing recorded yet: nothing to verify.")
        return
    with store:
        report = store.verify()
    if json_output:
        print_json(
            {
                "ok": report.ok,
                "rollups": report.rollups,
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
        message(f"The {report.rollups:,} hourly rollups equal their recomputation from the rows.")
    else:
        message(
            f"{report.total_differences:,} rollup(s) differ from their rows "
            f"({report.rollups:,} recomputed):",
            markup=False,
        )
        for d in report.differences:
            out().print(plain(f"  {d.table} {d.key}: stored {d.stored}, rows give {d.expected}"))
    if not report.ok:
        raise typer.Exit(1)
