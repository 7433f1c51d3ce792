"""`attune route`: which model a workflow stage should use, and why.

Each command parses its flags, asks ``AdaptiveModelRouter`` (core) for one answer and renders
it. The router, the store (sqlite3) and Rich tables are imported inside the commands so that
``attune --help`` and shell completion stay fast.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from attune_cli.cli import breakers
from attune_cli.cli.complete import complete_stages
from attune_cli.cli.options import JsonOpt, stage_option, workflow_option

if TYPE_CHECKING:
    from attune_cli.core.routing import (
        AdaptiveModelRouter,
        RoutingDecision,
        RoutingStats,
        TierAdvice,
    )

app = typer.Typer(
    help="Which model each workflow stage should use, chosen from recorded history.",
    no_args_is_help=True,
)
app.add_typer(breakers.app, name="breakers")


def _stage(value: str) -> str:
    if not value.strip():
        raise typer.BadParameter("must not be empty", param_hint="STAGE")
    return value


StageArg = Annotated[
    str,
    typer.Argument(
        help="The workflow stage, e.g. triage, analysis, synthesis. Unknown stages are fine.",
        autocompletion=complete_stages,
        callback=_stage,
        metavar="STAGE",
        show_default=False,
    ),
]
WorkflowOpt = Annotated[
    str | None,
    workflow_option("Only this workflow's history (default: the stage across every workflow)."),
]
StageOpt = Annotated[str | None, stage_option("Only this stage (default: every stage with calls).")]


def _finite(value: float | None) -> float | None:
    if value is not None and not 0 <= value < math.inf:
        raise typer.BadParameter(f"must be a finite number, zero or more (got {value})")
    return value


MaxCostOpt = Annotated[
    float | None,
    typer.Option(
        "--max-cost",
        callback=_finite,
        metavar="USD",
        help=(
            "Hard cap on the cost per call: never return a model whose average cost (or, "
            "without history, registry price) is above this."
        ),
    ),
]
MaxLatencyOpt = Annotated[
    float | None,
    typer.Option(
        "--max-latency",
        callback=_finite,
        metavar="MS",
        help="Hard cap: never return a model whose recorded p95 latency is above this (ms).",
    ),
]
AnyProviderOpt = Annotated[
    bool,
    typer.Option(
        "--any-provider",
        help="Rank every model, also those whose provider has no key or base URL here.",
    ),
]
MinSuccessOpt = Annotated[
    float | None,
    typer.Option(
        "--min-success",
        min=0,
        max=1,
        metavar="RATE",
        help=(
            "Minimum success rate (its 95 % lower bound), 0 to 1 "
            "(default: routing.min_success_rate, 0.7)."
        ),
    ),
]
DaysOpt = Annotated[
    int | None,
    typer.Option(
        "--days",
        min=1,
        metavar="N",
        help="Window of history in days (default: routing.window_days, 30).",
    ),
]
ExploreOpt = Annotated[
    bool,
    typer.Option(
        "--explore",
        help=(
            "Sometimes try a model whose uncertain record could beat the best "
            "(the routing setting explore_share of calls start a try; one whose newest calls "
            "keep it promising keeps the calls until its record decides); record the outcome "
            "with `attune telemetry record`."
        ),
    ),
]


@contextmanager
def _router() -> Iterator[AdaptiveModelRouter]:
    from attune_cli.core.routing import AdaptiveModelRouter
    from attune_cli.core.telemetry.team import open_call_store
    from attune_cli.core.workspace import Workspace

    workspace = Workspace.load()
    with open_call_store(workspace, reading=True) as store:
        yield AdaptiveModelRouter.from_workspace(workspace, store)


def _decide(
    stage: str,
    workflow: str | None,
    max_cost: float | None,
    max_latency: float | None,
    min_success: float | None,
    days: int | None,
    explore: bool,
    any_provider: bool,
) -> RoutingDecision:
    with _router() as router:
        return router.get_best_model(
            workflow,
            stage,
            max_cost=max_cost,
            max_latency_ms=max_latency,
            min_success_rate=min_success,
            days=days,
            explore=explore,
            any_provider=any_provider,
        )


@app.command("explain")
def explain(
    stage: StageArg,
    workflow: WorkflowOpt = None,
    max_cost: MaxCostOpt = None,
    max_latency: MaxLatencyOpt = None,
    min_success: MinSuccessOpt = None,
    days: DaysOpt = None,
    explore: ExploreOpt = False,
    any_provider: AnyProviderOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Show every candidate model for a stage, its figures and verdict, and why one wins.

    Only models whose provider is configured here (a key, or a base URL for a local server)
    can be chosen; --any-provider ranks the others too. Outage failures (5xx, timeouts,
    refused connections) count only for routing.outage_memory_hours; rate limits and refused
    requests never count.

    Example:  attune route explain analysis -w code-review --max-latency 5000
    """
    decision = _decide(
        stage, workflow, max_cost, max_latency, min_success, days, explore, any_provider
    )
    if json_:
        from attune_cli.cli.console import print_json

        print_json(decision.as_dict())
        return
    _render_decision(decision)


@app.command("best")
def best(
    stage: StageArg,
    workflow: WorkflowOpt = None,
    max_cost: MaxCostOpt = None,
    max_latency: MaxLatencyOpt = None,
    min_success: MinSuccessOpt = None,
    days: DaysOpt = None,
    explore: ExploreOpt = False,
    any_provider: AnyProviderOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Print only the model id to use for a stage (for scripts).

    The model is callable here and within every cap; when no model is, nothing is printed
    and the exit status is 1 ("no model within the caps").

    Example:  MODEL=$(attune route best analysis -w code-review --max-cost 0.01)
    """
    from attune_cli.core.routing.explain import no_model_within_caps

    decision = _decide(
        stage, workflow, max_cost, max_latency, min_success, days, explore, any_provider
    )
    if json_:
        from attune_cli.cli.console import print_json

        print_json(decision.as_dict())
    if decision.chosen is None:
        raise no_model_within_caps(decision)
    if not json_:
        typer.echo(decision.chosen)


@app.command("stats")
def stats(
    workflow: WorkflowOpt = None,
    stage: StageOpt = None,
    days: Annotated[
        int | None,
        typer.Option(
            "--days",
            min=1,
            metavar="N",
            help="Window of history in days (default: routing.window_days, 30).",
            show_default=False,
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Calls, success and cost per workflow stage, and the model each would use now.

    Example:  attune route stats -w code-review --days 30
    """
    with _router() as router:
        result = router.get_routing_stats(workflow, stage=stage, days=days)
    if json_:
        from attune_cli.cli.console import print_json

        print_json(result.as_dict())
        return
    _render_stats(result)


@app.command("simulate")
def simulate(
    stage: StageArg,
    workflow: Annotated[
        str, workflow_option("The workflow whose history is replayed.", show_default=False)
    ],
    max_cost: MaxCostOpt = None,
    max_latency: MaxLatencyOpt = None,
    min_success: MinSuccessOpt = None,
    score_weights: Annotated[
        str | None,
        typer.Option(
            "--score-weights",
            metavar="KEY=N,…",
            help="Proposed quality-score weights: success, cost, latency (e.g. cost=8,latency=1).",
        ),
    ] = None,
    days: Annotated[
        int,
        typer.Option("--days", min=1, metavar="N", help="Days of history to replay."),
    ] = 30,
    json_: JsonOpt = False,
) -> None:
    """Try a routing policy on your own history before adopting it.

    Replays the last N days hour by hour: at each hour, the model routing with these settings
    would have chosen from the history before that hour, and what that hour's calls would then
    have cost and how often they would have succeeded (that model's figures in the hour, or
    over its window when it had no calls then). Shown beside what actually happened.

    This is an estimate from observed rates, not a counterfactual truth.

    Example:  attune route simulate analysis -w code-review --max-cost 0.005
    """

    from attune_cli.core.clock import now as clock_now
    from attune_cli.core.routing import RoutingSettings
    from attune_cli.core.routing.simulate import parse_score_weights
    from attune_cli.core.routing.simulate import simulate as replay
    from attune_cli.core.telemetry.team import open_call_store
    from attune_cli.core.workspace import Workspace

    workspace = Workspace.load()
    settings = RoutingSettings.from_config(workspace.config, workspace.paths.config_file)
    settings = settings.overridden(
        max_cost_usd=max_cost,
        max_latency_ms=max_latency,
        min_success_rate=min_success,
        weights=parse_score_weights(score_weights, settings.weights) if score_weights else None,
    )
    with open_call_store(workspace, reading=True) as store:
        result = replay(
            store,
            workspace.registry,
            settings,
            workflow=workflow,
            stage=stage,
            days=days,
            now=clock_now(),
        )
    if json_:
        from attune_cli.cli.console import print_json

        print_json(result.as_dict())
        return
    _render_simulation(result)


def _render_simulation(result: Any) -> None:
    from rich.text import Text

    from attune_cli.cli.console import out, plain
    from attune_cli.cli.render import Column, print_table
    from attune_cli.core.money import format_usd
    from attune_cli.core.telemetry.records import ts_to_iso

    console = out()
    document = result.as_dict()

    def rate(value: float | None) -> str:
        return "—" if value is None else f"{value * 100:.1f} %"

    def ms(value: float | None) -> str:
        return "—" if value is None else f"{value:,.0f} ms"

    proposed, actual, diff = document["proposed"], document["actual"], document["difference"]
    rows = [
        [Text("Calls"), Text(f"{actual['calls']:,}"), Text(f"{proposed['calls']:,}"), Text("")],
        [
            Text("Spend"),
            Text(format_usd(actual["cost_usd"])),
            Text(format_usd(proposed["cost_usd"])),
            Text(("+" if diff["cost_usd"] > 0 else "") + format_usd(diff["cost_usd"])),
        ],
        [
            Text("Success"),
            Text(rate(actual["success_rate"])),
            Text(rate(proposed["success_rate"])),
            Text("—" if diff["success_rate"] is None else f"{diff['success_rate'] * 100:+.1f} pts"),
        ],
        [
            Text("p95 latency"),
            Text(ms(actual["p95_latency_ms"])),
            Text(ms(proposed["p95_latency_ms"])),
            Text("—" if diff["p95_latency_ms"] is None else f"{diff['p95_latency_ms']:+,.0f} ms"),
        ],
    ]
    print_table(
        console,
        [
            Column(""),
            Column("Actual", "right"),
            Column("Proposed", "right"),
            Column("Difference", "right"),
        ],
        rows,
        title=plain(f"{result.workflow} / {result.stage}, last {result.days} days, hour by hour"),
    )
    chosen = ", ".join(f"{m} ({c:,} calls)" for m, c in result.chosen.items()) or "nothing"
    console.print(plain(f"The policy would have chosen: {chosen}."))
    console.print(
        plain(
            f"It disagreed with what served most calls in {result.hours_disagreeing} of "
            f"{result.hours} hours."
        )
    )
    if result.unknown_calls:
        console.print(
            plain(
                f"{result.unknown_calls:,} calls went to models without history: priced from "
                "the registry, their success and latency unknown."
            ),
            style="dim",
        )
    if result.disagreements:
        rows = [
            [
                Text(ts_to_iso(d.hour)[:13] + "h"),
                plain(d.actual_model),
                plain(d.proposed_model),
                Text(f"{d.calls:,}"),
                Text(format_usd(d.actual_cost_usd)),
                Text(format_usd(d.proposed_cost_usd)),
            ]
            for d in result.disagreements
        ]
        print_table(
            console,
            [
                Column("Hour (UTC)"),
                Column("Actual"),
                Column("Proposed"),
                Column("Calls", "right"),
                Column("Actual $", "right"),
                Column("Proposed $", "right", drop_order=1),
            ],
            rows,
            title="Where they disagreed most",
        )
    console.print(
        Text(
            "An estimate from observed rates per model and hour, not a counterfactual truth.",
            style="dim",
        )
    )


@app.command("check")
def check(
    workflow: WorkflowOpt = None,
    stage: StageOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Advise a tier upgrade, downgrade or keep for each stage, from its newest calls.

    Upgrade when the newest calls fail too often; downgrade when a cheaper tier has enough
    history and does as well, with the saving per 1,000 calls.

    Example:  attune route check -w code-review
    """
    from attune_cli.cli.console import warn

    with _router() as router:
        advice = router.check(workflow, stage)
        for problem in router.contradictions():
            warn(problem)
    if json_:
        from attune_cli.cli.console import print_json

        print_json([a.as_dict() for a in advice])
        return
    _render_check(advice)


def _render_decision(decision: RoutingDecision) -> None:
    from attune_cli.cli.console import out, plain
    from attune_cli.cli.render import Column, cell_ms, cell_pct, cell_score, cell_usd, print_table
    from attune_cli.core.formats import plural

    where = f"{decision.stage} · {decision.workflow or 'all workflows'}"
    constraints = decision.constraints
    caps = [
        f"window {plural(constraints['window_days'], 'day')}",
        f"min calls {constraints['min_calls']}",
    ]
    caps.append(f"min success {constraints['min_success_rate']:.0%}")
    if constraints["max_cost_usd"] is not None:
        caps.append(f"max cost {cell_usd(constraints['max_cost_usd'])}")
    if constraints["max_latency_ms"] is not None:
        caps.append(f"max p95 {cell_ms(constraints['max_latency_ms'])} ms")
    console = out()
    # The JSON always has every column; a narrow terminal leaves out provider, tier and p50
    # first, so that every figure left stays whole.
    columns = [
        Column(""),
        Column("Model"),
        Column("Provider", drop_order=3),
        Column("Tier", drop_order=2),
        Column("Calls", "right"),
        Column("Success", "right"),
        Column("Bound", "right", drop_order=4),
        Column("p50 ms", "right", drop_order=1),
        Column("p95 ms", "right"),
        Column("Cost/call", "right"),
        Column("Score", "right"),
        Column("Verdict"),
    ]
    rows = []
    styles: list[str | None] = []
    ruled_out: list[tuple[str, str]] = []
    not_counted: list[str] = []
    for c in decision.candidates:
        chosen = c.model == decision.chosen
        if chosen:
            verdict = "chosen (fallback)" if decision.fallback else "chosen"
            if decision.explored:
                verdict = "chosen (exploring)"
        elif c.eligible:
            verdict = "eligible"
        else:
            verdict = "ruled out"
            ruled_out.append((c.model, "; ".join(c.rejected_because)))
        row = [
            "→" if chosen else "",
            c.model,
            c.provider or "-",
            c.tier or "-",
            f"{c.calls:,}",
            cell_pct(c.success_rate),
            cell_pct(c.success_lower_bound),
            cell_ms(c.p50_latency_ms),
            cell_ms(c.p95_latency_ms),
            ("~" if c.cost_estimated else "") + cell_usd(c.avg_cost_usd),
            cell_score(c.quality_score),
            verdict,
        ]
        rows.append([plain(cell) for cell in row])
        styles.append("bold green" if chosen else None)
        if c.not_counted_text:
            not_counted.append(f"{c.model}: {c.not_counted_text}")
    print_table(
        console,
        columns,
        rows,
        title=plain(f"Routing {where}"),
        caption=f"default tier {decision.default_tier} · " + " · ".join(caps),
        row_styles=styles,
    )
    if any(c.cost_estimated for c in decision.candidates):
        console.print("~ registry price of a 1,000-token prompt and 500-token answer")
    billed = [c.performance for c in decision.candidates if c.performance is not None]
    covered = sum(perf.plan_covered_usd for perf in billed)
    if covered > 0:
        from attune_cli.core.money import format_usd

        paid = sum(max(perf.cost_usd - perf.plan_covered_usd, 0.0) for perf in billed)
        console.print(
            f"Cost in the window: {format_usd(covered)} covered by the subscription plan "
            f"(API-equivalent), {format_usd(paid)} paid per token",
            markup=False,
        )
    if ruled_out:
        console.print("[bold]Ruled out:[/bold]")
        console.print(_bullets(f"{model}: {why}" for model, why in ruled_out))
    if not_counted:
        console.print("[bold]Failures that do not count against a model:[/bold]")
        console.print(_bullets(not_counted))
    console.print("\n[bold]Why:[/bold]", plain(decision.reason))
    changes = decision.what_would_change
    if changes:
        console.print("\n[bold]What would change it:[/bold]")
        console.print(_bullets(changes))


def _bullets(lines: Iterable[str]) -> Any:
    from rich.table import Table

    from attune_cli.cli.console import plain

    # A borderless grid keeps wrapped lines indented under their bullet.
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=3, justify="right")
    grid.add_column()
    for line in lines:
        grid.add_row("•", plain(line))
    return grid


def _render_stats(result: RoutingStats) -> None:
    from attune_cli.cli.console import message, out, plain
    from attune_cli.cli.render import Column, cell_ms, cell_pct, cell_score, cell_usd, print_table
    from attune_cli.core.formats import plural

    if not result.stages:
        message(f"No calls recorded in the last {plural(result.days, 'day')}.")
        return
    columns = [
        Column("Workflow"),
        Column("Stage"),
        Column("Calls", "right"),
        Column("Success", "right"),
        Column("Cost", "right"),
        Column("Tier", drop_order=1),
        Column("Would use"),
    ]
    rows = [
        [
            plain(value)
            for value in (
                s.workflow or "(all)",
                s.stage,
                f"{s.calls:,}",
                cell_pct(s.success_rate if s.calls else None),
                cell_usd(s.total_cost_usd),
                s.default_tier,
                s.best or "none callable",
            )
        ]
        for s in result.stages
    ]
    console = out()
    print_table(console, columns, rows, title=f"Routing stats · last {plural(result.days, 'day')}")
    if len(result.stages) == 1:
        model_columns = [
            Column("Model"),
            Column("Calls", "right"),
            Column("Success", "right"),
            Column("Bound", "right", drop_order=1),
            Column("p95 ms", "right"),
            Column("Cost/call", "right"),
            Column("Score", "right"),
        ]
        model_rows = [
            [
                plain(value)
                for value in (
                    m.model,
                    f"{m.calls:,}",
                    cell_pct(m.success_rate),
                    cell_pct(m.success_lower_bound),
                    cell_ms(m.p95_latency_ms),
                    cell_usd(m.avg_cost_usd),
                    cell_score(m.quality_score),
                )
            ]
            for m in result.stages[0].models
        ]
        print_table(console, model_columns, model_rows, title="Models")


def _render_check(advice: list[TierAdvice]) -> None:
    from attune_cli.cli.console import message, out, plain
    from attune_cli.cli.render import Column, cell_pct, cell_usd, print_table

    if not advice:
        message("No calls recorded in the routing window; nothing to advise.")
        return
    columns = [
        Column("Workflow"),
        Column("Stage"),
        Column("Tier"),
        Column("Advice"),
        Column("Newest", "right", drop_order=2),
        Column("Failed", "right", drop_order=1),
        Column("Saves/1k", "right"),
    ]
    rows = []
    reasons: list[str] = []
    for a in advice:
        verdict = a.recommendation
        if a.recommendation != "keep":
            verdict = f"{a.recommendation} → {a.suggested_tier}"
            reasons.append(f"{a.workflow or '(all)'} / {a.stage}: {a.reason}")
        rows.append(
            [
                plain(value)
                for value in (
                    a.workflow or "(all)",
                    a.stage,
                    a.current_tier,
                    verdict,
                    f"{a.recent_calls:,}",
                    cell_pct(a.recent_failure_rate),
                    cell_usd(a.savings_per_1k_calls_usd),
                )
            ]
        )
    console = out()
    print_table(
        console,
        columns,
        rows,
        title="Tier advice",
        caption="Newest: the stage's newest calls judged · Failed: their failures",
        row_styles=["bold" if a.recommendation != "keep" else None for a in advice],
    )
    if reasons:
        console.print("[bold]Why:[/bold]")
        console.print(_bullets(reasons))
    else:
        console.print("Every stage keeps its tier: `attune route check --json` has each reason.")
