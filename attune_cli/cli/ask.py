"""`attune ask`: call a model through the resilient executor.

httpx, the executor, the store and Rich are imported inside the command, so ``attune --help``
stays fast.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from attune_cli.cli.options import (
    TierChoice,
    json_option,
    model_option,
    stage_option,
    tier_option,
    workflow_option,
)
from attune_cli.core.formats import format_ms
from attune_cli.core.money import format_usd
from attune_cli.core.plans import AuthMode

if TYPE_CHECKING:
    from attune_cli.core.response import LLMResponse
    from attune_cli.core.workspace import Workspace


def register(app: typer.Typer) -> None:
    """Add the top-level ``ask`` command to ``app``."""
    app.command("ask")(ask)


def ask(
    prompt: Annotated[
        str,
        typer.Argument(
            help="What to ask. '-' reads the prompt from stdin.",
            metavar="PROMPT",
            show_default=False,
        ),
    ],
    workflow: Annotated[
        str,
        workflow_option("The workflow the call belongs to (recorded; routing reads its history)."),
    ] = "adhoc",
    stage: Annotated[
        str, stage_option("The workflow stage (recorded; its default tier guides routing).")
    ] = "general",
    model: Annotated[
        str | None,
        model_option(
            "Use this model instead of routing (no fallback to other models).",
            show_default=False,
        ),
    ] = None,
    tier: Annotated[TierChoice | None, tier_option("Route among this tier's models only.")] = None,
    system: Annotated[
        str | None,
        typer.Option("--system", help="A system prompt.", metavar="S", show_default=False),
    ] = None,
    max_tokens: Annotated[
        int,
        typer.Option("--max-tokens", min=1, metavar="N", help="The most output tokens."),
    ] = 1024,
    max_cost: Annotated[
        float | None,
        typer.Option(
            "--max-cost",
            min=0,
            metavar="USD",
            help="Route only to models averaging at most this per call; no dearer fallback.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            metavar="S",
            help="Give up after S seconds, whatever the server sends "
            "(default: \\[executor] deadline_s, 300).",
            show_default=False,
        ),
    ] = None,
    mode: Annotated[
        AuthMode | None,
        typer.Option(
            "--mode",
            case_sensitive=False,
            help="How this call is paid: subscription (Anthropic models through Claude "
            "Code's `claude -p`, on your plan), api (provider keys, per token), or auto (by "
            "the size of the prompt, as `attune auth recommend` decides). "
            "Default: \\[auth] default_mode.",
            show_default=False,
        ),
    ] = None,
    json_: Annotated[
        bool, json_option("Print the response envelope as one JSON document.")
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="Only the answer (and errors): no routing line, retry notes or footer. "
            "The default when stderr is not a terminal.",
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            help="Why the router chose the model, in full, and the notes even when stderr "
            "is not a terminal.",
        ),
    ] = False,
) -> None:
    """Ask a model, picked by the router from your history; the answer streams as it arrives.

    Goes through the circuit breaker, retries transient failures (honouring Retry-After) and
    falls back along the model chain; every attempt is recorded for the router. Exit 1 when
    no model could answer.

    Examples:

        attune ask "Name three risks of this plan" -w planning -s analysis

        git diff | attune ask - -m claude-haiku-4-5 --system "Review it." --json

        attune ask "Summarise" --timeout 30    # give up after 30 s

        attune ask "Explain this" --mode subscription  # via claude -p
    """
    import math

    from attune_cli.cli.console import err, message, print_json
    from attune_cli.cli.waiting import WaitingSpinner
    from attune_cli.core.ask import AskOptions
    from attune_cli.core.ask import ask as ask_core
    from attune_cli.core.errors import UsageError
    from attune_cli.core.executor import failure_error
    from attune_cli.core.notices import Caution
    from attune_cli.core.safe_text import visible
    from attune_cli.core.telemetry.records import validate_label
    from attune_cli.core.workspace import Workspace

    if model is not None and tier is not None:
        raise UsageError(
            "--model and --tier cannot be combined: --model names the model, "
            "--tier lets the router choose within a tier"
        )
    if quiet and verbose:
        raise UsageError("--quiet and --verbose cannot be combined")
    notes = verbose or (not quiet and _stderr_is_terminal())
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise UsageError(f"--timeout must be a number of seconds above 0 (got {timeout:g})")
    text = _read_stdin() if prompt == "-" else prompt
    if not text.strip():
        raise UsageError("PROMPT must not be empty (with '-', stdin was empty)")
    options = AskOptions(
        prompt=text,
        workflow=validate_label("workflow", workflow),
        stage=validate_label("stage", stage),
        model=validate_label("model", model) if model is not None else None,
        tier=tier.value if tier is not None else None,
        system=system,
        max_tokens=max_tokens,
        max_cost_usd=max_cost,
        timeout_s=timeout,
        mode=mode.value if mode is not None else None,
    )
    streamed: list[str] = []
    spinner = WaitingSpinner(err, enabled=_stderr_is_terminal())

    # An answer is data: written exactly as it came to a pipe or a file, but on a terminal
    # its control characters (ESC sequences, C1, bidi overrides) are shown as escapes, so a
    # model cannot clear the screen, retitle the window or hide text. Lines and tabs stay.
    to_terminal = sys.stdout.isatty()

    def on_text(piece: str) -> None:
        spinner.stop()
        streamed.append(piece)
        if to_terminal:
            piece = visible(piece, keep_newlines=True)
        sys.stdout.write(piece)
        sys.stdout.flush()

    def on_notice(note: str) -> None:
        if not notes and not isinstance(note, Caution):
            return
        if not verbose:
            note = _one_line(note)
        message(f"[dim]{_escape(note)}[/dim]")

    workspace = Workspace.load()
    _warn_about_keys_sent_in_clear(workspace)
    try:
        with spinner:
            response = ask_core(
                workspace,
                options,
                on_text=None if json_ else on_text,
                on_notice=on_notice,
                on_attempt=spinner.attempt,
            )
    except BrokenPipeError:
        # The reader stopped reading (`attune ask ... | head -3`): stop quietly, exit 0.
        from attune_cli.cli.console import report_failure

        raise typer.Exit(report_failure(BrokenPipeError()) or 0) from None
    if json_:
        print_json(response.to_dict())
    elif streamed and not streamed[-1].endswith("\n"):
        sys.stdout.write("\n")
        sys.stdout.flush()
    if not response.success:
        raise failure_error(response)
    if not json_ and notes:
        message(f"[dim]{_escape(_footer(response))}[/dim]")


def _one_line(note: str) -> str:
    """A note cut to its first sentence: the routing line is one line unless ``--verbose``."""
    head, sep, rest = note.partition(". ")
    if not sep or not rest.strip():
        return note
    return f"{head}. (--verbose says why)" if note.startswith("routed to") else f"{head}."


def _read_stdin() -> str:
    """The prompt from stdin, which must be UTF-8 text."""
    from attune_cli.core.errors import UsageError

    raw = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read()
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"stdin is not UTF-8 text (byte {exc.start + 1} is not valid UTF-8)",
            hint="convert it first, e.g. `iconv -f latin1 -t utf-8 file | attune ask -`",
        ) from None


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _warn_about_keys_sent_in_clear(workspace: Workspace) -> None:
    """Warn, once per provider, when a key would go over plain http:// to another machine."""
    import os

    from attune_cli.cli.auth import warn_if_sent_in_clear
    from attune_cli.core.credentials import resolve_key, sends_key_in_clear
    from attune_cli.core.errors import AttuneError

    for provider in workspace.registry.providers.values():
        override = os.environ.get(provider.base_url_env or "", "").strip()
        base_url = override or provider.base_url
        if not sends_key_in_clear(base_url):
            continue
        try:
            has_key = resolve_key(provider, workspace.paths) is not None
        except AttuneError:
            continue  # the call itself reports a bad credentials file
        if has_key:
            warn_if_sent_in_clear(provider.name, base_url)


def _footer(response: LLMResponse) -> str:
    parts = [
        f"{response.model} ({response.provider}{', ' + response.tier if response.tier else ''})"
    ]
    parts.append(f"{format_ms(response.latency_ms)} ms")
    if response.input_tokens is not None and response.output_tokens is not None:
        parts.append(f"{response.input_tokens:,} → {response.output_tokens:,} tokens")
    if response.cost_usd is not None and response.billing == "subscription":
        parts.append(f"{format_usd(response.cost_usd)} API-equivalent, covered by the plan")
    elif response.cost_usd is not None:
        parts.append(format_usd(response.cost_usd))
    elif response.billing == "subscription":
        parts.append("on the plan")
    sent = sum(1 for a in response.attempts if a.sent)
    if sent > 1:
        parts.append(f"{sent} attempts")
    if response.fallback_used and response.attempts:
        parts.append(f"fallback from {response.attempts[0].model}")
    return "— " + " · ".join(parts)


def _escape(text: str) -> str:
    from rich.markup import escape

    from attune_cli.core.safe_text import visible

    return escape(visible(text))
