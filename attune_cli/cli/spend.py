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
    from attune_cli.core.spend.budgets import BudgetStatus
    from attune_cli.core.spend.periods import Zone
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
            "plan_covered_usd",
            "pay_per_token_usd",
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
                f"{row.plan_covered_usd:.6f}",
                f"{row.pay_per_token_usd:.6f}",
            ]
        )
    sys.stdout.flush()


def _change_text(change: float | None) -> str:
    if change is None:
        return "—"
    percent = round(change * 100)
    return f"{percent:+d} %" if percent else "0 %"


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
        Column("Bar", drop_order=4),
    ]
    # Plan-covered and pay-per-token amounts apart, once any call went through the plan.
    covered = any(r.plan_covered_usd > 0 for r in report.rows)
    if covered:
        columns[3:3] = [
            Column("Plan-covered", "right", drop_order=1),
            Column("Per token", "right", drop_order=1),
        ]
    rows = []
    for row in report.rows:
        mark = "~" if row.estimated_usd > 0 else ""
        per_call = row.cost_per_call_usd
        split = (
            [Text(format_usd(row.plan_covered_usd)), Text(format_usd(row.pay_per_token_usd))]
            if covered
            else []
        )
        rows.append(
            [
                plain(row.key),
                Text(f"{row.calls:,}"),
                Text(mark + format_usd(row.cost_usd)),
                *split,
                Text(f"{report.share(row) * 100:.1f} %"),
                Text("—" if per_call is None else format_usd(per_call)),
                Text(_change_text(row.change)),
                Text(bar(row.cost_usd, top, 20), style="cyan"),
            ]
        )
    saved = (
        f" ({format_usd(report.plan_covered_usd)} covered by the subscription plan, "
        f"{format_usd(report.pay_per_token_usd)} paid per token)"
        if covered
        else ""
    )
    total = Text(
        f"Total {format_usd(report.total_usd)} in {plural(report.calls, 'call')}{saved}; "
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


@budget_app.command("status")
def budget_status(
    json_: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout.")
    ] = False,
) -> None:
    """Each budget's spend this day or month, what is left, the burn rate and the projection.

    Projections: linear on the period so far, and on the last 7 days' rate. A budget at 80 %
    shows a warning; at its limit, `attune ask` refuses (or downgrades) its calls paid per
    token. Periods are calendar days and months in \\[budgets] timezone.

    A budget limits money paid per token: calls your subscription plan covers (billing
    subscription) cost none, so they do not count toward Spent and are never refused, even at
    the limit; what they would have cost on the API is shown apart (Plan-covered,
    plan_covered_usd).

    Examples:

        attune budget status

        attune budget status --json
    """
    from attune_cli.core.clock import now as clock_now
    from attune_cli.core.spend.budgets import BudgetSettings, status
    from attune_cli.core.telemetry.team import open_call_store
    from attune_cli.core.workspace import Workspace

    workspace = Workspace.load()
    settings = BudgetSettings.from_config(workspace.config, workspace.paths.config_file)
    now = clock_now()
    if settings.budgets:
        with open_call_store(workspace, reading=True) as store:
            found = status(store, workspace.registry, settings, now)
    else:
        found = []
    if json_:
        from attune_cli.cli.console import print_json

        print_json([s.as_dict(settings.zone) for s in found])
        return
    if not found:
        from attune_cli.cli.console import message

        message(
            "No budget is set. Add one to config.toml, e.g. [budgets.code-review] "
            'monthly_usd = 50 (or [budgets."*"] for every workflow).',
            markup=False,
        )
        return
    _render_status(found, settings.zone)


def _render_status(found: list[BudgetStatus], zone: Zone) -> None:
    from rich.text import Text

    from attune_cli.cli.charts import bar
    from attune_cli.cli.console import out, plain
    from attune_cli.cli.render import Column, print_table

    styles = {"ok": "green", "warning": "yellow", "exceeded": "red"}
    # Calls covered by a subscription plan count toward no limit: shown apart once there are.
    covered = any(s.plan_covered_usd > 0 for s in found)
    columns = [
        Column("Budget"),
        Column("Period"),
        Column("Spent", "right"),
        *([Column("Plan-covered", "right", drop_order=4)] if covered else []),
        Column("Limit", "right"),
        Column("Left", "right"),
        Column("Per day", "right", drop_order=3),
        Column("Projected", "right", drop_order=1),
        Column("At 7-day rate", "right", drop_order=2),
        Column("State"),
        Column("Resets", drop_order=4),
        Column("Used", drop_order=5),
    ]
    rows = []
    for s in found:
        state = str(s.state)
        rows.append(
            [
                plain(s.budget),
                Text(str(s.period)),
                Text(format_usd(s.spent_usd)),
                *([Text(format_usd(s.plan_covered_usd))] if covered else []),
                Text(format_usd(s.limit_usd)),
                Text(format_usd(s.left_usd)),
                Text(format_usd(s.burn_usd_per_day)),
                Text(format_usd(s.projected_usd)),
                Text(format_usd(s.projected_recent_usd)),
                Text(state, style=styles[state]),
                Text(zone.moment(s.resets_at_ts).strftime("%Y-%m-%d %H:%M")),
                Text(bar(min(s.spent_usd, s.limit_usd), s.limit_usd, 12), style=styles[state]),
            ]
        )
    print_table(out(), columns, rows, title=f"Budgets ({zone.name} time)")


@budget_app.command("check")
def budget_check(
    workflow: Annotated[
        str,
        typer.Option(
            "--workflow",
            "-w",
            metavar="W",
            help="The workflow about to spend.",
            autocompletion=complete_workflows,
            show_default=False,
        ),
    ],
    cost: Annotated[
        float,
        typer.Option(
            "--cost",
            metavar="USD",
            help="What it is about to spend, in dollars.",
            show_default=False,
        ),
    ],
    hold: Annotated[
        float,
        typer.Option(
            "--hold",
            metavar="SECONDS",
            help=(
                "Reserve the amount for this long when it fits, so concurrent checks see it "
                "(it expires by itself; record the real cost with `attune telemetry record`)."
            ),
        ),
    ] = 0.0,
    json_: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout.")
    ] = False,
) -> None:
    """Exit 0 when spending USD more on workflow W stays within its budgets, 1 when it would not.

    For pipelines that call providers themselves. The check (and the hold) is one transaction
    on the store, so of several checks racing for the last dollars with --hold only as many
    pass as fit. USD is money paid per token; what it is checked against leaves out calls a
    subscription plan covered (they cost no money).

    Examples:

        attune budget check -w code-review --cost 0.25

        attune budget check -w nightly --cost 2 --hold 600 && ./run-nightly.sh
    """
    import math

    from attune_cli.core.clock import now as clock_now
    from attune_cli.core.errors import UsageError
    from attune_cli.core.spend.budgets import BudgetSettings, check
    from attune_cli.core.telemetry.team import open_call_store
    from attune_cli.core.workspace import Workspace

    if not math.isfinite(cost) or cost < 0:
        raise UsageError(f"--cost must be a finite number of dollars, zero or more (got {cost})")
    if not math.isfinite(hold) or hold < 0:
        raise UsageError(f"--hold must be a finite number of seconds, zero or more (got {hold})")
    workspace = Workspace.load()
    settings = BudgetSettings.from_config(workspace.config, workspace.paths.config_file)
    if settings.for_workflow(workflow):
        with open_call_store(workspace) as store:
            within, limits = check(
                store, workspace.registry, settings, workflow, cost, now=clock_now(), hold_s=hold
            )
    else:
        within, limits = True, []
    if json_:
        from attune_cli.cli.console import print_json

        print_json(
            {
                "workflow": workflow,
                "cost_usd": cost,
                "within": within,
                "held": within and hold > 0 and bool(limits),
                "limits": [s.as_dict(settings.zone) for s in limits],
            }
        )
    else:
        from attune_cli.cli.console import message

        if not limits:
            message(f"No budget applies to {workflow!r}: within.", markup=False)
        for s in limits:
            fits = s.fits(cost)
            message(
                f"{'within' if fits else 'over'}: budget {s.budget!r} {s.period}: "
                f"{format_usd(s.spent_usd)} spent of {format_usd(s.limit_usd)}, "
                f"{format_usd(s.left_usd)} left for {format_usd(cost)}"
                + (
                    ""
                    if fits
                    else f"; resets {settings.zone.moment(s.resets_at_ts):%Y-%m-%d %H:%M}"
                ),
                markup=False,
            )
    if not within:
        raise typer.Exit(1)
