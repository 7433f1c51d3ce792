"""`attune route breakers`: the circuit breakers every attune process shares, and their reset."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from attune_cli.cli.complete import complete_breaker_keys
from attune_cli.cli.options import JsonOpt

if TYPE_CHECKING:
    from attune_cli.core.breaker.state import BreakerState

# The help text is the callback's docstring, so `attune route breakers --help` shows examples.
app = typer.Typer(invoke_without_command=True, no_args_is_help=False)


@app.callback(invoke_without_command=True)
def breakers(
    ctx: typer.Context,
    json_output: JsonOpt = False,
) -> None:
    """Show each circuit breaker: closed, open or half-open, and when to retry.

    A model's breaker (provider/model) opens after repeated failures (5xx, 529, timeouts,
    dropped connections); rate limits (429) and refused requests never open it.

    An endpoint's breaker (endpoint:BASE_URL) opens on the first connection that cannot be
    made there, and then every model behind that base URL is skipped.

    While open it rejects calls without sending them; after that, one probe call decides.

    Every attune process on this machine shares these breakers.

    Examples:

        attune route breakers

        attune route breakers --json

        attune route breakers reset openai/gpt-4o-mini

        attune route breakers reset endpoint:http://127.0.0.1:11434/v1
    """
    if ctx.invoked_subcommand is not None:
        return
    from attune_cli.cli.console import message, print_json
    from attune_cli.core.breaker.sqlite import CircuitBreaker
    from attune_cli.core.workspace import Workspace

    with CircuitBreaker.from_workspace(Workspace.load()) as breaker:
        states = breaker.states()
    if json_output:
        print_json([state.as_dict() for state in states])
        return
    if not states:
        message("No circuit breakers yet: one appears after the first call to a model.")
        return
    _render(states)


@app.command("reset")
def reset(
    key: str | None = typer.Argument(
        None,
        metavar="[PROVIDER/MODEL|endpoint:BASE_URL]",
        help="The breaker to close (as listed by `attune route breakers`); all when omitted.",
        autocompletion=complete_breaker_keys,
        show_default=False,
    ),
) -> None:
    """Close a circuit breaker, or all of them, so calls go through again.

    Its recent failures are forgotten: a provider that still fails trips it again.

    Examples:

        attune route breakers reset openai/gpt-4o-mini

        attune route breakers reset endpoint:http://127.0.0.1:11434/v1

        attune route breakers reset
    """
    from rich.markup import escape

    from attune_cli.cli.console import message
    from attune_cli.core.breaker.sqlite import CircuitBreaker
    from attune_cli.core.errors import UsageError
    from attune_cli.core.workspace import Workspace

    with CircuitBreaker.from_workspace(Workspace.load()) as breaker:
        count = breaker.reset(key)
    if key is not None and count == 0:
        raise UsageError(
            f"no circuit breaker named {key!r}", hint="`attune route breakers` lists them"
        )
    if key is not None:
        message(f"Reset the circuit breaker of {escape(key)}: calls go through again.")
    elif count == 0:
        message("No circuit breakers to reset.")
    else:
        plural = "breaker" if count == 1 else "breakers"
        message(f"Reset {count} circuit {plural}: calls go through again.")


def _render(states: list[BreakerState]) -> None:
    import time

    from rich.text import Text

    from attune_cli.cli.console import out, plain
    from attune_cli.cli.render import Column, print_table
    from attune_cli.core.breaker.state import BreakerKind

    # The key is what `reset` takes: it is never cut or folded; a narrow terminal gets one
    # block per breaker instead.
    columns = [
        Column("Breaker"),
        Column("Kind", drop_order=2),
        Column("State"),
        Column("Failed/calls", "right", drop_order=1),
        Column("Opened", drop_order=3),
        Column("Retry in", "right"),
    ]
    styles = {"closed": "green", "open": "red", "half_open": "yellow"}
    today = time.strftime("%Y-%m-%d")
    rows = []
    for state in states:
        opened = "—"
        if state.opened_at is not None:
            stamp = time.localtime(state.opened_at)
            same_day = time.strftime("%Y-%m-%d", stamp) == today
            opened = time.strftime("%H:%M:%S" if same_day else "%m-%d %H:%M", stamp)
        if state.retry_after_s is None:
            retry = "—"
        elif state.retry_after_s <= 0:
            retry = "now"
        elif state.probe_in_flight:
            retry = f"{state.retry_after_s:,.0f}s (probing)"
        else:
            retry = f"{state.retry_after_s:,.0f}s"
        rows.append(
            [
                plain(state.key),
                # An endpoint stands for every model behind its base URL: make it stand out.
                Text(str(state.kind), style="bold" if state.kind is BreakerKind.ENDPOINT else ""),
                Text(state.state.replace("_", "-"), style=styles[state.state]),
                Text(f"{state.failures:,}/{state.calls:,}"),
                Text(opened),
                Text(retry),
            ]
        )
    print_table(out(), columns, rows, title="Circuit breakers")
