"""`attune spend` and `attune budget`: where the money goes, and budgets that hold.

Each command parses its flags, asks core (``attune_cli.core.spend``) for one answer and renders
it; the store, Rich and the chart helpers are imported inside the commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from attune_cli.cli.complete import complete_models, complete_stages, complete_workflows
from attune_cli.core.money import format_usd

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from attune_cli.cli.render import Column
    from attune_cli.core.spend.report import SpendReport

BY_VALUES = "day|week|month|model|provider|workflow|stage|tier"


def register(app: typer.Typer) -> None:
    """Add ``spend`` and the ``budget`` group to ``app``."""
    app.command("spend")(spend)
    app.add_typer(budget_app, name="budget")


def spend(
    days: Annotated[
        int | None,
        typer.Option(
            "--days",
            metavar="N",
            help="The last N calendar days, today included (default: 30).",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="DATE", help="From this day (YYYY-MM-DD) on."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until", metavar="DATE", help="Through this day (YYYY-MM-DD; default: now)."
        ),
    ] = None,
    by: Annotated[
        str,
        typer.Option(
            "--by", metavar=BY_VALUES.upper().replace("|", "|"), help=f"Rows: {BY_VALUES}."
        ),
    ] = "day",
    workflow: Annotated[
        str | None,
        typer.Option(
            "--workflow",
            "-w",
            metavar="W",
            help="Only this workflow.",
            autocompletion=complete_workflows,
        ),
    ] = None,
    stage: Annotated[
        str | None,
        typer.Option(
            "--stage", "-s", metavar="S", help="Only this stage.", autocompletion=complete_stages
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", metavar="M", help="Only this model.", autocompletion=complete_models
        ),
    ] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout.")
    ] = False,
    csv_: Annotated[bool, typer.Option("--csv", help="Print the rows as CSV on stdout.")] = False,
) -> None:
    """What was spent, when and where: a table with a bar per row, and for --by day, week or
    month a chart of the series and a sparkline per model.

    Periods are calendar days, ISO weeks (Monday first) and months in \\[budgets] timezone
    (default: this machine's zone). Every period of the window is a row, at $0 when nothing
    was called. Each row is compared with the period before it (a name: with the window of
    the same length before). Calls recorded without a price are priced from the registry;
    that part is marked "~" and reported apart.

    Examples:

        attune spend

        attune spend --by model --days 7

        attune spend --by week --since 2026-09-01 -w code-review

        attune spend --by day --days 365 --csv > spend.csv
    """
    from attune_cli.core.clock import now as clock_now
    from attune_cli.core.errors import UsageError
    from attune_cli.core.spend.periods import parse_date, zone_from_config
    from attune_cli.core.spend.report import GroupBy, SpendQuery, Window, build_report
    from attune_cli.core.telemetry.team import open_call_store
    from attune_cli.core.workspace import Workspace

    if json_ and csv_:
        raise UsageError("--json and --csv cannot be combined", hint="choose one")
    group = GroupBy.parse(by)
    since_day = parse_date(since, "--since") if since is not None else None
    until_day = parse_date(until, "--until") if until is not None else None
    workspace = Workspace.load()
    zone = zone_from_config(workspace.config, workspace.paths.config_file)
    window = Window.of(zone, clock_now(), days=days, since=since_day, until=until_day)
    query = SpendQuery(window, group, workflow=workflow, stage=stage, model=model)
    with open_call_store(workspace, reading=True) as store:
        report = build_report(store, workspace.registry, query, zone)
    if json_:
        from attune_cli.cli.console import print_json

        print_json(report.as_dict())
        return
    if csv_:
        _print_csv(report)
        return
    _render(report)


def _print_csv(report: SpendReport) -> None:
    import csv
    import sys

    from attune_cli.core.telemetry.importers import protect_cell

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(
        [
            "key",
            "calls",
            "cost_usd",
            "share",
            "cost_per_call_usd",
            "previous_cost_usd",
            "estimated",
            "estimated_usd",
        ]
    )
    for row in report.rows:
        per_call = row.cost_per_call_usd
        writer.writerow(
            [
                protect_cell(row.key),
                row.calls,
                f"{row.cost_usd:.6f}",
                f"{report.share(row):.6f}",
                "" if per_call is None else f"{per_call:.8f}",
                f"{row.previous_cost_usd:.6f}",
                "true" if row.estimated_usd > 0 else "false",
                f"{row.estimated_usd:.6f}",
            ]
        )
    sys.stdout.flush()


def _change_text(change: float | None) -> str:
    if change is None:
        return "—"
    return f"{change * 100:+.0f} %"


def _render(report: SpendReport) -> None:
    from rich.text import Text

    from attune_cli.cli.charts import bar
    from attune_cli.cli.console import out, plain
    from attune_cli.cli.render import Column, print_table
    from attune_cli.core.formats import plural

    console = out()
    query = report.query
    since = report.zone.moment(query.window.since_ts)
    until = report.zone.moment(query.window.until_ts)
    title = Text(
        f"Spend by {query.by}, {since:%Y-%m-%d} to {until:%Y-%m-%d %H:%M} ({report.zone.name})"
    )
    top = max((r.cost_usd for r in report.rows), default=0.0)
    columns = [
        Column(str(query.by).capitalize()),
        Column("Calls", "right"),
        Column("Cost", "right"),
        Column("Share", "right", drop_order=2),
        Column("Per call", "right", drop_order=3),
        Column("Change", "right", drop_order=1),
        Column("", drop_order=4),
    ]
    rows = []
    for row in report.rows:
        mark = "~" if row.estimated_usd > 0 else ""
        per_call = row.cost_per_call_usd
        rows.append(
            [
                plain(row.key),
                Text(f"{row.calls:,}"),
                Text(mark + format_usd(row.cost_usd)),
                Text(f"{report.share(row) * 100:.1f} %"),
                Text("—" if per_call is None else format_usd(per_call)),
                Text(_change_text(row.change)),
                Text(bar(row.cost_usd, top, 20), style="cyan"),
            ]
        )
    total = Text(
        f"Total {format_usd(report.total_usd)} in {plural(report.calls, 'call')}; "
        f"the {_length_text(query.window.length_s)} before: {format_usd(report.previous_total_usd)}"
    )
    if query.by.period is not None:
        _print_aligned(console, columns, rows, title, total)
    else:
        print_table(console, columns, rows, title=title, caption=total)
    if report.estimated_usd > 0:
        console.print(
            Text(
                f"~ includes {format_usd(report.estimated_usd)} estimated from registry prices "
                "(calls recorded without a price).",
                style="dim",
            )
        )
    if report.unpriced_calls:
        console.print(
            Text(
                f"Counted at $0: {plural(report.unpriced_calls, 'call')} with token counts "
                "but no price, recorded or in the registry (add the model's prices under "
                "[models] in config.toml).",
                style="dim",
            )
        )
    if query.by.period is not None and report.rows:
        _render_chart(report)


def _print_aligned(
    console: Console,
    columns: list[Column],
    rows: list[list[Text]],
    title: Text,
    caption: Text,
) -> None:
    """A period series: short keys and figures, so its columns are laid out here, in one
    pass (a year of days through Rich's table measuring takes seconds)."""
    from rich.text import Text

    widths = [max(len(c.header), *(len(r[i].plain) for r in rows)) for i, c in enumerate(columns)]
    kept = list(range(len(columns)))
    for index in sorted(
        (i for i, c in enumerate(columns) if c.drop_order),
        key=lambda i: -columns[i].drop_order,
    ):
        if sum(widths[i] + 2 for i in kept) - 2 <= console.width:
            break
        kept.remove(index)

    def line(cells: list[Text]) -> Text:
        text = Text()
        for position, i in enumerate(kept):
            cell = cells[i]
            pad = " " * (widths[i] - len(cell.plain))
            if position:
                text.append("  ")
            if columns[i].justify == "right":
                text.append(pad)
                text.append_text(cell)
            else:
                text.append_text(cell)
                if position < len(kept) - 1:
                    text.append(pad)
        return text

    block = Text()
    block.append_text(title)
    block.append("\n")
    block.append_text(line([Text(c.header, style="bold") for c in columns]))
    block.append("\n" + "─" * min(console.width, sum(widths[i] + 2 for i in kept) - 2) + "\n")
    for row in rows:
        block.append_text(line(row))
        block.append("\n")
    block.append_text(caption)
    console.print(block, crop=False, soft_wrap=True)


def _length_text(seconds: float) -> str:
    days = seconds / 86_400
    if days >= 1.5:
        return f"{days:.0f} days"
    return f"{seconds / 3600:.0f} hours"


def _render_chart(report: SpendReport) -> None:
    from rich.text import Text

    from attune_cli.cli.charts import column_chart
    from attune_cli.cli.console import out, plain
    from attune_cli.core.spend.report import sparkline

    console = out()
    values = [r.cost_usd for r in report.rows]
    axis = max(len(format_usd(max(values))), 3) + 1
    lines, per = column_chart(values, height=8, width=max(console.width - axis - 1, 10))
    top = max(values)
    console.print()
    unit = str(report.query.by)
    heading = f"Cost per {unit}" if per == 1 else f"Cost per {per} {unit}s (each column)"
    console.print(Text(heading, style="bold"))
    for index, line in enumerate(lines):
        label = format_usd(top) if index == 0 else ("$0" if index == len(lines) - 1 else "")
        console.print(Text(f"{label:>{axis}} ", style="dim") + Text(line, style="cyan"), crop=False)
    first, last = report.rows[0].key, report.rows[-1].key
    span = len(lines[0]) if lines else 0
    gap = max(1, span - len(first) - len(last))
    console.print(Text(" " * (axis + 1) + first + " " * gap + last, style="dim"), crop=False)
    if report.series:
        console.print()
        console.print(Text(f"Per model, per {unit}", style="bold"))
        width = max(len(m) for m, _ in report.series)
        spark_width = max(console.width - width - 16, 10)
        for model, costs in report.series:
            shown = list(costs)
            if len(shown) > spark_width:
                step = -(-len(shown) // spark_width)
                shown = [sum(shown[i : i + step]) for i in range(0, len(shown), step)]
            row = Text()
            row.append_text(plain(model.ljust(width)))
            row.append(" " + sparkline(shown), style="cyan")
            row.append(f" {format_usd(sum(costs))}")
            console.print(row, crop=False)


budget_app = typer.Typer(
    help="Budgets per workflow (\\[budgets.W] in config.toml): status, and a check for pipelines.",
    no_args_is_help=True,
)
