"""`attune demo`: the whole loop (route, call, record, learn) offline, on a throwaway home.

The emulator, the executor, the store and Rich are imported inside the command, so
``attune --help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from attune_cli.core.formats import format_ms

if TYPE_CHECKING:
    from pathlib import Path

    from attune_cli.demo import CallEvent, DemoReport


def register(app: typer.Typer) -> None:
    """Add the top-level ``demo`` command to ``app``."""
    app.command("demo")(demo)


def demo(
    calls: Annotated[
        int,
        typer.Option("--calls", min=6, max=500, metavar="N", help="How many calls to make."),
    ] = 50,
    keep: Annotated[
        bool,
        typer.Option("--keep", help="Keep the throwaway home and print its path, to explore."),
    ] = False,
) -> None:
    """Run the whole loop offline: route, call, record, learn, on a throwaway home.

    Starts a provider emulator on 127.0.0.1 that speaks the Anthropic and OpenAI APIs (one
    model healthy, one slow, one failing in bursts), sends about fifty calls through the
    executor with breaker, retries and fallback, then shows what the router learned and the
    state of the circuit breakers. No key and no network needed; nothing of yours is touched.

    Example:  attune demo
    """
    import shutil
    import tempfile
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from attune_cli.cli.console import out
    from attune_cli.demo import DEMO_STAGE, DEMO_WORKFLOW, demo_models, run_demo

    console = out()
    home = Path(tempfile.mkdtemp(prefix="attune-demo-"))
    try:
        console.print(
            "[bold]attune demo[/bold] — the whole loop, offline: route → call → record → learn"
        )
        console.print(f"Throwaway home: {home} (your own config and keys are not touched)")
        console.print(
            "A provider emulator on 127.0.0.1 answers for three models of the "
            f"[bold]{DEMO_STAGE}[/bold] stage:"
        )
        for model in demo_models():
            console.print(f"  • {model.model} ({model.provider} API): {model.role}")
        console.print()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[last]}"),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("calls", total=calls, last="")

            def on_call(event: CallEvent) -> None:
                phase = "routed" if event.routed else "each model in turn"
                progress.update(
                    task,
                    advance=1,
                    description=f"calls ({phase})",
                    last=_call_summary(event),
                )

            report = run_demo(home, calls=calls, on_call=on_call)
        _render_demo_tallies(report)
        _show_command(home, ["route", "explain", DEMO_STAGE, "--workflow", DEMO_WORKFLOW])
        _show_command(home, ["route", "breakers"])
        _render_demo_lessons(report)
        if keep:
            console.print(f"\nKept the demo home: ATTUNE_HOME={home} attune telemetry show")
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)


def _call_summary(event: CallEvent) -> str:
    response = event.response
    if not response.success:
        return f"[red]{event.asked}: no answer[/red]"
    if response.fallback_used:
        return f"[yellow]{event.asked} → fell back to {response.model}[/yellow]"
    return f"{response.model} answered in {format_ms(response.latency_ms)} ms"


def _render_demo_tallies(report: DemoReport) -> None:
    from rich.text import Text

    from attune_cli.cli.console import out
    from attune_cli.cli.render import Column, print_table
    from attune_cli.demo import demo_models

    roles = {m.model: m.role for m in demo_models()}
    columns = [Column("model"), Column("behaviour", drop_order=1, wrap=True)]
    columns += [
        Column(name, "right") for name in ("asked", "answered", "fell back", "failed", "refused")
    ]
    rows = [
        [Text(model), Text(roles.get(model, "(fallback)"))]
        + [
            Text(f"{count:,}")
            for count in (
                tally.asked,
                tally.answered,
                tally.fell_back,
                tally.failed_attempts,
                tally.rejected,
            )
        ]
        for model, tally in report.tallies.items()
    ]
    out().print()
    print_table(
        out(),
        columns,
        rows,
        title=f"{report.calls:,} calls in {report.elapsed_s:.1f} s",
        caption="failed: attempts that failed · refused: attempts the open circuit refused",
        json_hint=False,
    )


def _show_command(home: Path, args: list[str]) -> None:
    import os
    import subprocess

    from attune_cli.cli.console import out

    console = out()
    console.print(f"\n[bold]$ attune {' '.join(args)}[/bold]")
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env["ATTUNE_HOME"] = str(home)
    env["COLUMNS"] = str(console.width)
    sys.stdout.flush()
    result = subprocess.run(
        [sys.executable, "-m", "attune_cli", *args], env=env, capture_output=True, text=True
    )
    sys.stdout.write(result.stdout)
    sys.stdout.flush()
    if result.returncode != 0:
        console.print(f"[yellow](exit {result.returncode}: {result.stderr.strip()})[/yellow]")


def _render_demo_lessons(report: DemoReport) -> None:
    from attune_cli.cli.console import out
    from attune_cli.demo import DEMO_STAGE, FLAKY_MODEL

    flaky = report.tallies.get(FLAKY_MODEL)
    fell_back = sum(t.fell_back for t in report.tallies.values())
    lines = [
        f"Every attempt became a telemetry row ({report.attempts_recorded} rows); "
        "the router read them to rank the models.",
    ]
    if flaky and flaky.rejected:
        lines.append(
            f"{FLAKY_MODEL} failed in a burst: its circuit opened, and {flaky.rejected} later "
            "attempts were refused at once, without touching the network."
        )
    if fell_back:
        lines.append(
            f"{fell_back} calls fell back to another model of the same tier and still got "
            "an answer (the envelope says fallback_used)."
        )
    if report.routed_choices:
        best, count = report.routed_choices.most_common(1)[0]
        lines.append(
            f"Once history existed, the router sent {count} of "
            f"{sum(report.routed_choices.values())} {DEMO_STAGE} calls to {best}."
        )
    if report.unanswered:
        lines.append(f"{report.unanswered} calls found no model able to answer.")
    console = out()
    console.print("\n[bold]What this showed[/bold]")
    for line in lines:
        console.print(f"  • {line}")
    console.print(
        '\nFor real: `attune auth setup`, then `attune ask "..." -w WORKFLOW -s STAGE`. '
        "A local server works too: OPENAI_BASE_URL=http://localhost:11434/v1 attune ask ..."
    )
